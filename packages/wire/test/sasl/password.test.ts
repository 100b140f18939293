import { describe, expect, it } from 'vitest';
import { deriveScramCredentials, formatScramCredentials, hashPassword, parseScramCredentials, verifyPassword } from '../../src/sasl/index.js';
import { Secret } from '../../src/index.js';

// Small parameters: the machine is shared, and correctness does not depend on cost.
const cheap = { ln: 10, r: 8, p: 1 } as const;

describe('hashPassword / verifyPassword (scrypt)', () => {
  it('round-trips, and refuses a wrong password', async () => {
    const stored = await hashPassword(new Secret('correct horse'), cheap);
    expect(stored).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    await expect(verifyPassword(new Secret('correct horse'), stored)).resolves.toBe(true);
    await expect(verifyPassword(new Secret('correct horsf'), stored)).resolves.toBe(false);
    // A fresh salt each time.
    expect(await hashPassword(new Secret('correct horse'), cheap)).not.toBe(stored);
  });

  it('is reproducible with an injected random source', async () => {
    const randomBytes = (n: number): Uint8Array => new Uint8Array(n).fill(1);
    const a = await hashPassword(new Secret('pw'), { ...cheap, randomBytes });
    const b = await hashPassword(new Secret('pw'), { ...cheap, randomBytes });
    expect(a).toBe(b);
    expect(a.split('$')[3]).toBe('AQEBAQEBAQEBAQEBAQEBAQ');
  });

  it('a tampered hash or salt verifies false', async () => {
    const stored = await hashPassword(new Secret('pw'), cheap);
    const [, , params, salt, key] = stored.split('$');
    const flip = (s: string): string => (s.startsWith('A') ? 'B' : 'A') + s.slice(1);
    await expect(verifyPassword(new Secret('pw'), `$scrypt$${params}$${salt}$${flip(key!)}`)).resolves.toBe(false);
    await expect(verifyPassword(new Secret('pw'), `$scrypt$${params}$${flip(salt!)}$${key}`)).resolves.toBe(false);
    await expect(verifyPassword(new Secret('pw'), `$scrypt$ln=11,r=8,p=1$${salt}$${key}`)).resolves.toBe(false);
  });

  it.each([
    ['empty', ''],
    ['another algorithm', '$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA'],
    ['padding', '$scrypt$ln=10,r=8,p=1$AQEBAQEBAQEBAQEBAQEBAQ==$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['bad characters', '$scrypt$ln=10,r=8,p=1$AQEB*QEBAQEBAQEBAQEBAQ$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['a short salt', '$scrypt$ln=10,r=8,p=1$AQEB$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['absurd N', '$scrypt$ln=40,r=8,p=1$AQEBAQEBAQEBAQEBAQEBAQ$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['too much memory', '$scrypt$ln=20,r=8,p=1$AQEBAQEBAQEBAQEBAQEBAQ$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['absurd r', '$scrypt$ln=10,r=999,p=1$AQEBAQEBAQEBAQEBAQEBAQ$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['absurd p', '$scrypt$ln=10,r=8,p=999$AQEBAQEBAQEBAQEBAQEBAQ$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['too cheap', '$scrypt$ln=1,r=8,p=1$AQEBAQEBAQEBAQEBAQEBAQ$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
    ['zero r', '$scrypt$ln=10,r=0,p=1$AQEBAQEBAQEBAQEBAQEBAQ$AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE'],
  ])('rejects a malformed stored hash: %s', async (_name, stored) => {
    await expect(verifyPassword(new Secret('pw'), stored)).rejects.toMatchObject({ code: 'ERR_SASL_PASSWORD_HASH_INVALID' });
  });

  it('refuses to hash with parameters outside the limits', async () => {
    await expect(hashPassword(new Secret('pw'), { ln: 25 })).rejects.toMatchObject({ code: 'ERR_SASL_PASSWORD_HASH_INVALID' });
    await expect(hashPassword(new Secret('pw'), { ln: 4 })).rejects.toMatchObject({ code: 'ERR_SASL_PASSWORD_HASH_INVALID' });
    await expect(hashPassword(new Secret('pw'), { ...cheap, limits: { minScryptLogN: 12 } })).rejects.toMatchObject({ code: 'ERR_SASL_PASSWORD_HASH_INVALID' });
  });
});

describe('deriveScramCredentials', () => {
  it('gives the RFC 7677 keys for "pencil"', async () => {
    const credentials = await deriveScramCredentials(new Secret('pencil'), {
      hash: 'SHA-256',
      iterations: 4096,
      salt: new Uint8Array(Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64')),
    });
    expect(credentials.iterations).toBe(4096);
    expect(credentials.storedKey).toHaveLength(32);
    expect(credentials.serverKey).toHaveLength(32);
    const text = formatScramCredentials('SHA-256', credentials);
    expect(text).toMatch(/^SCRAM-SHA-256\$4096:W22ZaJ0SNY7soEsUEjb6gQ==\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/);
    expect(parseScramCredentials(text)).toEqual({ hash: 'SHA-256', credentials });
  });

  it('draws a 16-byte salt when none is given, and rejects nonsense', async () => {
    const credentials = await deriveScramCredentials(new Secret('pw'), { hash: 'SHA-1', iterations: 4096 });
    expect(credentials.salt).toHaveLength(16);
    expect(credentials.storedKey).toHaveLength(20);
    await expect(deriveScramCredentials(new Secret('pw'), { iterations: 0 })).rejects.toThrow(RangeError);
    expect(() => parseScramCredentials('SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA')).toThrow(expect.objectContaining({ code: 'ERR_SASL_PASSWORD_HASH_INVALID' }));
  });
});
