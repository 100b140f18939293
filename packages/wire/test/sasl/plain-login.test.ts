import { describe, expect, it } from 'vitest';
import { createSaslClient, createSaslServer } from '../../src/sasl/index.js';
import { Secret } from '../../src/index.js';
import { bytes, expectChallenge, memoryBackend, text } from './helpers.js';

const tls = { tls: true } as const;
const users = { tim: { password: 'tanstaaftanstaaf' }, Kurt: { password: 'xipj3plmq' } };

function server(extra: Parameters<typeof memoryBackend>[1] = {}) {
  const backend = memoryBackend(users, extra);
  return { backend, sasl: createSaslServer({ mechanisms: ['PLAIN', 'LOGIN'], backend }) };
}

describe('PLAIN (RFC 4616)', () => {
  it('§4 example: authcid "tim", password "tanstaaftanstaaf", after an empty challenge', async () => {
    const { sasl } = server();
    const session = sasl.createSession('PLAIN', tls);
    const first = await session.start();
    expect(expectChallenge(first)).toEqual(new Uint8Array(0));
    expect(first.type === 'challenge' && first.encoded).toBe('');
    const done = await session.step(bytes('\0tim\0tanstaaftanstaaf'));
    expect(done).toEqual({ type: 'success', identity: { mechanism: 'PLAIN', authcid: 'tim', authzid: 'tim' } });
    expect(session.identity?.authcid).toBe('tim');
    expect(session.state).toBe('done');
  });

  it('§4 example: authzid "Ursel", authcid "Kurt", password "xipj3plmq", when Kurt may act as Ursel', async () => {
    const { sasl, backend } = server({ authorizations: { Kurt: ['Ursel'] } });
    const step = await sasl.createSession('PLAIN', tls).start(bytes('Ursel\0Kurt\0xipj3plmq'));
    expect(step).toEqual({ type: 'success', identity: { mechanism: 'PLAIN', authcid: 'Kurt', authzid: 'Ursel' } });
    expect(backend.calls).toEqual(['verifyPassword:Kurt', 'authorize:Kurt->Ursel']);
  });

  it('refuses the authzid when the backend does not allow it (AUTHORIZATIONFAILED)', async () => {
    const { sasl } = server();
    const step = await sasl.createSession('PLAIN', tls).start(bytes('Ursel\0Kurt\0xipj3plmq'));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_AUTHZ_FAILED');
    expect(step.type === 'failure' && step.error.reply?.imap).toEqual({ status: 'NO', code: 'AUTHORIZATIONFAILED' });
  });

  it('refuses a wrong password with 535 5.7.8', async () => {
    const { sasl } = server();
    const step = await sasl.createSession('PLAIN', tls).start(bytes('\0tim\0wrong'));
    expect(step.type).toBe('failure');
    if (step.type !== 'failure') return;
    expect(step.error.code).toBe('ERR_SASL_AUTH_FAILED');
    expect(step.error.reply?.smtp).toEqual({ code: 535, enhanced: '5.7.8' });
    expect(step.error.reply?.imap).toEqual({ status: 'NO', code: 'AUTHENTICATIONFAILED' });
  });

  it.each([
    ['no NUL at all', 'timtanstaaftanstaaf'],
    ['one NUL only', 'tim\0tanstaaftanstaaf'],
    ['a NUL in the password', '\0tim\0tanst\0aaf'],
    ['an empty authcid', '\0\0tanstaaftanstaaf'],
    ['an empty password', '\0tim\0'],
    ['the empty initial response', ''],
  ])('rejects %s as malformed', async (_name, message) => {
    const { sasl, backend } = server();
    const step = await sasl.createSession('PLAIN', tls).start(bytes(message));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_MALFORMED');
    expect(backend.calls).toEqual([]);
  });

  it('rejects invalid UTF-8', async () => {
    const { sasl } = server();
    const step = await sasl.createSession('PLAIN', tls).start(new Uint8Array([0, 0x74, 0xc3, 0x28, 0, 0x70]));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_MALFORMED');
  });

  it('enforces identity and password length limits', async () => {
    const backend = memoryBackend(users);
    const sasl = createSaslServer({ mechanisms: ['PLAIN'], backend, limits: { maxSaslIdentityBytes: 8, maxSaslPasswordBytes: 10 } });
    const longName = await sasl.createSession('PLAIN', tls).start(bytes('\0' + 'x'.repeat(9) + '\0pw'));
    expect(longName.type === 'failure' && longName.error.code).toBe('ERR_SASL_MESSAGE_TOO_LARGE');
    const longPassword = await sasl.createSession('PLAIN', tls).start(bytes('\0tim\0' + 'p'.repeat(11)));
    expect(longPassword.type === 'failure' && longPassword.error.code).toBe('ERR_SASL_MESSAGE_TOO_LARGE');
    expect(backend.calls).toEqual([]);
  });

  it('client builds the same messages, and refuses NUL in its credentials', () => {
    const client = createSaslClient('PLAIN', { username: 'Kurt', authzid: 'Ursel', password: new Secret('xipj3plmq') });
    expect(text(client.initialResponse())).toBe('Ursel\0Kurt\0xipj3plmq');
    expect(client.initialResponseEncoded()).toBe(Buffer.from('Ursel\0Kurt\0xipj3plmq').toString('base64'));
    expect(() => createSaslClient('PLAIN', { username: 'a\0b', password: new Secret('x') })).toThrow(
      expect.objectContaining({ code: 'ERR_SASL_INVALID_CREDENTIALS', side: 'local' }),
    );
    expect(() => createSaslClient('PLAIN', { username: 'tim' })).toThrow(expect.objectContaining({ code: 'ERR_SASL_INVALID_CREDENTIALS' }));
  });

  it('client answers the empty challenge with the message when it did not send an initial response', async () => {
    const client = createSaslClient('PLAIN', { username: 'tim', password: new Secret('tanstaaftanstaaf') });
    expect(await client.respondEncoded('')).toBe('AHRpbQB0YW5zdGFhZnRhbnN0YWFm');
    await client.complete();
  });
});

