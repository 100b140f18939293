import { describe, expect, it } from 'vitest';
import type { SaslClientSession, SaslServerSession, SaslServerStep } from '../../src/sasl/index.js';
import { createSaslClient, createSaslServer, deriveScramCredentials } from '../../src/sasl/index.js';
import { Secret } from '../../src/index.js';
import { bytes, expectChallenge, memoryBackend, scriptedRandom, text } from './helpers.js';

// RFC 7677 §3 and RFC 5802 §5: the example exchanges, byte for byte.
const rfc7677 = {
  mechanism: 'SCRAM-SHA-256',
  hash: 'SHA-256',
  clientNonce: 'rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  salt: 'W22ZaJ0SNY7soEsUEjb6gQ==',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal: 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
} as const;
const rfc5802 = {
  mechanism: 'SCRAM-SHA-1',
  hash: 'SHA-1',
  clientNonce: 'fyko+d2lbbFgONRv9qkxdawL',
  serverNonce: '3rfcNHYJY1ZVvWVs7j',
  salt: 'QSXCR+Q6sek8bf92',
  clientFirst: 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL',
  serverFirst: 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096',
  clientFinal: 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=',
  serverFinal: 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=',
} as const;

const exporter = { type: 'tls-exporter', data: new Uint8Array(32).fill(7) } as const;

async function rfcServer(vector: typeof rfc7677 | typeof rfc5802, successData: 'challenge' | 'inline' = 'challenge') {
  const credentials = await deriveScramCredentials(new Secret('pencil'), {
    hash: vector.hash,
    iterations: 4096,
    salt: new Uint8Array(Buffer.from(vector.salt, 'base64')),
  });
  const backend = memoryBackend({}, { getScramCredentials: ({ authcid }) => Promise.resolve(authcid === 'user' ? credentials : undefined) });
  return createSaslServer({
    mechanisms: [vector.mechanism],
    backend,
    successData,
    randomBytes: scriptedRandom(vector.serverNonce),
    scramNonceLength: vector.serverNonce.length,
  });
}

function rfcClient(vector: typeof rfc7677 | typeof rfc5802, password = 'pencil'): SaslClientSession {
  return createSaslClient(
    vector.mechanism,
    { username: 'user', password: new Secret(password) },
    { randomBytes: scriptedRandom(vector.clientNonce), scramNonceLength: vector.clientNonce.length },
  );
}

/** Drive a client against a server session until the server ends the exchange. */
async function exchange(client: SaslClientSession, session: SaslServerSession): Promise<SaslServerStep> {
  let step = await session.start(client.initialResponse());
  while (step.type === 'challenge') step = await session.step(await client.respond(step.data));
  if (step.type === 'success') await client.complete(step.data);
  return step;
}

describe.each([rfc7677, rfc5802])('$mechanism example exchange', (vector) => {
  it('client side, byte for byte', async () => {
    const client = rfcClient(vector);
    expect(text(client.initialResponse())).toBe(vector.clientFirst);
    expect(text(await client.respond(bytes(vector.serverFirst)))).toBe(vector.clientFinal);
    expect(await client.respond(bytes(vector.serverFinal))).toEqual(new Uint8Array(0));
    await expect(client.complete()).resolves.toBeUndefined();
  });

  it('server side, byte for byte (server-final as a last challenge)', async () => {
    const session = (await rfcServer(vector)).createSession(vector.mechanism, { tls: false });
    expect(text(expectChallenge(await session.start(bytes(vector.clientFirst))))).toBe(vector.serverFirst);
    expect(text(expectChallenge(await session.step(bytes(vector.clientFinal))))).toBe(vector.serverFinal);
    expect(await session.step(new Uint8Array(0))).toEqual({ type: 'success', identity: { mechanism: vector.mechanism, authcid: 'user', authzid: 'user' } });
  });

  it('server side with additional data with success', async () => {
    const session = (await rfcServer(vector, 'inline')).createSession(vector.mechanism, { tls: false });
    await session.start(bytes(vector.clientFirst));
    const done = await session.step(bytes(vector.clientFinal));
    expect(done.type === 'success' && text(done.data)).toBe(vector.serverFinal);
    // The client verifies the signature carried by the success reply.
    const client = rfcClient(vector);
    client.initialResponse();
    await client.respond(bytes(vector.serverFirst));
    await expect(client.complete(bytes(vector.serverFinal))).resolves.toBeUndefined();
  });

  it('server without an initial response asks with an empty challenge', async () => {
    const session = (await rfcServer(vector)).createSession(vector.mechanism, { tls: false });
    expect(expectChallenge(await session.start())).toEqual(new Uint8Array(0));
    expect(text(expectChallenge(await session.step(bytes(vector.clientFirst))))).toBe(vector.serverFirst);
  });
});

