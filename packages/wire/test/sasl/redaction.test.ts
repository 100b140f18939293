import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { inspect } from 'node:util';
import type { SaslMechanismName } from '../../src/sasl/index.js';
import { createSaslClient, createSaslServer } from '../../src/sasl/index.js';
import { PigeonpostError, Secret } from '../../src/index.js';
import { bytes, memoryBackend } from './helpers.js';

const password = 'hunter2-SECRET';
const token = 'ya29TOKENSECRET';

/** Everything an error or object could leak through: message, stack, inspect, JSON, cause. */
function leaks(value: unknown): string {
  return [inspect(value, { depth: 10, showHidden: true }), JSON.stringify(value) ?? '', String(value)].join('\n');
}

describe('no secret in logs, errors or JSON', () => {
  it('client credentials redact the password and token', () => {
    const credentials = { username: 'tim', password: new Secret(password), token: new Secret(token) };
    expect(leaks(credentials)).not.toContain(password);
    expect(leaks(credentials)).not.toContain(token);
    const client = createSaslClient('PLAIN', credentials);
    expect(leaks(client)).not.toContain(password);
  });

  it('errors from every failing exchange carry no password, token or response', async () => {
    const backend = memoryBackend({ tim: { password: 'other' } }, {
      verifyOAuthToken: () => Promise.resolve({ ok: false }),
    });
    const sasl = createSaslServer({
      mechanisms: ['PLAIN', 'LOGIN', 'SCRAM-SHA-256', 'CRAM-MD5', 'OAUTHBEARER', 'XOAUTH2'],
      backend,
    });
    const errors: unknown[] = [];
    for (const mechanism of ['PLAIN', 'LOGIN', 'SCRAM-SHA-256', 'CRAM-MD5', 'OAUTHBEARER', 'XOAUTH2'] as const) {
      const client = createSaslClient(mechanism, { username: 'tim', password: new Secret(password), token: new Secret(token) });
      const session = sasl.createSession(mechanism, { tls: true });
      let step = await session.start(client.initialResponse());
      try {
        while (step.type === 'challenge') step = await session.step(await client.respond(step.data));
      } catch (error) {
        errors.push(error);
      }
      expect(step.type).toBe('failure');
      errors.push(step);
    }
    // A malformed PLAIN message with the password in it.
    errors.push(await sasl.createSession('PLAIN', { tls: true }).start(bytes(`\0tim\0${password}\0`)));
    for (const error of errors) {
      const text = leaks(error);
      expect(text).not.toContain(password);
      expect(text).not.toContain(token);
      expect(text).not.toContain(Buffer.from(password).toString('base64'));
    }
  });

  it('client errors about bad credentials do not repeat them', () => {
    for (const bad of [`${password}\u0007`, `a\0${password}`]) {
      try {
        createSaslClient('SCRAM-SHA-256', { username: 'tim', password: new Secret(bad) });
        createSaslClient('PLAIN', { username: 'tim', password: new Secret(bad) });
        expect.unreachable();
      } catch (error) {
        expect(PigeonpostError.isInstance(error)).toBe(true);
        expect(leaks(error)).not.toContain(password);
      }
    }
  });
});

describe('server sessions never throw on peer input', () => {
  const mechanisms: SaslMechanismName[] = ['PLAIN', 'LOGIN', 'CRAM-MD5', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'OAUTHBEARER', 'XOAUTH2', 'EXTERNAL'];
  const backend = memoryBackend({ tim: { password: 'pw' } }, { verifyOAuthToken: () => Promise.resolve({ ok: true, authcid: 'tim' }) });
  const sasl = createSaslServer({ mechanisms, backend, limits: { maxSaslMessageBytes: 256 } });

  it('returns a challenge, success or typed failure for any sequence of messages', async () => {
    const message = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.string({ maxLength: 60 }).map((s) => bytes(s)),
      fc.constantFrom('n,,n=tim,r=abc', 'c=biws,r=abc,p=AAAA', '\0tim\0pw', 'n,,\x01auth=Bearer x\x01\x01', 'tim 0123').map((s) => bytes(s)),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...mechanisms), fc.option(message, { nil: undefined }), fc.array(message, { maxLength: 4 }), async (name, initial, rest) => {
        const session = sasl.createSession(name, { tls: true, external: { identity: 'tim' } });
        let step = await session.start(initial);
        for (const response of rest) {
          if (step.type !== 'challenge') break;
          step = await session.step(response);
        }
        expect(['challenge', 'success', 'failure']).toContain(step.type);
        if (step.type === 'failure') {
          expect(step.error.code).toMatch(/^ERR_SASL_/);
          // The backend never throws here, so a temporary failure would mean a mechanism threw on peer input.
          expect(step.error.code).not.toBe('ERR_SASL_TEMPORARY_FAILURE');
        }
      }),
      { numRuns: 300 },
    );
  });
});
