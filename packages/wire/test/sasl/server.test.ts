import { describe, expect, it } from 'vitest';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createSaslServer } from '../../src/sasl/index.js';
import { channels, SaslError } from '../../src/index.js';
import { b64, bytes, memoryBackend } from './helpers.js';

const users = { tim: { password: 'tanstaaftanstaaf' } };
const all = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'CRAM-MD5'] as const;

describe('createSaslServer', () => {
  it('advertises plaintext mechanisms only over TLS, unless explicitly allowed', () => {
    const backend = memoryBackend(users);
    expect(createSaslServer({ mechanisms: all, backend }).advertise({ tls: false })).toEqual(['SCRAM-SHA-256', 'CRAM-MD5']);
    expect(createSaslServer({ mechanisms: all, backend }).advertise({ tls: true })).toEqual(['SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'CRAM-MD5']);
    expect(createSaslServer({ mechanisms: all, backend, allowPlaintextWithoutTls: true }).advertise({ tls: false })).toEqual([
      'SCRAM-SHA-256',
      'PLAIN',
      'LOGIN',
      'CRAM-MD5',
    ]);
  });

  it('refuses PLAIN before TLS with 538 5.7.11 / PRIVACYREQUIRED', async () => {
    const step = await createSaslServer({ mechanisms: ['PLAIN'], backend: memoryBackend(users) })
      .createSession('PLAIN', { tls: false })
      .start(bytes('\0tim\0tanstaaftanstaaf'));
    expect(step.type === 'failure' && step.error.reply).toMatchObject({ smtp: { code: 538, enhanced: '5.7.11' }, imap: { status: 'NO', code: 'PRIVACYREQUIRED' } });
  });

  it('answers an unknown or disabled mechanism with 504 5.5.4', async () => {
    const sasl = createSaslServer({ mechanisms: ['PLAIN'], backend: memoryBackend(users) });
    for (const name of ['DIGEST-MD5', 'LOGIN', '']) {
      const step = await sasl.createSession(name, { tls: true }).start();
      expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_MECHANISM_UNSUPPORTED');
      expect(step.type === 'failure' && step.error.reply?.smtp).toEqual({ code: 504, enhanced: '5.5.4' });
    }
  });

  it('refuses at construction a mechanism whose backend method is missing, or an unknown name', () => {
    expect(() => createSaslServer({ mechanisms: ['SCRAM-SHA-256'], backend: {} })).toThrow(/getScramCredentials/);
    // @ts-expect-error — not a mechanism name
    expect(() => createSaslServer({ mechanisms: ['NTLM'], backend: {} })).toThrow(SaslError);
  });
});

describe('server sessions', () => {
  const sasl = createSaslServer({ mechanisms: ['PLAIN', 'LOGIN'], backend: memoryBackend(users) });

  it('cancel (*) ends the exchange with 501 / BAD', async () => {
    const session = sasl.createSession('LOGIN', { tls: true });
    await session.start();
    const step = await session.stepEncoded('*');
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_CANCELLED');
    expect(step.type === 'failure' && step.error.reply).toMatchObject({ smtp: { code: 501 }, imap: { status: 'BAD' } });
    expect(session.state).toBe('done');
    // The protocol layer can also cancel on its own (connection closing, command aborted).
    const other = sasl.createSession('LOGIN', { tls: true });
    await other.start();
    expect(other.cancel().type).toBe('failure');
    // And a * in place of the initial response.
    const ir = await sasl.createSession('PLAIN', { tls: true }).startEncoded('*');
    expect(ir.type === 'failure' && ir.error.code).toBe('ERR_SASL_CANCELLED');
  });

  it('enforces maxSaslMessageBytes on decoded and encoded messages', async () => {
    const small = createSaslServer({ mechanisms: ['PLAIN'], backend: memoryBackend(users), limits: { maxSaslMessageBytes: 16 } });
    const big = await small.createSession('PLAIN', { tls: true }).start(new Uint8Array(17));
    expect(big.type === 'failure' && big.error.code).toBe('ERR_SASL_MESSAGE_TOO_LARGE');
    expect(big.type === 'failure' && big.error.reply?.smtp).toEqual({ code: 500, enhanced: '5.5.6' });
    const session = small.createSession('PLAIN', { tls: true });
    await session.start();
    const encoded = await session.stepEncoded(b64('\0tim\0tanstaaftanstaaf'));
    expect(encoded.type === 'failure' && encoded.error.code).toBe('ERR_SASL_MESSAGE_TOO_LARGE');
  });

  it('malformed base64 from the client is 501 5.5.2', async () => {
    const session = sasl.createSession('PLAIN', { tls: true });
    await session.start();
    const step = await session.stepEncoded('AHRpbQB0YW5z dGFhZnRhbnN0YWFm');
    expect(step.type === 'failure' && step.error.reply?.smtp).toEqual({ code: 501, enhanced: '5.5.2' });
  });

  it('calling a session out of order is a local ERR_SASL_BAD_STATE', async () => {
    const session = sasl.createSession('PLAIN', { tls: true });
    await expect(session.step(new Uint8Array(0))).rejects.toMatchObject({ code: 'ERR_SASL_BAD_STATE', side: 'local' });
    await expect(session.stepEncoded('')).rejects.toMatchObject({ code: 'ERR_SASL_BAD_STATE' });
    await session.start(bytes('\0tim\0tanstaaftanstaaf'));
    await expect(session.step(new Uint8Array(0))).rejects.toMatchObject({ code: 'ERR_SASL_BAD_STATE' });
    await expect(session.start()).rejects.toMatchObject({ code: 'ERR_SASL_BAD_STATE' });
    await expect(session.startEncoded('=')).rejects.toMatchObject({ code: 'ERR_SASL_BAD_STATE' });
    expect(() => session.cancel()).toThrow(expect.objectContaining({ code: 'ERR_SASL_BAD_STATE' }));
  });

  it('a backend that throws gives a temporary failure (454 4.7.0), with the cause kept', async () => {
    const boom = new Error('database down');
    const failing = createSaslServer({ mechanisms: ['PLAIN'], backend: { verifyPassword: () => Promise.reject(boom) } });
    const step = await failing.createSession('PLAIN', { tls: true }).start(bytes('\0tim\0tanstaaftanstaaf'));
    expect(step.type === 'failure' && step.error.code).toBe('ERR_SASL_TEMPORARY_FAILURE');
    expect(step.type === 'failure' && step.error.reply?.smtp).toEqual({ code: 454, enhanced: '4.7.0' });
    expect(step.type === 'failure' && step.error.cause).toBe(boom);
  });

  it('keeps `this` for class-based backends', async () => {
    class Backend {
      readonly password = 'tanstaaftanstaaf';
      verifyPassword({ password }: { password: { expose(): string } }): Promise<boolean> {
        return Promise.resolve(password.expose() === this.password);
      }
    }
    const step = await createSaslServer({ mechanisms: ['PLAIN'], backend: new Backend() })
      .createSession('PLAIN', { tls: true })
      .start(bytes('\0tim\0tanstaaftanstaaf'));
    expect(step.type).toBe('success');
  });

  it('publishes the outcome on diagnostics_channel without credentials', async () => {
    const messages: unknown[] = [];
    const listener = (message: unknown): void => {
      messages.push(message);
    };
    subscribe(channels.sasl, listener);
    try {
      await sasl.createSession('PLAIN', { tls: true }).start(bytes('\0tim\0tanstaaftanstaaf'));
      await sasl.createSession('PLAIN', { tls: true }).start(bytes('\0tim\0wrong-password'));
    } finally {
      unsubscribe(channels.sasl, listener);
    }
    expect(messages).toEqual([
      { mechanism: 'PLAIN', ok: true, identity: { mechanism: 'PLAIN', authcid: 'tim', authzid: 'tim' } },
      { mechanism: 'PLAIN', ok: false, code: 'ERR_SASL_AUTH_FAILED' },
    ]);
    expect(JSON.stringify(messages)).not.toMatch(/tanstaaf|wrong-password/);
  });
});
