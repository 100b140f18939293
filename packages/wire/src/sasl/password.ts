/**
 * Storing credentials: scrypt password hashes in a self-describing PHC
 * string, and SCRAM stored keys (with the RFC 5803 text form) so a server can
 * offer SCRAM without keeping passwords.
 */
import { scrypt, timingSafeEqual } from 'node:crypto';
import type { ScryptOptions } from 'node:crypto';
import type { Secret } from '../secret.js';
import { decodeBase64Strict, encodeBase64 } from './base64.js';
import type { RandomBytes } from './bytes.js';
import { defaultRandomBytes, encodeUtf8 } from './bytes.js';
import { saslError } from './errors.js';
import type { PasswordHashLimits } from '../limits.js';
import { passwordHashLimitKeys, resolveLimits } from '../limits.js';
import { deriveScramKeysFromPassword, scramHashLength } from './mechanisms/scram.js';
import type { ScramCredentials, ScramHash } from './types.js';

function scryptAsync(password: Uint8Array, salt: Uint8Array, keyLength: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, options, (error, key) => (error === null ? resolve(key) : reject(error)));
  });
}

export interface HashPasswordOptions {
  /** Cost exponent: N = 2^ln. Default 15 (N = 32768, 32 MiB with r = 8; RFC 7914 §2 suggests 2^14 for interactive use). */
  readonly ln?: number;
  /** Block size. Default 8 (RFC 7914 §2). */
  readonly r?: number;
  /** Parallelism. Default 1 (RFC 7914 §2). */
  readonly p?: number;
  /** Salt length in bytes, 8 to 64. Default 16 (NIST SP 800-132 §5.1: at least 128 bits). */
  readonly saltBytes?: number;
  /** Derived key length in bytes, 16 to 64. Default 32. */
  readonly keyBytes?: number;
  readonly randomBytes?: RandomBytes;
  readonly limits?: Partial<PasswordHashLimits>;
}

export interface VerifyPasswordOptions {
  readonly limits?: Partial<PasswordHashLimits>;
}

