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
import * as zlib from 'node:zlib';
import type { MessageStructure } from '../structure.js';

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
  readonly d: number;
  readonly b: string;
  readonly st?: MessageStructure;
  /** Writer id (which store wrote it), so a watcher can tell its own changes from others'. */
  readonly w?: string;
}
export interface FlagsRecord {
  readonly t: 'F';
  readonly u: readonly number[];
  readonly m: number;
  /** New info letters per UID, same order as `u`. */
  readonly i: readonly string[];
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
export type IndexRecord = HeaderRecord | AddRecord | FlagsRecord | ExpungeRecord | StructureRecord;

/**
 * One message of the index. A class with the structure's place in the log as
 * two number fields (not a `[offset, length]` array per message): about 50
 * bytes less per message, 5 MB for 100k.
 */
export class IndexedMessage {
  uid: number;
  modSeq: number;
  info: string;
  size: number;
  internalDate: number;
  base: string;
  structure: MessageStructure | undefined;
  /** Where the structure's JSON is in the index log, when it is not held in memory: -1 when it is not there. */
  structureOffset = -1;
  structureLength = 0;

  constructor(uid: number, modSeq: number, info: string, size: number, internalDate: number, base: string, structure: MessageStructure | undefined) {
    this.uid = uid;
    this.modSeq = modSeq;
    this.info = info;
    this.size = size;
    this.internalDate = internalDate;
    this.base = base;
    this.structure = structure;
  }

  /** Where the structure's JSON is in the index log (`[offset, length]`), when it is not held in memory. */
  get structureAt(): readonly [number, number] | undefined {
    return this.structureOffset < 0 ? undefined : [this.structureOffset, this.structureLength];
  }

  set structureAt(at: readonly [number, number] | undefined) {
    this.structureOffset = at === undefined ? -1 : at[0];
    this.structureLength = at === undefined ? 0 : at[1];
  }
}

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
 * Encode a record, and say where its structure's JSON is in the bytes. The
 * structure is written last in an add record (`...,"st":{...}}`), so a reader
 * can find it without parsing it and load it only when asked (see
 * `decodeRecords`' `lazyStructures`). Readers that parse whole lines see the same record.
 */
export function encodeRecordAt(record: IndexRecord): { data: Buffer; structure?: readonly [number, number] } {
  let text: string;
  if ((record.t === 'A' || record.t === 'S') && record.st !== undefined) {
    const { st, ...rest } = record;
    text = JSON.stringify({ ...rest, st });
  } else text = JSON.stringify(record);
  const json = Buffer.from(text, 'utf8');
  const data = Buffer.concat([Buffer.from(`${crc32(json).toString(16).padStart(8, '0')} `, 'latin1'), json, Buffer.from('\n')]);
  if ((record.t !== 'A' && record.t !== 'S') || record.st === undefined) return { data };
  const at = json.indexOf(ST_KEY);
  return { data, structure: [9 + at + ST_KEY.length, json.length - 1 - (at + ST_KEY.length)] };
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
      const at = structures !== undefined && json.length > 2 && json[json.length - 2] === 0x7d ? json.indexOf(ST_KEY) : -1;
      let head: IndexRecord | undefined;
      if (at > 0) {
        try {
          head = JSON.parse(`${json.toString('utf8', 0, at)}}`) as IndexRecord;
        } catch {
          head = undefined;
        }
      }
      if (head !== undefined && (head.t === 'A' || head.t === 'S')) {
        record = head;
        structure = [offset + 9 + at + ST_KEY.length, json.length - 1 - (at + ST_KEY.length)];
      } else record = JSON.parse(json.toString('utf8')) as IndexRecord;
    } catch {
      return { records, consumed: offset, stop: 'corrupt', ...(structures ? { structures } : {}) };
    }
    records.push(record);
    structures?.push(structure);
    offset = nl + 1;
  }
  return { records, consumed: offset, stop: 'end', ...(structures ? { structures } : {}) };
}

/** The folder's index, as records are applied to it. */
export class IndexState {
  readonly messages = new Map<number, IndexedMessage>();
  /** Expunge log: [uid, modSeq] ascending by modSeq. */
  readonly expunged: [number, number][] = [];
  uidValidity = 0;
  floor = 1;
  highestModSeq = 1;
  records = 0;

  reset(): void {
    this.messages.clear();
    this.expunged.length = 0;
    this.uidValidity = 0;
    this.floor = 1;
    this.highestModSeq = 1;
    this.records = 0;
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
          const message = new IndexedMessage(record.u, record.m, record.i, record.s, record.d, record.b, structureAt === undefined ? record.st : undefined);
          message.structureAt = structureAt;
          this.messages.set(record.u, message);
        }
        this.highestModSeq = Math.max(this.highestModSeq, record.m);
        break;
      case 'F':
        record.u.forEach((uid, i) => {
          const message = this.messages.get(uid);
          if (message !== undefined) {
            message.info = record.i[i] ?? '';
            message.modSeq = record.m;
          }
        });
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
      out.push({ t: 'A', u: m.uid, m: m.modSeq, i: m.info, s: m.size, d: m.internalDate, b: m.base, ...(m.structure ? { st: m.structure } : {}) });
    }
    for (const [m, uids] of byModSeq) out.push({ t: 'X', u: uids, m });
    return out;
  }
}
