/**
 * The Pigeonpost index of one Maildir folder: what Maildir files cannot hold
 * (MODSEQ per message, HIGHESTMODSEQ, the expunge log for QRESYNC, the cached
 * MIME structure), in an append-only log beside dovecot-uidlist:
 * `pigeonpost-index.log`.
 *
 * Each record is one line, `<crc32 as 8 hex> <JSON>\n`. Records are only
 * appended, and only while the folder's dovecot-uidlist.lock is held, so
 * there is one writer at a time across processes. A reader takes every
 * record up to the first line that is incomplete (a crash mid-append, or a
 * writer still writing) or whose checksum fails; under the lock, an
 * incomplete tail is cut off, and a bad record in the middle makes the whole
 * index rebuilt from the files (it holds nothing that cannot be rebuilt,
 * except MODSEQ history: see `rebuildFloor`).
 *
 * The log is compacted (rewritten to a temp file, fsynced, renamed over) when
 * it holds more than twice the records needed to describe the folder.
 */
import { isAscii } from 'node:buffer';
import * as zlib from 'node:zlib';
import { imapBodyStructure } from '@pigeonpost/mime';
import type { MessageStructure } from '../structure.js';
import { sortInfo } from './filename.js';
import { MaildirMessage } from './message.js';

/** Header: the first record. `uv` ties the index to the uidlist's UIDVALIDITY; `floor` is the first MODSEQ after a rebuild. */
export interface HeaderRecord {
  readonly t: 'H';
  readonly v: 1;
  readonly uv: number;
  readonly floor: number;
}
/** A message entered the folder (or was re-described by a compaction). */
export interface AddRecord {
  readonly t: 'A';
  readonly u: number;
  readonly m: number;
  /** Info letters of the file name (flags), sorted. */
  readonly i: string;
  readonly s: number;
  /** INTERNALDATE; absent when not known yet (a file indexed from its name: the mtime is read on demand). */
  readonly d?: number;
  readonly b: string;
  readonly st?: MessageStructure;
  /** Writer id (which store wrote it), so a watcher can tell its own changes from others'. */
  readonly w?: string;
}
/**
 * Flags of messages changed, in one of two forms: explicit (`u` and `i`, the
 * new info letters per UID), or, for a STORE that added and/or removed the
 * same letters on every message it changed, a delta: `r` (UID ranges, as
 * `[first, last, first, last, …]`), `a` (letters added) and `d` (letters
 * removed). The delta form keeps a STORE on 100k messages one short line.
 */
export interface FlagsRecord {
  readonly t: 'F';
  readonly u?: readonly number[];
  readonly m: number;
  /** New info letters per UID, same order as `u`. */
  readonly i?: readonly string[];
  readonly r?: readonly number[];
  readonly a?: string;
  readonly d?: string;
  readonly w?: string;
}
export interface ExpungeRecord {
  readonly t: 'X';
  readonly u: readonly number[];
  readonly m: number;
  readonly w?: string;
}
/**
 * The MIME structure of a message, computed after it was indexed (a folder
 * indexed from its files gets structures on first use, not at open). Applies
 * only while the message with that UID has that base name (the file's
 * content never changes under a base name); ignored otherwise. No MODSEQ: it
 * changes nothing a client sees. Compaction folds it into the add record.
 */
export interface StructureRecord {
  readonly t: 'S';
  readonly u: number;
  readonly b: string;
  readonly st: MessageStructure;
  readonly w?: string;
}
/**
 * MODSEQ `m` was handed out without a record per message: the messages a sync
 * found and indexed from their names, kept by the checkpoint only. Should the
 * checkpoint be lost, they are indexed again above this.
 */
export interface ModSeqRecord {
  readonly t: 'M';
  readonly m: number;
  readonly w?: string;
}
export type IndexRecord = HeaderRecord | AddRecord | FlagsRecord | ExpungeRecord | StructureRecord | ModSeqRecord;

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** zlib's CRC-32 (the same IEEE polynomial), native since Node 20.15 / 22.2: a 100 MB index log is checked in milliseconds. */
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;