interface ScryptParams {
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

function invalidHash(message: string): Error {
  return saslError('ERR_SASL_PASSWORD_HASH_INVALID', message, { reply: false });
}

/** Check N, r, p against the limits; returns the options for `crypto.scrypt`. */
function scryptOptions(params: ScryptParams, limits: PasswordHashLimits): ScryptOptions {
  const { ln, r, p } = params;
  if (!Number.isInteger(ln) || ln < limits.minScryptLogN || ln > limits.maxScryptLogN) {
    throw invalidHash(`scrypt ln must be an integer in [${limits.minScryptLogN}, ${limits.maxScryptLogN}]`);
  }
  if (!Number.isInteger(r) || r < 1 || r > limits.maxScryptBlockSize) throw invalidHash(`scrypt r must be an integer in [1, ${limits.maxScryptBlockSize}]`);
  if (!Number.isInteger(p) || p < 1 || p > limits.maxScryptParallelism) throw invalidHash(`scrypt p must be an integer in [1, ${limits.maxScryptParallelism}]`);
  const N = 2 ** ln;
  if (128 * N * r > limits.maxScryptMemoryBytes) throw invalidHash(`scrypt parameters need more than ${limits.maxScryptMemoryBytes} bytes`);
  // OpenSSL's EVP_PBE_scrypt needs 128·r·(N + 2) bytes for V plus 128·r·p for B; allow exactly that plus slack.
  return { N, r, p, maxmem: 128 * r * (N + 2 + p) + 64 * 1024 };
}

function passwordBytes(password: Secret<string>): Uint8Array | undefined {
  return encodeUtf8(password.expose());
}

// PHC string format, base64 without padding (the standard alphabet).
const phc = /^\$scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,3}),p=([0-9]{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function encodeUnpadded(bytes: Uint8Array): string {
  return encodeBase64(bytes).replace(/=+$/, '');
}

function decodeUnpadded(text: string): Uint8Array | undefined {
  if (text.length % 4 === 1) return undefined;
  return decodeBase64Strict(text + '='.repeat((4 - (text.length % 4)) % 4));
}

/**
 * Hash a password with scrypt (RFC 7914) into a self-describing string,
 * `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` (PHC string format, unpadded base64).
 * The password's UTF-8 bytes are hashed as given: no normalisation (apply
 * `saslprep` first if users type passwords on differently-normalising systems).
 */
export async function hashPassword(password: Secret<string>, options: HashPasswordOptions = {}): Promise<string> {
  const limits = resolveLimits(passwordHashLimitKeys, options.limits);
  const params = { ln: options.ln ?? 15, r: options.r ?? 8, p: options.p ?? 1 };
  const scryptOpts = scryptOptions(params, limits);
  const saltBytes = options.saltBytes ?? 16;
  const keyBytes = options.keyBytes ?? 32;
  if (!Number.isInteger(saltBytes) || saltBytes < 8 || saltBytes > 64) throw new RangeError('saltBytes must be an integer in [8, 64]');
  if (!Number.isInteger(keyBytes) || keyBytes < 16 || keyBytes > 64) throw new RangeError('keyBytes must be an integer in [16, 64]');
  const bytes = passwordBytes(password);
  if (bytes === undefined) throw saslError('ERR_SASL_INVALID_CREDENTIALS', 'password is not valid Unicode', { reply: false });
  const salt = (options.randomBytes ?? defaultRandomBytes)(saltBytes).subarray(0, saltBytes);
  const key = await scryptAsync(bytes, salt, keyBytes, scryptOpts);
  return `$scrypt$ln=${params.ln},r=${params.r},p=${params.p}$${encodeUnpadded(salt)}$${encodeUnpadded(key)}`;
}

/**
 * Check `password` against a string from `hashPassword`, in constant time.
 * Resolves false for a wrong password; rejects with
 * `ERR_SASL_PASSWORD_HASH_INVALID` when `stored` is malformed or asks for
 * parameters beyond the limits (a tampered record must not make us spin).
 */
export async function verifyPassword(password: Secret<string>, stored: string, options: VerifyPasswordOptions = {}): Promise<boolean> {
  const limits = resolveLimits(passwordHashLimitKeys, options.limits);
  const match = phc.exec(stored);
  if (match === null) throw invalidHash('stored password hash is not a $scrypt$ string');
  const params = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  const salt = decodeUnpadded(match[4] ?? '');
  const expected = decodeUnpadded(match[5] ?? '');
  if (salt === undefined || expected === undefined || salt.length < 8 || salt.length > 64 || expected.length < 16 || expected.length > 64) {
    throw invalidHash('stored password hash has a malformed salt or key');
  }
  const scryptOpts = scryptOptions(params, limits);
  const bytes = passwordBytes(password);
  if (bytes === undefined) return false;
  const actual = await scryptAsync(bytes, salt, expected.length, scryptOpts);
  return timingSafeEqual(actual, expected);
}

export interface DeriveScramCredentialsOptions {
  /** Default 'SHA-256'. */
  readonly hash?: ScramHash;
  /** PBKDF2 iterations. Default 4096 (RFC 7677 §4 minimum; clients here refuse fewer by default). */
  readonly iterations?: number;
  /** Default: 16 random bytes. */
  readonly salt?: Uint8Array;
  readonly randomBytes?: RandomBytes;
}

/**
 * The SCRAM stored keys for a user record (RFC 5802 §3): what
 * `backend.getScramCredentials` returns. The password is prepared with
 * SASLprep first (RFC 5802 §2.2 Normalize), as SCRAM clients do.
 */
export async function deriveScramCredentials(password: Secret<string>, options: DeriveScramCredentialsOptions = {}): Promise<ScramCredentials> {
  const iterations = options.iterations ?? 4096;
  if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > 0x7fffffff) throw new RangeError('iterations must be an integer in [1, 2^31 - 1]');
  const salt = options.salt ?? (options.randomBytes ?? defaultRandomBytes)(16).subarray(0, 16);
  if (salt.length === 0) throw new RangeError('salt must not be empty');
  return deriveScramKeysFromPassword(password.expose(), options.hash ?? 'SHA-256', salt, iterations);
}

/** RFC 5803 §3 text form: `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64). */
export function formatScramCredentials(hash: ScramHash, credentials: ScramCredentials): string {
  const { salt, iterations, storedKey, serverKey } = credentials;
  return `SCRAM-${hash}$${iterations}:${encodeBase64(salt)}$${encodeBase64(storedKey)}:${encodeBase64(serverKey)}`;
}

/** Parse the RFC 5803 text form; rejects with `ERR_SASL_PASSWORD_HASH_INVALID` when malformed. */
export function parseScramCredentials(text: string): { readonly hash: ScramHash; readonly credentials: ScramCredentials } {
  const match = /^SCRAM-(SHA-1|SHA-256)\$([1-9][0-9]{0,9}):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/.exec(text);
  if (match === null) throw invalidHash('not an RFC 5803 SCRAM credential string');
  const hash = match[1] as ScramHash;
  const iterations = Number(match[2]);
  const salt = decodeBase64Strict(match[3] ?? '');
  const storedKey = decodeBase64Strict(match[4] ?? '');
  const serverKey = decodeBase64Strict(match[5] ?? '');
  const length = scramHashLength(hash);
  if (iterations > 0x7fffffff || salt === undefined || salt.length === 0 || storedKey?.length !== length || serverKey?.length !== length) {
    throw invalidHash('malformed RFC 5803 SCRAM credential string');
  }
  return { hash, credentials: { salt, iterations, storedKey, serverKey } };
}