describe('SCRAM failures', () => {
  it('client: a tampered server signature is an error', async () => {
    const client = rfcClient(rfc7677);
    client.initialResponse();
    await client.respond(bytes(rfc7677.serverFirst));
    const tampered = rfc7677.serverFinal.replace('6rri', '6rrj');
    await expect(client.respond(bytes(tampered))).rejects.toMatchObject({ code: 'ERR_SASL_SERVER_SIGNATURE', side: 'remote' });
  });

  it('client: success without the server signature is an error', async () => {
    const client = rfcClient(rfc7677);
    client.initialResponse();
    await client.respond(bytes(rfc7677.serverFirst));
    await expect(client.complete()).rejects.toMatchObject({ code: 'ERR_SASL_SERVER_SIGNATURE' });
    const early = rfcClient(rfc7677);
    early.initialResponse();
    await expect(early.complete()).rejects.toMatchObject({ code: 'ERR_SASL_SERVER_SIGNATURE' });
  });

  it('client: e= in server-final is an authentication failure', async () => {
    const client = rfcClient(rfc7677);
    client.initialResponse();
    await client.respond(bytes(rfc7677.serverFirst));
    await expect(client.respond(bytes('e=invalid-proof'))).rejects.toMatchObject({ code: 'ERR_SASL_AUTH_FAILED', message: 'SCRAM server error: invalid-proof' });
  });

  it('server: a wrong password gives a wrong proof and 535 5.7.8', async () => {
    const session = (await rfcServer(rfc7677)).createSession('SCRAM-SHA-256', { tls: false });
    const step = await exchange(rfcClient(rfc7677, 'pencil2'), session);
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_AUTH_FAILED');
    expect(step.type === 'failure' && step.error.reply?.smtp).toEqual({ code: 535, enhanced: '5.7.8' });
  });

  it('server: a nonce that is not the combined nonce', async () => {
    const session = (await rfcServer(rfc7677)).createSession('SCRAM-SHA-256', { tls: false });
    await session.start(bytes(rfc7677.clientFirst));
    const step = await session.step(bytes(rfc7677.clientFinal.replace('hNlF$k0', 'hNlF$k1')));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_NONCE_MISMATCH');
  });

  it('client: a server nonce that does not extend ours', async () => {
    const client = rfcClient(rfc7677);
    client.initialResponse();
    await expect(client.respond(bytes(rfc7677.serverFirst.replace('rOprNG', 'XOprNG')))).rejects.toMatchObject({ code: 'ERR_SASL_NONCE_MISMATCH' });
    const same = rfcClient(rfc7677);
    same.initialResponse();
    await expect(same.respond(bytes('r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'))).rejects.toMatchObject({ code: 'ERR_SASL_NONCE_MISMATCH' });
  });

  it.each([
    ['below the minimum', '4095'],
    ['above the maximum', '1000001'],
    ['absurd', '4294967295'],
  ])('client: an iteration count %s is refused before any work', async (_name, count) => {
    const client = rfcClient(rfc7677);
    client.initialResponse();
    const serverFirst = rfc7677.serverFirst.replace('i=4096', `i=${count}`);
    await expect(client.respond(bytes(serverFirst))).rejects.toMatchObject({ code: expect.stringMatching(/ERR_SASL_(SCRAM_ITERATIONS|MALFORMED)/) });
  });

  it('client: the iteration bounds are options', async () => {
    const client = createSaslClient(
      'SCRAM-SHA-256',
      { username: 'user', password: new Secret('pencil') },
      { randomBytes: scriptedRandom(rfc7677.clientNonce), scramNonceLength: 20, limits: { minScramIterations: 10_000 } },
    );
    client.initialResponse();
    await expect(client.respond(bytes(rfc7677.serverFirst))).rejects.toMatchObject({ code: 'ERR_SASL_SCRAM_ITERATIONS' });
  });

  it.each([
    ['no GS2 header', 'n=user,r=abc'],
    ['an unknown flag', 'x,,n=user,r=abc'],
    ['a mandatory extension', 'n,,m=ext,n=user,r=abc'],
    ['a bad saslname escape', 'n,,n=us=2Xer,r=abc'],
    ['no nonce', 'n,,n=user'],
    ['an empty user name', 'n,,n=,r=abc'],
  ])('server: client-first with %s is malformed', async (_name, message) => {
    const session = (await rfcServer(rfc7677)).createSession('SCRAM-SHA-256', { tls: false });
    const step = await session.start(bytes(message));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_MALFORMED');
  });

  it('server: an unknown user gets a plausible, stable salt and fails at the proof', async () => {
    const backend = memoryBackend({});
    const sasl = createSaslServer({ mechanisms: ['SCRAM-SHA-256'], backend });
    const salts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const session = sasl.createSession('SCRAM-SHA-256', { tls: false });
      const client = createSaslClient('SCRAM-SHA-256', { username: 'ghost', password: new Secret('boo') });
      const first = text(expectChallenge(await session.start(client.initialResponse())));
      salts.push(/,s=([^,]+)/.exec(first)?.[1] ?? '');
      expect(first).toMatch(/,i=4096$/);
      const final = await session.step(await client.respond(bytes(first)));
      expect(final.type === 'failure' && final.error.code).toBe('ERR_SASL_AUTH_FAILED');
    }
    // The salt is the attribute after the nonce; the nonce itself may hold "s=".
    expect(salts[0]).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(salts[0]).toBe(salts[1]);
  });
});

