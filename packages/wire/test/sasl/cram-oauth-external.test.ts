import { describe, expect, it } from 'vitest';
import type { SaslBackend } from '../../src/sasl/index.js';
import { createSaslClient, createSaslServer } from '../../src/sasl/index.js';
import { Secret } from '../../src/index.js';
import { b64, bytes, expectChallenge, memoryBackend, scriptedRandom, text } from './helpers.js';

describe('CRAM-MD5 (RFC 2195)', () => {
  // RFC 2195 §2: challenge <1896.697170952@postoffice.reston.mci.net>, user tim, secret tanstaaftanstaaf.
  const challenge = '<1896.697170952@postoffice.reston.mci.net>';
  const response = 'tim b913a602c7eda7a495b4e6e7334d3890';
  const server = () =>
    createSaslServer({
      mechanisms: ['CRAM-MD5'],
      backend: memoryBackend({ tim: { password: 'tanstaaftanstaaf' } }),
      hostname: 'postoffice.reston.mci.net',
      clock: { now: () => 697_170_952_000 },
      randomBytes: scriptedRandom(new Uint8Array([0, 0, 0, 0, 0, 0, 0x07, 0x68])),
    });

  it('§2 example, server side: the challenge from injected randomness and time, then the digest', async () => {
    const session = server().createSession('CRAM-MD5', { tls: false });
    const first = await session.start();
    expect(text(expectChallenge(first))).toBe(challenge);
    expect(first.type === 'challenge' && first.encoded).toBe('PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+');
    expect(await session.stepEncoded('dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw')).toEqual({
      type: 'success',
      identity: { mechanism: 'CRAM-MD5', authcid: 'tim', authzid: 'tim' },
    });
  });

  it('§2 example, client side', async () => {
    const client = createSaslClient('CRAM-MD5', { username: 'tim', password: new Secret('tanstaaftanstaaf') });
    expect(client.initialResponse()).toBeUndefined();
    expect(text(await client.respond(bytes(challenge)))).toBe(response);
  });

  it('fails a wrong digest, an unknown user, an initial response and a malformed answer', async () => {
    const wrong = server().createSession('CRAM-MD5', { tls: false });
    await wrong.start();
    const bad = await wrong.step(bytes('tim b913a602c7eda7a495b4e6e7334d3891'));
    expect(bad.type === 'failure' && bad.error.code).toBe('ERR_SASL_AUTH_FAILED');
    const unknown = server().createSession('CRAM-MD5', { tls: false });
    await unknown.start();
    const who = await unknown.step(bytes('bob b913a602c7eda7a495b4e6e7334d3890'));
    expect(who.type === 'failure' && who.error.code).toBe('ERR_SASL_AUTH_FAILED');
    const ir = await server().createSession('CRAM-MD5', { tls: false }).start(bytes('tim'));
    expect(ir.type === 'failure' && ir.error.code).toBe('ERR_SASL_MALFORMED');
    const malformed = server().createSession('CRAM-MD5', { tls: false });
    await malformed.start();
    const m = await malformed.step(bytes('tim-no-digest'));
    expect(m.type === 'failure' && m.error.code).toBe('ERR_SASL_MALFORMED');
  });

  it('without a clock the timestamp is random too', async () => {
    const sasl = createSaslServer({ mechanisms: ['CRAM-MD5'], backend: memoryBackend({}) });
    const first = text(expectChallenge(await sasl.createSession('CRAM-MD5', { tls: false }).start()));
    expect(first).toMatch(/^<\d+\.\d+@localhost>$/);
  });
});

// RFC 7628 §4.1–§4.3.
const token = 'vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==';
const imapInitial =
  'bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB';
const smtpInitial =
  'bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9NTg3AWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB';
const errorChallenge =
  'eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=';

