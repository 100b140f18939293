/**
 * dovecot-uidlist, version 3 (Dovecot 2.3 maildir-uidlist.c):
 *
 *   header: `3 V<uidvalidity> N<nextuid> G<mailbox guid, 32 hex>[ <key><value>...]`
 *   record: `<uid>[ <key><value>...] :<base file name>`
 *
 * Record keys are upper case letters (`S` physical size, `W` virtual size,
 * `P` POP3 UIDL, `O` POP3 order, `G` message GUID); unknown keys are kept.
 * Version 1 (`1 <uidvalidity> <nextuid>` / `<uid> <name>`, also Courier's
 * courierimapuiddb) is read too. Dovecot appends records in place under its
 * lock, so a reader without the lock ignores a last line without `\n`.
 * Pure: no I/O here.
 */
import { randomBytes } from 'node:crypto';

export interface UidlistRecord {
  readonly uid: number;
  /** Extension fields as written, e.g. `W1234`. */
  readonly extensions: readonly string[];
  /** Base file name (no `:2,` part). */
  readonly base: string;
}

export interface Uidlist {
  readonly version: number;
  readonly uidValidity: number;
  readonly nextUid: number;
  /** Mailbox GUID, 32 lower case hex digits. */
  readonly guid: string;
  /** Header fields other than V, N, G, kept verbatim. */
  readonly headerExtensions: readonly string[];
  /** Ascending by UID. */
  readonly records: readonly UidlistRecord[];
}

export class UidlistParseError extends Error {
  constructor(message: string) {
    super(`dovecot-uidlist: ${message}`);
    this.name = 'UidlistParseError';
  }
}

const MAX_UID = 0xffffffff;
/** Shared by every record without extensions (most of them): one array, not 100k. */
const NO_EXTENSIONS: readonly string[] = Object.freeze([]);

export function newMailboxGuid(): string {
  return randomBytes(16).toString('hex');
}

function parseUint(value: string, what: string): number {
  if (!/^\d{1,10}$/.test(value)) throw new UidlistParseError(`invalid ${what}: ${value.slice(0, 40)}`);
  const n = Number(value);
  if (n > MAX_UID) throw new UidlistParseError(`${what} out of range: ${value}`);
  return n;
}

/** A record line `<uid> :<base>` (no extensions, a plain base name) in a few character tests; undefined for anything else (the full parser decides). */
function fastRecord(line: string, prevUid: number): UidlistRecord | undefined {
  let uid = 0;
  let k = 0;
  for (; k < line.length && k < 10; k++) {
    const c = line.charCodeAt(k);
    if (c < 48 || c > 57) break;
    uid = uid * 10 + (c - 48);
  }
  if (k === 0 || k >= line.length - 2 || line.charCodeAt(k) !== 32 || line.charCodeAt(k + 1) !== 58) return undefined;
  if (uid === 0 || uid >= MAX_UID || uid < prevUid) return undefined;
  const base = line.slice(k + 2);
  if (base.includes('/') || base.includes(':')) return undefined;
  return { uid, extensions: NO_EXTENSIONS, base };
}

/** Only the header of a dovecot-uidlist (records left out), for a file known to hold the records we have. */
export function parseUidlistHeader(text: string): Uidlist {
  const nl = text.indexOf('\n');
  const header = parseUidlist(nl < 0 ? '' : text.slice(0, nl + 1));
  const last = lastRecordUid(text);
  return last >= header.nextUid ? { ...header, nextUid: last + 1 } : header;
}

/** The UID of the last complete record line, 0 when none. */
function lastRecordUid(text: string): number {
  const end = text.lastIndexOf('\n');
  if (end <= 0) return 0;
  const start = text.lastIndexOf('\n', end - 1) + 1;
  if (start === 0) return 0;
  const m = /^(\d+) /.exec(text.slice(start, end));
  return m ? Number(m[1]) : 0;
}

export function parseUidlist(text: string): Uidlist {
  return parseUidlistFast(text)?.list ?? parseUidlistFull(text);
}

/**
 * `parseUidlist`, and, when the file is the common form (see
 * parseUidlistFast), the index of each base name's record in `records`:
 * made anyway to refuse a base given twice, it lets a folder scan join the
 * directory's names to the records with one lookup per name.
 */
export function parseUidlistIndexed(text: string): { list: Uidlist; byBase?: ReadonlyMap<string, number> } {
  return parseUidlistFast(text) ?? { list: parseUidlistFull(text) };
}

/**
 * The common file (version 3, every record `<uid> :<base>`, UIDs ascending,
 * no base name twice), parsed by scanning the text: no array of lines, one
 * set insertion per record. Undefined for anything else, which the full
 * parser then reads (and judges).
 */
function parseUidlistFast(text: string): { list: Uidlist; byBase: Map<string, number> } | undefined {
  const end = text.lastIndexOf('\n');
  const first = text.indexOf('\n');
  if (first < 0 || !text.startsWith('3 ')) return undefined;
  let head: Uidlist;
  try {
    head = parseUidlistFull(text.slice(0, first + 1));
  } catch {
    return undefined;
  }
  const records: UidlistRecord[] = [];
  const seen = new Map<string, number>();
  let prevUid = 0;
  for (let at = first + 1; at < end; ) {
    const nl = text.indexOf('\n', at);
    if (nl === at) {
      at++;
      continue;
    }
    let uid = 0;
    let k = at;
    for (; k < nl && k - at < 10; k++) {
      const c = text.charCodeAt(k);
      if (c < 48 || c > 57) break;
      uid = uid * 10 + (c - 48);
    }
    if (k === at || k + 2 >= nl || text.charCodeAt(k) !== 32 || text.charCodeAt(k + 1) !== 58) return undefined;
    if (uid === 0 || uid >= MAX_UID || uid <= prevUid) return undefined;
    const base = text.slice(k + 2, nl);
    if (base.includes('/') || base.includes(':')) return undefined;
    const size = seen.size;
    seen.set(base, size);
    if (seen.size === size) return undefined;
    records.push({ uid, extensions: NO_EXTENSIONS, base });
    prevUid = uid;
    at = nl + 1;
  }
  const last = records[records.length - 1];
  const nextUid = last !== undefined && last.uid >= head.nextUid ? last.uid + 1 : head.nextUid;
  return { list: { ...head, nextUid, records }, byBase: seen };
}

