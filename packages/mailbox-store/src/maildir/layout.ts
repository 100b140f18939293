/**
 * Where things live on disk (Maildir++, as Dovecot's default `maildir:`
 * layout):
 *
 *   <root>/<user>/Maildir/                 INBOX: cur/ new/ tmp/, dovecot-uidlist, dovecot-keywords
 *   <root>/<user>/Maildir/.Sent/           a folder, with a `maildirfolder` marker file
 *   <root>/<user>/Maildir/.Work.2024/      `Work/2024` — hierarchy '/' in the API is '.' on disk
 *   <root>/<user>/Maildir/.&AMk-t&AOk-/    `Été`: each level in modified UTF-7 (RFC 3501 §5.1.3)
 *   <root>/<user>/Maildir/subscriptions    Dovecot's v2 subscriptions file
 *
 * A '.' inside one level cannot be represented (it is the on-disk
 * separator), so this backend refuses it with ERR_STORE_INVALID_NAME. Every
 * path built here is checked to stay inside the user's Maildir.
 */
import { resolve, sep } from 'node:path';
import { StoreError } from '../errors.js';
import type { StoreLimits } from '../limits.js';
import { normalizeMailboxName } from '../names.js';
import { HIERARCHY_DELIMITER } from '../types.js';
import { normalizeUserName } from '../users.js';
import { decodeMutf7, encodeMutf7 } from './mutf7.js';

export const INBOX = 'INBOX';
/** Longest single path component most file systems allow. */
const MAX_COMPONENT_BYTES = 255;

/**
 * User names of this backend: the shared rule (no `/`, `\`, NUL, controls,
 * not `.` or `..`, at most 255 bytes), and also no leading `.` and no `..`
 * anywhere, so a user directory is never hidden, never a Maildir++ folder
 * and never a parent reference.
 */
export function maildirUserName(user: string): string {
  const name = normalizeUserName(user);
  if (name.startsWith('.') || name.includes('..')) {
    throw new StoreError('ERR_STORE_INVALID_NAME', `invalid user name ${JSON.stringify(name.slice(0, 100))}: a leading dot or ".." is not allowed`);
  }
  return name;
}

/** Assert that `path` is `base` or inside it (defence in depth: names are validated before). */
export function assertInside(base: string, path: string): string {
  const b = resolve(base);
  const p = resolve(path);
  if (p !== b && !p.startsWith(b + sep)) throw new StoreError('ERR_STORE_INVALID_NAME', 'path escapes the user root');
  return p;
}

/** The folder directory name (`.A.B`, mUTF-7) for a normalised mailbox name; '' for INBOX. */
export function folderDirName(name: string): string {
  if (name === INBOX) return '';
  const levels = name.split(HIERARCHY_DELIMITER);
  for (const level of levels) {
    if (level.includes('.')) throw new StoreError('ERR_STORE_INVALID_NAME', `invalid mailbox name ${JSON.stringify(name.slice(0, 100))}: '.' cannot be stored in a Maildir++ folder name`);
  }
  const dir = '.' + levels.map(encodeMutf7).join('.');
  if (Buffer.byteLength(dir) > MAX_COMPONENT_BYTES) throw new StoreError('ERR_STORE_INVALID_NAME', `mailbox name too long for a Maildir++ folder (${MAX_COMPONENT_BYTES} bytes in modified UTF-7)`);
  return dir;
}

/** The mailbox name of a folder directory (`.A.B`), or undefined when it is not one we can read. */
export function mailboxNameOfDir(dir: string, limits: Pick<StoreLimits, 'maxMailboxNameBytes' | 'maxMailboxDepth'>): string | undefined {
  if (!dir.startsWith('.') || dir === '.' || dir === '..' || dir.startsWith('..')) return undefined;
  try {
    const levels = dir.slice(1).split('.').map(decodeMutf7);
    const name = normalizeMailboxName(levels.join(HIERARCHY_DELIMITER), { maxMailboxNameBytes: Number.MAX_SAFE_INTEGER, maxMailboxDepth: Math.max(limits.maxMailboxDepth, 64) });
    return name;
  } catch {
    return undefined;
  }
}

/** Normalise a mailbox name under the shared rules and this backend's own (no '.' in a level). */
export function maildirMailboxName(name: string, limits: Pick<StoreLimits, 'maxMailboxNameBytes' | 'maxMailboxDepth'>): string {
  const normal = normalizeMailboxName(name, limits);
  folderDirName(normal);
  return normal;
}

/** Dovecot's tab escaping for subscriptions v2 (lib/strescape.c). */
export function tabEscape(text: string): string {
  // eslint-disable-next-line no-control-regex -- Dovecot's escape character is \x01
  return text.replace(/[\u0001\t\r\n]/g, (c) => ({ '\u0001': '\u00011', '\t': '\u0001t', '\r': '\u0001r', '\n': '\u0001n' })[c]!);
}

export function tabUnescape(text: string): string {
  // eslint-disable-next-line no-control-regex -- Dovecot's escape character is \x01
  return text.replace(/\u0001(.)/g, (_, c: string) => ({ '1': '\u0001', t: '\t', r: '\r', n: '\n' })[c] ?? c);
}

const SUBSCRIPTIONS_V2 = 'V\t2\n\n';

/**
 * One level of a subscribed name as Dovecot 2.3 stores it: in modified UTF-7,
 * like the folder names on disk (verified against Dovecot 2.3.19: `SUBSCRIBE
 * "&AMk-t&AOk-"` writes the line `&AMk-t&AOk-`, not `Été`, and Dovecot does not
 * list a raw UTF-8 line as the mailbox). Reading also accepts a level that is
 * not valid modified UTF-7 (raw UTF-8, as Pigeonpost wrote before) as it is.
 */
function subscriptionLevel(level: string): string {
  try {
    return decodeMutf7(level).normalize('NFC');
  } catch {
    return level.normalize('NFC');
  }
}

/** Parse Dovecot's `subscriptions` file (v2: levels joined by TAB; v1: one name per line with '.' as separator), levels in modified UTF-7. */
export function parseSubscriptions(text: string): string[] {
  const names = text.startsWith(SUBSCRIPTIONS_V2)
    ? text
        .slice(SUBSCRIPTIONS_V2.length)
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('\t').map((level) => subscriptionLevel(tabUnescape(level))))
    : text
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('.').map(subscriptionLevel));
  return [...new Set(names.map((levels) => levels.join(HIERARCHY_DELIMITER)))];
}

/** Dovecot's v2 `subscriptions` file: each level in modified UTF-7, TAB-escaped, joined by TAB. */
export function serializeSubscriptions(names: readonly string[]): string {
  return SUBSCRIPTIONS_V2 + names.map((n) => n.split(HIERARCHY_DELIMITER).map((level) => tabEscape(encodeMutf7(level))).join('\t') + '\n').join('');
}
