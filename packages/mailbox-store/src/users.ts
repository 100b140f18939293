import { StoreError } from './errors.js';

/**
 * User names shared by every backend. A user name becomes a directory name
 * (Maildir) or a key (PostgreSQL), so it may not reach outside the store's
 * root: no `/`, `\`, NUL or control characters, not `.`/`..`, at most 255
 * UTF-8 bytes (one path component). Case is kept: folding `Tim` and `tim`
 * together is the address resolver's decision, not the store's.
 */
const MAX_USER_BYTES = 255;
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f/\\]/u;

/** Validate a user name and return it in NFC; `ERR_STORE_INVALID_NAME` otherwise. */
export function normalizeUserName(user: string): string {
  const bad = (why: string): StoreError =>
    new StoreError('ERR_STORE_INVALID_NAME', `invalid user name ${JSON.stringify(String(user).slice(0, 100))}: ${why}`);
  if (typeof user !== 'string' || user.length === 0) throw bad('empty');
  const nfc = user.normalize('NFC');
  if (FORBIDDEN.test(nfc)) throw bad('control characters, NUL, / and \\ are not allowed');
  if (nfc === '.' || nfc === '..') throw bad('reserved');
  if (nfc.trim() !== nfc) throw bad('leading or trailing white space');
  if (Buffer.byteLength(nfc, 'utf8') > MAX_USER_BYTES) throw bad(`longer than ${MAX_USER_BYTES} bytes`);
  return nfc;
}