function oauthServer(verdict: 'ok' | 'invalid') {
  const seen: unknown[] = [];
  const backend: SaslBackend = {
    verifyOAuthToken: (request) => {
      seen.push({ ...request, token: request.token.expose(), connection: undefined });
      return Promise.resolve(
        verdict === 'ok' && request.token.expose() === token
          ? { ok: true }
          : { ok: false, status: 'invalid_token', scope: 'example_scope', openidConfiguration: 'https://example.com/.well-known/openid-configuration' },
      );
    },
  };
  return { seen, sasl: createSaslServer({ mechanisms: ['OAUTHBEARER', 'XOAUTH2'], backend }) };
}

describe('OAUTHBEARER (RFC 7628)', () => {
  it('§4.1 successful IMAP exchange: the client sends exactly the RFC initial response', async () => {
    const client = createSaslClient('OAUTHBEARER', { username: 'user@example.com', token: new Secret(token), host: 'server.example.com', port: 143 });
    expect(client.initialResponseEncoded()).toBe(imapInitial);
    const { sasl, seen } = oauthServer('ok');
    const step = await sasl.createSession('OAUTHBEARER', { tls: true }).startEncoded(imapInitial);
    expect(step).toEqual({ type: 'success', identity: { mechanism: 'OAUTHBEARER', authcid: 'user@example.com', authzid: 'user@example.com' } });
    expect(seen).toEqual([{ mechanism: 'OAUTHBEARER', user: 'user@example.com', token, host: 'server.example.com', port: 143, connection: undefined }]);
  });

  it('§4.2 successful SMTP exchange (port 587)', async () => {
    const client = createSaslClient('OAUTHBEARER', { username: 'user@example.com', token: new Secret(token), host: 'server.example.com', port: 587 });
    expect(client.initialResponseEncoded()).toBe(smtpInitial);
    const step = await oauthServer('ok').sasl.createSession('OAUTHBEARER', { tls: true }).startEncoded(smtpInitial);
    expect(step.type).toBe('success');
  });

  it('§4.3 failed exchange: JSON error challenge, %x01 from the client, then failure', async () => {
    const session = oauthServer('invalid').sasl.createSession('OAUTHBEARER', { tls: true });
    const first = await session.startEncoded(imapInitial);
    expect(first.type === 'challenge' && first.encoded).toBe(errorChallenge);
    const client = createSaslClient('OAUTHBEARER', { username: 'user@example.com', token: new Secret(token), host: 'server.example.com', port: 143 });
    client.initialResponse();
    expect(await client.respondEncoded(errorChallenge)).toBe('AQ==');
    expect(client.oauthError).toEqual({
      status: 'invalid_token',
      scope: 'example_scope',
      openidConfiguration: 'https://example.com/.well-known/openid-configuration',
    });
    const done = await session.stepEncoded('AQ==');
    expect(done.type === 'failure' && done.error.code).toBe('ERR_SASL_AUTH_FAILED');
    expect(done.type === 'failure' && done.error.reply?.imap).toEqual({ status: 'NO', code: 'AUTHENTICATIONFAILED' });
  });

  it('anything but %x01 after the error is malformed', async () => {
    const session = oauthServer('invalid').sasl.createSession('OAUTHBEARER', { tls: true });
    await session.startEncoded(imapInitial);
    const done = await session.step(bytes('x'));
    expect(done.type === 'failure' && done.error.code).toBe('ERR_SASL_MALFORMED');
  });

  it.each([
    ['no GS2 header', '\x01auth=Bearer abc\x01\x01'],
    ['channel binding', 'p=tls-exporter,,\x01auth=Bearer abc\x01\x01'],
    ['no auth', 'n,,\x01host=a\x01\x01'],
    ['a non-bearer scheme', 'n,,\x01auth=Basic abc\x01\x01'],
    ['a token with spaces', 'n,,\x01auth=Bearer a b\x01\x01'],
    ['no final kvsep', 'n,,\x01auth=Bearer abc\x01'],
    ['a bad port', 'n,,\x01port=http\x01auth=Bearer abc\x01\x01'],
  ])('rejects %s', async (_name, message) => {
    const step = await oauthServer('ok').sasl.createSession('OAUTHBEARER', { tls: true }).start(bytes(message));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_MALFORMED');
  });
});

