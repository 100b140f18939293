/**
 * Strict base64 for SASL exchanges (RFC 4648 §4 alphabet, padded). Node's
 * `Buffer.from(text, 'base64')` skips characters outside the alphabet,
 * accepts missing padding and the URL-safe alphabet: a peer could smuggle
 * bytes past a size check or two encodings of one value past a comparison.
 * These helpers accept only the canonical encoding of some byte string.
 */
import type { SaslError } from '../errors.js';
import { defaultLimits } from '../limits.js';
import { saslError } from './errors.js';

// Whole quads, then an optional final quad with one or two '=' of padding.
const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Base64 (RFC 4648 §4, padded) of `bytes`. The empty byte string encodes as the empty string. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/**
 * Decode canonical base64, or `undefined` when `text` has a character outside
 * the alphabet, whitespace, wrong or missing padding, or non-zero pad bits
 * (`QR==` is refused: only `QQ==` encodes 0x41).
 */
export function decodeBase64Strict(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0 || !base64Pattern.test(text)) return undefined;
  // RFC 4648 §3.5: the bits left over in the last character before padding must be zero.
  if (text.endsWith('==')) {
    if ((alphabet.indexOf(text.charAt(text.length - 3)) & 0x0f) !== 0) return undefined;
  } else if (text.endsWith('=')) {
    if ((alphabet.indexOf(text.charAt(text.length - 2)) & 0x03) !== 0) return undefined;
  }
  const buf = Buffer.from(text, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A client's SASL response line after decoding. */
export type SaslResponseLine =
  | { readonly type: 'response'; readonly data: Uint8Array }
  | { readonly type: 'cancel' }
  | { readonly type: 'error'; readonly error: SaslError };

export interface DecodeSaslResponseOptions {
  /** Largest decoded message accepted. Default `defaultLimits.maxSaslMessageBytes` (16384). */
  readonly maxSaslMessageBytes?: number;
}

/**
 * Decode one client response line of an AUTH/AUTHENTICATE exchange (the line
 * without CRLF). `*` is a cancel (RFC 4954 §4, RFC 3501 §6.2.2, RFC 5034
 * §4); `=` is the empty initial response (RFC 4954 §4, RFC 4959 §3) and an
 * empty line the empty continuation response — both give zero bytes. The
 * size is checked before any decoding, so an oversized line costs nothing.
 */
export function decodeSaslResponse(line: string, options: DecodeSaslResponseOptions = {}): SaslResponseLine {
  const max = options.maxSaslMessageBytes ?? defaultLimits.maxSaslMessageBytes;
  if (line === '*') return { type: 'cancel' };
  if (line === '' || line === '=') return { type: 'response', data: new Uint8Array(0) };
  // Any line longer than the base64 of `max` bytes decodes to more than `max` (or is malformed).
  if (line.length > Math.ceil(max / 3) * 4) {
    return { type: 'error', error: saslError('ERR_SASL_MESSAGE_TOO_LARGE', `SASL response exceeds ${max} bytes`) };
  }
  const data = decodeBase64Strict(line);
  if (data === undefined) return { type: 'error', error: saslError('ERR_SASL_MALFORMED', 'SASL response is not valid base64') };
  if (data.length > max) {
    return { type: 'error', error: saslError('ERR_SASL_MESSAGE_TOO_LARGE', `SASL response exceeds ${max} bytes`) };
  }
  return { type: 'response', data };
}

/**
 * Encode a SASL message for the wire. An empty message is `=` when it is an
 * initial response (RFC 4954 §4, RFC 4959 §3: the empty initial response)
 * and the empty string otherwise (an empty challenge or continuation).
 */
export function encodeSaslMessage(data: Uint8Array, options: { readonly initial?: boolean } = {}): string {
  if (data.length === 0) return options.initial === true ? '=' : '';
  return encodeBase64(data);
}
