import type { RandomBytes, SaslBackend, SaslServerStep, ScramCredentials } from '../../src/sasl/index.js';
import { deriveScramCredentials } from '../../src/sasl/index.js';
import { Secret } from '../../src/index.js';

export const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'utf8'));
export const text = (data: Uint8Array | undefined): string => Buffer.from(data ?? new Uint8Array(0)).toString('utf8');
export const b64 = (data: string): string => Buffer.from(data, 'utf8').toString('base64');

/** A random source that hands out the given chunks in order (each cut to the requested size), then fails. */
export function scriptedRandom(...chunks: (string | Uint8Array)[]): RandomBytes {
  const queue = chunks.map((chunk) => (typeof chunk === 'string' ? new Uint8Array(Buffer.from(chunk, 'latin1')) : chunk));
  return (size) => {
    const next = queue.shift();
    if (next === undefined) throw new Error('scripted random source exhausted');
    return next.subarray(0, size);
  };
}

export interface MemoryUser {
  readonly password: string;
  scram?: Partial<Record<'SHA-1' | 'SHA-256', ScramCredentials>>;
}

/** A backend over an in-memory user table, recording what it was asked. */
export function memoryBackend(
  users: Record<string, MemoryUser>,
  extra: Partial<SaslBackend> & { authorizations?: Record<string, string[]> } = {},
): SaslBackend & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    verifyPassword: ({ authcid, password }) => {
      calls.push(`verifyPassword:${authcid}`);
      return Promise.resolve(users[authcid]?.password === password.expose());
    },
    getScramCredentials: async ({ authcid, hash }) => {
      calls.push(`getScramCredentials:${authcid}:${hash}`);
      const user = users[authcid];
      if (user === undefined) return undefined;
      const stored = user.scram?.[hash];
      return stored ?? (await deriveScramCredentials(new Secret(user.password), { hash, iterations: 4096, salt: bytes('salt-' + authcid) }));
    },
    getCramMd5Secret: ({ authcid }) => {
      calls.push(`getCramMd5Secret:${authcid}`);
      const user = users[authcid];
      return Promise.resolve(user === undefined ? undefined : new Secret(user.password));
    },
    authorize: ({ authcid, authzid }) => {
      calls.push(`authorize:${authcid}->${authzid}`);
      return Promise.resolve(extra.authorizations?.[authcid]?.includes(authzid) === true);
    },
    ...extra,
  };
}

export function expectChallenge(step: SaslServerStep): Uint8Array {
  if (step.type !== 'challenge') throw new Error(`expected a challenge, got ${step.type}${step.type === 'failure' ? ` (${step.error.code})` : ''}`);
  return step.data;
}