describe('XOAUTH2 (Google)', () => {
  it('formats user=…^Aauth=Bearer …^A^A and succeeds', async () => {
    const client = createSaslClient('XOAUTH2', { username: 'someuser@example.com', token: new Secret(token) });
    expect(text(client.initialResponse())).toBe(`user=someuser@example.com\x01auth=Bearer ${token}\x01\x01`);
    const step = await oauthServer('ok').sasl.createSession('XOAUTH2', { tls: true }).startEncoded(b64(`user=someuser@example.com\x01auth=Bearer ${token}\x01\x01`));
    expect(step).toEqual({ type: 'success', identity: { mechanism: 'XOAUTH2', authcid: 'someuser@example.com', authzid: 'someuser@example.com' } });
  });

  it('error flow: JSON challenge, empty response, failure', async () => {
    const session = oauthServer('invalid').sasl.createSession('XOAUTH2', { tls: true });
    const first = await session.startEncoded(b64(`user=someuser@example.com\x01auth=Bearer wrong\x01\x01`));
    expect(JSON.parse(text(expectChallenge(first)))).toEqual({ status: 'invalid_token', schemes: 'bearer', scope: 'example_scope' });
    const client = createSaslClient('XOAUTH2', { username: 'someuser@example.com', token: new Secret('wrong') });
    client.initialResponse();
    expect(await client.respond(expectChallenge(first))).toEqual(new Uint8Array(0));
    const done = await session.step(new Uint8Array(0));
    expect(done.type === 'failure' && done.error.reply?.smtp).toEqual({ code: 535, enhanced: '5.7.8' });
  });

  it('is not offered, and refused with 538 5.7.11, without TLS', async () => {
    const { sasl } = oauthServer('ok');
    expect(sasl.advertise({ tls: false })).toEqual([]);
    const step = await sasl.createSession('XOAUTH2', { tls: false }).start();
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_ENCRYPTION_REQUIRED');
    expect(step.type === 'failure' && step.error.reply?.smtp).toEqual({ code: 538, enhanced: '5.7.11' });
  });
});

describe('EXTERNAL (RFC 4422 Appendix A)', () => {
  const backend = memoryBackend({}, { authorizations: { 'CN=alice': ['alice', 'CN=alice'], 'CN=ops': ['bob'] } });
  const sasl = createSaslServer({ mechanisms: ['EXTERNAL'], backend });
  const withCert = (identity: string) => ({ tls: true, external: { identity } });

  it('is offered only when the TLS layer established a client identity', () => {
    expect(sasl.advertise({ tls: true })).toEqual([]);
    expect(sasl.advertise(withCert('CN=alice'))).toEqual(['EXTERNAL']);
  });

  it('the empty initial response (=) asks for the certificate identity itself', async () => {
    const step = await sasl.createSession('EXTERNAL', withCert('CN=alice')).startEncoded('=');
    expect(step).toEqual({ type: 'success', identity: { mechanism: 'EXTERNAL', authcid: 'CN=alice', authzid: 'CN=alice' } });
  });

  it('an authorization identity is checked by the backend', async () => {
    const ok = await sasl.createSession('EXTERNAL', withCert('CN=ops')).start(bytes('bob'));
    expect(ok.type === 'success' && ok.identity.authzid).toBe('bob');
    const no = await sasl.createSession('EXTERNAL', withCert('CN=ops')).start(bytes('carol'));
    expect(no.type === 'failure' && no.error.code).toBe('ERR_SASL_AUTHZ_FAILED');
  });

  it('without an initial response the server sends an empty challenge; the client answers with its authzid', async () => {
    const session = sasl.createSession('EXTERNAL', withCert('CN=alice'));
    const client = createSaslClient('EXTERNAL', { authzid: 'alice' });
    const first = await session.start();
    const step = await session.step(await client.respond(expectChallenge(first)));
    expect(step.type === 'success' && step.identity).toEqual({ mechanism: 'EXTERNAL', authcid: 'CN=alice', authzid: 'alice' });
  });

  it('fails without a certificate identity', async () => {
    const step = await sasl.createSession('EXTERNAL', { tls: true }).start(new Uint8Array(0));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_MECHANISM_UNSUPPORTED');
  });
});
