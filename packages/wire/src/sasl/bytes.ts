/** Byte helpers shared by the mechanisms: strict UTF-8, constant-time comparison, nonces. */
import { randomBytes as cryptoRandomBytes, timingSafeEqual } from 'node:crypto';

/**
 * A source of random bytes. The default is `crypto.randomBytes`; tests inject
 * a scripted one so the RFC example exchanges reproduce byte for byte.
 */
export type RandomBytes = (size: number) => Uint8Array;

export const defaultRandomBytes: RandomBytes = (size) => cryptoRandomBytes(size);

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Decode UTF-8, or `undefined` when the bytes are not well-formed UTF-8 (overlongs, surrogates, truncation). */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return utf8Decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

// A lone surrogate cannot be encoded as UTF-8; TextEncoder would silently turn it into U+FFFD.
const loneSurrogate = /\p{Cs}/u;

/** Encode as UTF-8, or `undefined` when the string holds a lone surrogate. */
export function encodeUtf8(text: string): Uint8Array | undefined {
  return loneSurrogate.test(text) ? undefined : utf8Encoder.encode(text);
}

/** UTF-8 of a string we built ourselves (ASCII grammar, already validated parts). */
export function utf8(text: string): Uint8Array {
  return utf8Encoder.encode(text);
}

export function concatBytes(...parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * Compare two byte strings in time that depends only on their lengths. The
 * lengths of what we compare (digests, channel-binding data we hold) are not
 * secret, so an early return on a length difference leaks nothing.
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/**
 * A nonce of `length` printable ASCII characters other than ',' (RFC 5802 §7
 * `printable`), from `randomBytes` by rejection sampling so every allowed
 * character is equally likely. An injected source that returns printable
 * bytes (`Buffer.from('rOprNGfwEbeRWgbNEkqO')`) yields exactly that nonce.
 */
export function printableNonce(randomBytes: RandomBytes, length: number): string {
  let out = '';
  // Each round keeps about 93/256 of the bytes; the bound only stops a broken source from looping forever.
  for (let round = 0; out.length < length; round++) {
    if (round > 64) throw new Error('randomBytes did not yield enough printable bytes');
    const bytes = randomBytes(length - out.length);
    for (const byte of bytes) {
      if (byte >= 0x21 && byte <= 0x7e && byte !== 0x2c) out += String.fromCharCode(byte);
      if (out.length === length) break;
    }
  }
  return out;
}