describe('SCRAM identities', () => {
  it('escapes , and = in the user name (=2C, =3D) and round-trips it', async () => {
    const backend = memoryBackend({ 'a,b=c': { password: 'pw' } });
    const sasl = createSaslServer({ mechanisms: ['SCRAM-SHA-256'], backend });
    const client = createSaslClient('SCRAM-SHA-256', { username: 'a,b=c', password: new Secret('pw') });
    const first = text(client.initialResponse());
    expect(first).toMatch(/^n,,n=a=2Cb=3Dc,r=/);
    const step = await exchange(client, sasl.createSession('SCRAM-SHA-256', { tls: false }));
    expect(step.type === 'success' && step.identity.authcid).toBe('a,b=c');
  });

  it('sends a= and asks the backend to authorize it', async () => {
    const backend = memoryBackend({ admin: { password: 'pw' } }, { authorizations: { admin: ['bob'] } });
    const sasl = createSaslServer({ mechanisms: ['SCRAM-SHA-256'], backend });
    const client = createSaslClient('SCRAM-SHA-256', { username: 'admin', authzid: 'bob', password: new Secret('pw') });
    expect(text(client.initialResponse())).toMatch(/^n,a=bob,n=admin,r=/);
    const fresh = createSaslClient('SCRAM-SHA-256', { username: 'admin', authzid: 'bob', password: new Secret('pw') });
    const step = await exchange(fresh, sasl.createSession('SCRAM-SHA-256', { tls: false }));
    expect(step.type === 'success' && step.identity).toEqual({ mechanism: 'SCRAM-SHA-256', authcid: 'admin', authzid: 'bob' });
    expect(backend.calls).toContain('authorize:admin->bob');
  });

  it('applies SASLprep to the password (RFC 5802 §2.2): U+00A0 and U+0020 give the same keys', async () => {
    const backend = memoryBackend({ user: { password: 'a b' } });
    const sasl = createSaslServer({ mechanisms: ['SCRAM-SHA-256'], backend });
    const client = createSaslClient('SCRAM-SHA-256', { username: 'user', password: new Secret('a\u00A0b') });
    expect((await exchange(client, sasl.createSession('SCRAM-SHA-256', { tls: false }))).type).toBe('success');
    expect(() => createSaslClient('SCRAM-SHA-256', { username: 'user', password: new Secret('bad\u0007') })).toThrow(
      expect.objectContaining({ code: 'ERR_SASL_INVALID_CREDENTIALS' }),
    );
  });
});