function parseUidlistFull(text: string): Uidlist {
  const lastNewline = text.lastIndexOf('\n');
  // A line still being appended by another process (no \n yet) is not there yet.
  const complete = lastNewline < 0 ? '' : text.slice(0, lastNewline);
  const lines = complete.split('\n');
  const header = lines[0] ?? '';
  if (!/^\d /.test(header)) throw new UidlistParseError('corrupted header (invalid version number)');
  const version = Number(header[0]);
  let uidValidity = 0;
  let nextUid = 0;
  let guid = '';
  const headerExtensions: string[] = [];
  if (version === 1) {
    const m = /^1 (\d+) (\d+)$/.exec(header);
    if (!m) throw new UidlistParseError('corrupted header (version 1)');
    uidValidity = parseUint(m[1]!, 'UIDVALIDITY');
    nextUid = parseUint(m[2]!, 'next UID');
  } else if (version === 3) {
    for (const field of header.slice(2).split(' ')) {
      if (field === '') continue;
      const key = field[0]!;
      const value = field.slice(1);
      if (key === 'V') uidValidity = parseUint(value, 'UIDVALIDITY');
      else if (key === 'N') nextUid = parseUint(value, 'next UID');
      else if (key === 'G') {
        if (!/^[0-9a-fA-F]{32}$/.test(value)) throw new UidlistParseError(`invalid mailbox GUID: ${value.slice(0, 40)}`);
        guid = value.toLowerCase();
      } else headerExtensions.push(field);
    }
  } else {
    throw new UidlistParseError(`unsupported version ${version}`);
  }
  if (uidValidity === 0 || nextUid === 0) throw new UidlistParseError(`broken header (uidvalidity=${uidValidity}, next_uid=${nextUid})`);

  const byBase = new Map<string, UidlistRecord>();
  const byUid = new Map<number, UidlistRecord>();
  let prevUid = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const fast = version === 3 ? fastRecord(line, prevUid) : undefined;
    if (fast !== undefined) {
      // `<uid> :<base>`, the common line: no regular expression, no extension array.
      prevUid = fast.uid;
      const old = byBase.get(fast.base);
      if (old !== undefined && old.uid !== fast.uid) byUid.delete(old.uid);
      byBase.set(fast.base, fast);
      byUid.set(fast.uid, fast);
      continue;
    }
    const m = /^(\d+) (.*)$/.exec(line);
    if (!m) throw new UidlistParseError(`invalid data at line ${i + 1}`);
    const uid = parseUint(m[1]!, 'UID');
    if (uid === 0 || uid >= MAX_UID) throw new UidlistParseError(`invalid UID ${uid} at line ${i + 1}`);
    // Dovecot may append a record for a UID it already wrote (same UID, same name): later lines win.
    if (uid < prevUid) throw new UidlistParseError(`UIDs not ordered (${uid} after ${prevUid})`);
    prevUid = uid;
    let rest = m[2]!;
    const extensions: string[] = [];
    let base: string;
    if (version === 3) {
      while (rest.length > 0 && !rest.startsWith(':')) {
        const space = rest.indexOf(' ');
        const field = space < 0 ? rest : rest.slice(0, space);
        // Dovecot drops (and rewrites) invalid extension keys; so do we.
        if (/^[A-Z]/.test(field)) extensions.push(field);
        rest = space < 0 ? '' : rest.slice(space).replace(/^ +/, '');
      }
      if (!rest.startsWith(':')) throw new UidlistParseError(`invalid extended fields at line ${i + 1}`);
      base = rest.slice(1);
    } else {
      base = rest;
    }
    if (base === '' || base.includes('/')) throw new UidlistParseError(`broken file name at line ${i + 1}`);
    // A v1/v2 writer may have kept the info part; records are by base name.
    const colon = base.indexOf(':');
    if (colon >= 0) base = base.slice(0, colon);
    const record: UidlistRecord = { uid, extensions: extensions.length === 0 ? NO_EXTENSIONS : extensions, base };
    const old = byBase.get(base);
    if (old !== undefined && old.uid !== uid) byUid.delete(old.uid); // Dovecot: duplicate file entry, the later UID wins
    byBase.set(base, record);
    byUid.set(uid, record);
  }
  const records = [...byUid.values()].sort((a, b) => a.uid - b.uid);
  const last = records[records.length - 1];
  if (last !== undefined && last.uid >= nextUid) nextUid = last.uid + 1;
  return { version, uidValidity, nextUid, guid, headerExtensions, records };
}

/** Serialise as version 3, the way Dovecot 2.3 writes it when it recreates the file. */
export function serializeUidlist(list: Omit<Uidlist, 'version'>): string {
  const header = ['3', `V${list.uidValidity}`, `N${list.nextUid}`, `G${list.guid}`, ...list.headerExtensions].join(' ');
  let out = `${header}\n`;
  for (const record of list.records) {
    out += `${record.uid}${record.extensions.map((e) => ` ${e}`).join('')} :${record.base}\n`;
  }
  return out;
}