describe('LOGIN (draft-murchison-sasl-login)', () => {
  it('prompts Username: then Password:, as SMTP servers do', async () => {
    const { sasl } = server();
    const session = sasl.createSession('login', tls);
    const first = await session.start();
    expect(first.type === 'challenge' && first.encoded).toBe('VXNlcm5hbWU6');
    const second = await session.stepEncoded('dGlt');
    expect(second.type === 'challenge' && second.encoded).toBe('UGFzc3dvcmQ6');
    const done = await session.stepEncoded(Buffer.from('tanstaaftanstaaf').toString('base64'));
    expect(done).toEqual({ type: 'success', identity: { mechanism: 'LOGIN', authcid: 'tim', authzid: 'tim' } });
  });

  it('takes the user name as initial response (AUTH LOGIN dGlt)', async () => {
    const { sasl } = server();
    const session = sasl.createSession('LOGIN', tls);
    expect(text(expectChallenge(await session.startEncoded('dGlt')))).toBe('Password:');
    const done = await session.step(bytes('nope'));
    expect(done.type === 'failure' && done.error.code).toBe('ERR_SASL_AUTH_FAILED');
  });

  it('client and server complete an exchange, with and without initial response', async () => {
    for (const loginInitialResponse of [false, true]) {
      const { sasl } = server();
      const session = sasl.createSession('LOGIN', tls);
      const client = createSaslClient('LOGIN', { username: 'tim', password: new Secret('tanstaaftanstaaf') }, { loginInitialResponse });
      let step = await session.startEncoded(client.initialResponseEncoded());
      while (step.type === 'challenge') step = await session.stepEncoded(await client.respondEncoded(step.encoded));
      expect(step.type).toBe('success');
    }
  });
});