export function crc32(data: Uint8Array): number {
  if (nativeCrc32 !== undefined) return nativeCrc32(data) >>> 0;
  return crc32Js(data);
}

/** The table-driven CRC-32, for Node versions without zlib.crc32. */
export function crc32Js(data: Uint8Array): number {
  let crc = -1;
  for (let i = 0; i < data.length; i++) crc = CRC_TABLE[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

export function encodeRecord(record: IndexRecord): Buffer {
  return encodeRecordAt(record).data;
}

const ST_KEY = Buffer.from(',"st":', 'latin1');
/**
 * The key of the IMAP BODYSTRUCTURE string cached right after a record's
 * structure (`...,"st":{...},"bs1":"..."}`), so a warm FETCH BODYSTRUCTURE
 * reads a string instead of parsing and formatting the structure. The number
 * is the version of `@pigeonpost/mime`'s BODYSTRUCTURE formatting it was made
 * with: when that formatting changes, a new key makes readers ignore the old
 * strings (and format from the structure again).
 */
export const BS_KEY = Buffer.from(',"bs1":', 'latin1');

/** The cached BODYSTRUCTURE of a structure as ASCII-only JSON (a string literal); undefined if it cannot be formatted. */
export function bodyStructureJson(structure: MessageStructure): string | undefined {
  try {
    return asciiJson(JSON.stringify(imapBodyStructure(structure)));
  } catch {
    return undefined;
  }
}

/** `cachedBodyStructureAt`: the string goes on past the bytes given (read further). */
export const READ_MORE: unique symbol = Symbol('read more');

/**
 * The BODYSTRUCTURE cached after a structure that ends at `end` (exclusive) in
 * `buf`: undefined when the record has none (older records), READ_MORE when
 * its end is not in `buf`.
 */
export function cachedBodyStructureAt(buf: Buffer, end: number): string | undefined | typeof READ_MORE {
  if (end >= buf.length) return READ_MORE;
  if (buf[end] !== BS_KEY[0]) return undefined;
  if (end + BS_KEY.length > buf.length) return READ_MORE;
  if (buf.compare(BS_KEY, 0, BS_KEY.length, end, end + BS_KEY.length) !== 0) return undefined;
  const start = end + BS_KEY.length;
  const nl = buf.indexOf(0x0a, start);
  if (nl < 0) return READ_MORE;
  // `"...."}` then the newline: the string literal is [start, nl - 1).
  const stop = nl - 1;
  if (stop - start < 2 || buf[start] !== 0x22 || buf[stop - 1] !== 0x22 || buf[stop] !== 0x7d) return undefined;
  // ASCII (asciiJson), so latin1; JSON undoes the escapes (every `"` of the IMAP string is one).
  try {
    const value: unknown = JSON.parse(buf.toString('latin1', start, stop));
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Encode a record, and say where its structure's JSON is in the bytes. The
 * structure is written last in an add record (`...,"st":{...}}`), so a reader
 * can find it without parsing it and load it only when asked (see
 * `decodeRecords`' `lazyStructures`). Readers that parse whole lines see the same record.
 */
/**
 * JSON with every non-ASCII character as a `\\uXXXX` escape (the same value
 * for JSON.parse): structures are then pure ASCII bytes in the log, which a
 * reader decodes as latin1, several times faster than UTF-8.
 */
export function asciiJson(json: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[^\u0000-\u007f]/.test(json)) return json;
  // eslint-disable-next-line no-control-regex
  return json.replace(/[^\u0000-\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Parse JSON bytes: as latin1 when they are ASCII (what `asciiJson` writes), as UTF-8 otherwise (older records). */
export function parseJsonBytes(buf: Buffer, start: number, end: number): unknown {
  const bytes = buf.subarray(start, end);
  return JSON.parse(bytes.toString(isAscii(bytes) ? 'latin1' : 'utf8'));
}

export function encodeRecordAt(record: IndexRecord, structureJson?: string): { data: Buffer; structure?: readonly [number, number] } {
  let head: string;
  let st: string | undefined;
  let bs: string | undefined;
  if (structureJson !== undefined && (record.t === 'A' || record.t === 'S')) {
    // The structure already serialised (ASCII-only JSON, as `asciiJson` makes it).
    const { st: structure, ...rest } = record;
    head = JSON.stringify(rest);
    st = structureJson;
    if (structure !== undefined) bs = bodyStructureJson(structure);
  } else if ((record.t === 'A' || record.t === 'S') && record.st !== undefined) {
    const { st: structure, ...rest } = record;
    head = JSON.stringify(rest);
    st = asciiJson(JSON.stringify(structure));
    bs = bodyStructureJson(structure);
  } else head = JSON.stringify(record);
  // One buffer: `<crc> <json>\n`, the JSON written in place and checksummed there.
  const text = st === undefined ? head : `${head.slice(0, -1)},"st":${st}${bs === undefined ? '' : `,"bs1":${bs}`}}`;
  const length = Buffer.byteLength(text);
  const data = Buffer.allocUnsafe(length + 10);
  data.write(text, 9, 'utf8');
  data[8] = 0x20;
  data[length + 9] = 0x0a;
  data.write(crc32(data.subarray(9, 9 + length)).toString(16).padStart(8, '0'), 0, 'latin1');
  if (st === undefined) return { data };
  // The structure's JSON is ASCII: its length in bytes is its length.
  return { data, structure: [9 + Buffer.byteLength(head) - 1 + ST_KEY.length, st.length] };
}

export interface DecodeResult {
  readonly records: IndexRecord[];
  /**
   * With `lazyStructures`: per record, where its structure's JSON is, as
   * `[offset in data, length]`, when it was left out of the record.
   */
  readonly structures?: (readonly [number, number] | undefined)[];
  /** Bytes of `data` consumed by whole, valid records. */
  readonly consumed: number;
  /** Why decoding stopped before the end: 'partial' (an unfinished last line) or 'corrupt' (a complete line that fails). */
  readonly stop: 'end' | 'partial' | 'corrupt';
}

const NL = 0x0a;

export function decodeRecords(data: Buffer, options: { readonly lazyStructures?: boolean } = {}): DecodeResult {
  const records: IndexRecord[] = [];
  const structures: (readonly [number, number] | undefined)[] | undefined = options.lazyStructures === true ? [] : undefined;
  let offset = 0;
  while (offset < data.length) {
    const nl = data.indexOf(NL, offset);
    if (nl < 0) return { records, consumed: offset, stop: 'partial' };
    const line = data.subarray(offset, nl);
    if (line.length < 10 || line[8] !== 0x20) return { records, consumed: offset, stop: 'corrupt' };
    const sum = Number.parseInt(line.subarray(0, 8).toString('latin1'), 16);
    const json = line.subarray(9);
    if (!Number.isFinite(sum) || crc32(json) !== sum) return { records, consumed: offset, stop: 'corrupt' };
    let record: IndexRecord;
    let structure: readonly [number, number] | undefined;
    try {
      // An add (or structure) record with its structure last (`...,"st":{...}}`): parse it without the
      // structure and note where that is. The first `,"st":` is the key: the fields before
      // it are numbers and strings, where a `"` is always escaped.
      // A cached BODYSTRUCTURE may follow the structure (`...,"st":{...},"bs1":"..."}`): a JSON string,
      // where every `"` is escaped, so the last `,"bs1":` of the line is its key.
      const last = json.length > 2 ? json[json.length - 2] : -1;
      const at = structures !== undefined && (last === 0x7d || last === 0x22) ? json.indexOf(ST_KEY) : -1;
      const bsAt = at > 0 && last === 0x22 ? json.lastIndexOf(BS_KEY) : -1;
      let head: IndexRecord | undefined;
      if (at > 0) {
        try {
          head = JSON.parse(`${json.toString('utf8', 0, at)}}`) as IndexRecord;
        } catch {
          head = undefined;
        }
      }
      if (head !== undefined && (head.t === 'A' || head.t === 'S') && (last === 0x7d || bsAt > at)) {
        record = head;
        structure = [offset + 9 + at + ST_KEY.length, (last === 0x7d ? json.length - 1 : bsAt) - (at + ST_KEY.length)];
      } else {
        record = JSON.parse(json.toString('utf8')) as IndexRecord;
        // The cached BODYSTRUCTURE is not part of the record (it is read from the bytes when asked for).
        if (last === 0x22 && 'bs1' in record) delete (record as { bs1?: unknown }).bs1;
      }
    } catch {
      return { records, consumed: offset, stop: 'corrupt', ...(structures ? { structures } : {}) };
    }
    records.push(record);
    structures?.push(structure);
    offset = nl + 1;
  }
  return { records, consumed: offset, stop: 'end', ...(structures ? { structures } : {}) };
}

/**
 * applyInfoDelta for one delta over many messages, remembered per info string (a folder has
 * a handful of distinct ones): one result string per distinct info, not one per message.
 */
export function infoDelta(add: string, remove: string): (info: string) => string {
  const seen = new Map<string, string>();
  return (info) => {
    let out = seen.get(info);
    if (out === undefined) {
      out = applyInfoDelta(info, add, remove);
      if (seen.size < 4096) seen.set(info, out);
    }
    return out;
  };
}

/** Info letters after a delta: `remove` taken out, `add` put in, sorted. */
export function applyInfoDelta(info: string, add: string, remove: string): string {
  let kept = info;
  if (remove !== '') {
    kept = '';
    for (const letter of info) if (!remove.includes(letter)) kept += letter;
  }
  if (add === '') return kept;
  // Both in ASCII order (info letters always are; sortInfo makes sure of it): a merge, no sort.
  const a = sortInfo(kept);
  const b = sortInfo(add);
  let out = '';
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const ca = i < a.length ? a.charCodeAt(i) : 0x10000;
    const cb = j < b.length ? b.charCodeAt(j) : 0x10000;
    if (ca < cb) out += a[i++];
    else if (cb < ca) out += b[j++];
    else {
      out += a[i++];
      j++;
    }
  }
  return out;
}

/** The UIDs a flags record names, ascending for the delta form. */
export function flagRecordUids(record: FlagsRecord): number[] {
  if (record.r === undefined) return [...(record.u ?? [])];
  const out: number[] = [];
  for (let k = 0; k + 1 < record.r.length; k += 2) for (let uid = record.r[k]!; uid <= record.r[k + 1]!; uid++) out.push(uid);
  return out;
}

/** Ascending UIDs as `[first, last, first, last, …]`. */
export function uidRanges(uids: readonly number[]): number[] {
  const out: number[] = [];
  for (const uid of uids) {
    if (out.length > 0 && out[out.length - 1] === uid - 1) out[out.length - 1] = uid;
    else out.push(uid, uid);
  }
  return out;
}

/**
 * The folder's index, as records are applied to it: the messages (one
 * `MaildirMessage` per UID, replaced by a new version on a flag change), the
 * expunge log, UIDVALIDITY, the MODSEQ floor and HIGHESTMODSEQ.
 */
export class IndexState {
  readonly messages = new Map<number, MaildirMessage>();
  /** Expunge log: [uid, modSeq] ascending by modSeq. */
  readonly expunged: [number, number][] = [];
  uidValidity = 0;
  floor = 1;
  highestModSeq = 1;
  /** Records in the log file (those a checkpoint stands for included). */
  records = 0;
  /** The flags of an info string (the folder's keyword table; shared arrays). */
  readonly flagsOf: (info: string) => readonly string[];

  constructor(flagsOf: (info: string) => readonly string[]) {
    this.flagsOf = flagsOf;
  }

  reset(): void {
    this.messages.clear();
    this.expunged.length = 0;
    this.uidValidity = 0;
    this.floor = 1;
    this.highestModSeq = 1;
    this.records = 0;
  }

  #setFlags(uid: number, info: string, modSeq: number): void {
    const message = this.messages.get(uid);
    if (message !== undefined) this.messages.set(uid, message.withFlags(modSeq, info, this.flagsOf(info)));
  }

  /**
   * A flags record whose new message versions were made beforehand (each with the
   * record's MODSEQ and its new info letters, one per message the record changes):
   * installs them, with the state their current versions have now.
   */
  applyPrepared(record: IndexRecord & { t: 'F' }, prepared: readonly MaildirMessage[]): void {
    this.records++;
    for (const next of prepared) {
      const current = this.messages.get(next.uid);
      if (current === undefined) continue;
      next.takeStateOf(current);
      this.messages.set(next.uid, next);
    }
    this.highestModSeq = Math.max(this.highestModSeq, record.m);
  }

  /** `structureAt`: the structure stays in the log, at that place, instead of in memory. */
  apply(record: IndexRecord, structureAt?: readonly [number, number]): void {
    this.records++;
    switch (record.t) {
      case 'H':
        this.uidValidity = record.uv;
        this.floor = record.floor;
        this.highestModSeq = Math.max(this.highestModSeq, record.floor);
        break;
      case 'A':
        {
          const message = new MaildirMessage(record.u, record.m, this.flagsOf(record.i), record.s, record.b, record.i, record.d ?? Number.NaN);
          if (structureAt !== undefined) message.structureAt = structureAt;
          else message.structure = record.st;
          this.messages.set(record.u, message);
        }
        this.highestModSeq = Math.max(this.highestModSeq, record.m);
        break;
      case 'F':
        if (record.r !== undefined) {
          const delta = infoDelta(record.a ?? '', record.d ?? '');
          for (let k = 0; k + 1 < record.r.length; k += 2) {
            for (let uid = record.r[k]!; uid <= record.r[k + 1]!; uid++) {
              const message = this.messages.get(uid);
              if (message !== undefined) this.#setFlags(uid, delta(message.info), record.m);
            }
          }
        } else {
          const infos = record.i ?? [];
          (record.u ?? []).forEach((uid, i) => this.#setFlags(uid, infos[i] ?? '', record.m));
        }
        this.highestModSeq = Math.max(this.highestModSeq, record.m);
        break;
      case 'S': {
        const message = this.messages.get(record.u);
        if (message !== undefined && message.base === record.b) {
          message.structure = structureAt === undefined ? record.st : undefined;
          message.structureAt = structureAt;
        }
        break;
      }
      case 'M':
        this.highestModSeq = Math.max(this.highestModSeq, record.m);
        break;
      case 'X':
        for (const uid of record.u) {
          this.messages.delete(uid);
          this.expunged.push([uid, record.m]);
        }
        this.highestModSeq = Math.max(this.highestModSeq, record.m);
        break;
    }
  }

  /** Records that describe this state from scratch (for compaction). */
  snapshot(): IndexRecord[] {
    const out: IndexRecord[] = [{ t: 'H', v: 1, uv: this.uidValidity, floor: this.floor }];
    // The expunge log first, grouped by MODSEQ, so HIGHESTMODSEQ and VANISHED survive compaction.
    const byModSeq = new Map<number, number[]>();
    for (const [uid, m] of this.expunged) {
      const list = byModSeq.get(m);
      if (list) list.push(uid);
      else byModSeq.set(m, [uid]);
    }
    for (const m of this.messages.values()) {
      out.push({ t: 'A', u: m.uid, m: m.modSeq, i: m.info, s: m.size, ...(Number.isNaN(m.date) ? {} : { d: m.date }), b: m.base, ...(m.structure ? { st: m.structure } : {}) });
    }
    for (const [m, uids] of byModSeq) out.push({ t: 'X', u: uids, m });
    return out;
  }
}
