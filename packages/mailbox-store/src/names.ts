import { StoreError } from './errors.js';
import type { StoreLimits } from './limits.js';
import { HIERARCHY_DELIMITER } from './types.js';

/**
 * Mailbox name rules shared by every backend. A name is refused when it could
 * reach outside the user's root on any backend (`..`, a leading `/` or `~`),
 * collide with Maildir's own folders (`cur`, `new`, `tmp`), carry control
 * characters or NUL, or exceed the limits. Backends may refuse more (the
 * Maildir backend refuses characters its on-disk layout cannot hold).
 */

const INBOX = 'INBOX';
const RESERVED_COMPONENTS = new Set(['cur', 'new', 'tmp', '.', '..']);
// C0 controls, DEL, C1 controls; also the IMAP LIST wildcards, which a name can never be matched by exactly.
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u001f\u007f-\u009f%*]/u;

function invalid(name: string, why: string): StoreError {
  return new StoreError('ERR_STORE_INVALID_NAME', `invalid mailbox name ${JSON.stringify(name.slice(0, 100))}: ${why}`);
}

/**
 * Validate a mailbox name and return its canonical form: NFC, and `INBOX`
 * in upper case whatever the case it was given in (RFC 9051 §5.1), also as
 * the first level of a hierarchical name (`inbox/Sub` → `INBOX/Sub`).
 */
export function normalizeMailboxName(name: string, limits: Pick<StoreLimits, 'maxMailboxNameBytes' | 'maxMailboxDepth'>): string {
  if (typeof name !== 'string' || name.length === 0) throw invalid(String(name), 'empty');
  const nfc = name.normalize('NFC');
  if (FORBIDDEN.test(nfc)) throw invalid(name, 'control characters, NUL, % and * are not allowed');
  if (nfc.startsWith(HIERARCHY_DELIMITER)) throw invalid(name, `it starts with ${HIERARCHY_DELIMITER}`);
  if (nfc.startsWith('~')) throw invalid(name, 'it starts with ~');
  if (Buffer.byteLength(nfc, 'utf8') > limits.maxMailboxNameBytes) throw invalid(name, `longer than ${limits.maxMailboxNameBytes} bytes`);
  const parts = nfc.split(HIERARCHY_DELIMITER);
  if (parts.length > limits.maxMailboxDepth) throw invalid(name, `deeper than ${limits.maxMailboxDepth} levels`);
  for (const part of parts) {
    if (part.length === 0) throw invalid(name, 'empty hierarchy level');
    // Exact match: Maildir's own folders are lower case, and `New` or `Tmp` are ordinary folder names.
    if (RESERVED_COMPONENTS.has(part)) throw invalid(name, `"${part}" is reserved`);
    if (part.trim() !== part) throw invalid(name, 'a level starts or ends with white space');
  }
  if (parts[0]!.toUpperCase() === INBOX) parts[0] = INBOX;
  return parts.join(HIERARCHY_DELIMITER);
}

/** True for the two spellings of one name (INBOX case-insensitive, NFC). */
export function isSameMailbox(a: string, b: string, limits: Pick<StoreLimits, 'maxMailboxNameBytes' | 'maxMailboxDepth'>): boolean {
  return normalizeMailboxName(a, limits) === normalizeMailboxName(b, limits);
}

/** The parent names of `name`, outermost first: `a/b/c` → [`a`, `a/b`]. */
export function parentNames(name: string): string[] {
  const parts = name.split(HIERARCHY_DELIMITER);
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join(HIERARCHY_DELIMITER));
}

// RFC 9051 §2.3.2 flag-keyword is an atom: no ( ) { SP CTL % * " \ ]
// eslint-disable-next-line no-control-regex
const ATOM_SPECIALS = /[(){ \u0000-\u001f\u007f%*"\\\]]/;
const SYSTEM = new Map(['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'].map((f) => [f.toLowerCase(), f]));

/**
 * Validate a flag: a system flag (returned in its canonical case) or a
 * keyword (returned as given). `\Recent` and other backslash flags are
 * refused: `\Recent` is session state, never stored (RFC 9051 removed it).
 */
export function normalizeFlag(flag: string, limits: Pick<StoreLimits, 'maxKeywordBytes'>): string {
  if (typeof flag !== 'string' || flag.length === 0) throw new StoreError('ERR_STORE_INVALID_FLAG', 'empty flag');
  if (flag.startsWith('\\')) {
    const system = SYSTEM.get(flag.toLowerCase());
    if (system === undefined) throw new StoreError('ERR_STORE_INVALID_FLAG', `${flag.slice(0, 64)} is not a flag that can be stored`);
    return system;
  }
  if (ATOM_SPECIALS.test(flag) || /[^\x21-\x7e]/.test(flag)) throw new StoreError('ERR_STORE_INVALID_FLAG', `keyword ${JSON.stringify(flag.slice(0, 64))} is not an IMAP atom`);
  if (flag.length > limits.maxKeywordBytes) throw new StoreError('ERR_STORE_INVALID_FLAG', `keyword longer than ${limits.maxKeywordBytes} bytes`);
  return flag;
}