describe('SCRAM channel binding', () => {
  const backend = memoryBackend({ user: { password: 'pencil' } });
  const sasl = createSaslServer({ mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], backend });
  const withBinding = { tls: true, channelBindings: [exporter] };

  it('offers -PLUS only when channel-binding data is available', () => {
    expect(sasl.advertise({ tls: true })).toEqual(['SCRAM-SHA-256']);
    expect(sasl.advertise(withBinding)).toEqual(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']);
  });

  it('SCRAM-SHA-256-PLUS with tls-exporter succeeds when both ends see the same data', async () => {
    const client = createSaslClient('SCRAM-SHA-256-PLUS', { username: 'user', password: new Secret('pencil'), channelBinding: exporter });
    expect(text(client.initialResponse())).toMatch(/^p=tls-exporter,,n=user,r=/);
    const step = await exchange(createSaslClient('SCRAM-SHA-256-PLUS', { username: 'user', password: new Secret('pencil'), channelBinding: exporter }), sasl.createSession('SCRAM-SHA-256-PLUS', withBinding));
    expect(step.type).toBe('success');
  });

  it('fails on a channel-binding mismatch (a man in the middle terminates TLS)', async () => {
    const other = { type: 'tls-exporter', data: new Uint8Array(32).fill(8) } as const;
    const client = createSaslClient('SCRAM-SHA-256-PLUS', { username: 'user', password: new Secret('pencil'), channelBinding: other });
    const step = await exchange(client, sasl.createSession('SCRAM-SHA-256-PLUS', withBinding));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_CHANNEL_BINDING');
  });

  it('fails on a channel-binding type the server does not have', async () => {
    const client = createSaslClient('SCRAM-SHA-256-PLUS', {
      username: 'user',
      password: new Secret('pencil'),
      channelBinding: { type: 'tls-server-end-point', data: exporter.data },
    });
    const step = await exchange(client, sasl.createSession('SCRAM-SHA-256-PLUS', withBinding));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_CHANNEL_BINDING');
  });

  it('detects a downgrade: y flag while the server offers -PLUS', async () => {
    const client = createSaslClient('SCRAM-SHA-256', { username: 'user', password: new Secret('pencil'), channelBinding: exporter });
    expect(text(client.initialResponse())).toMatch(/^y,,/);
    const fresh = createSaslClient('SCRAM-SHA-256', { username: 'user', password: new Secret('pencil'), channelBinding: exporter });
    const step = await exchange(fresh, sasl.createSession('SCRAM-SHA-256', withBinding));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_CHANNEL_BINDING');
  });

  it('accepts the y flag when the server offers no -PLUS on this connection', async () => {
    const client = createSaslClient('SCRAM-SHA-256', { username: 'user', password: new Secret('pencil'), channelBinding: exporter });
    expect((await exchange(client, sasl.createSession('SCRAM-SHA-256', { tls: true }))).type).toBe('success');
  });

  it('refuses p= on a non-PLUS mechanism, and n on a PLUS one', async () => {
    const p = await sasl.createSession('SCRAM-SHA-256', withBinding).start(bytes('p=tls-exporter,,n=user,r=abc'));
    expect(p.type === 'failure' && p.error.code).toBe('ERR_SASL_CHANNEL_BINDING');
    const n = await sasl.createSession('SCRAM-SHA-256-PLUS', withBinding).start(bytes('n,,n=user,r=abc'));
    expect(n.type === 'failure' && n.error.code).toBe('ERR_SASL_CHANNEL_BINDING');
  });

  it('refuses -PLUS on a connection without channel-binding data, and a -PLUS client without data', async () => {
    const step = await sasl.createSession('SCRAM-SHA-256-PLUS', { tls: true }).start(bytes('p=tls-exporter,,n=user,r=abc'));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_MECHANISM_UNSUPPORTED');
    expect(() => createSaslClient('SCRAM-SHA-256-PLUS', { username: 'user', password: new Secret('pencil') })).toThrow(
      expect.objectContaining({ code: 'ERR_SASL_INVALID_CREDENTIALS' }),
    );
  });
});
