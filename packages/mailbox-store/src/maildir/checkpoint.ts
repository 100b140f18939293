/**
 * `pigeonpost-index.bin`: a binary checkpoint of a folder's index, so that
 * opening a folder reads two files (this and the tail of the index log
 * written after it) instead of parsing the whole log record by record.
 *
 * Layout (little-endian), all of it covered by a CRC-32:
 *
 *   0   "PPCK"                  magic
 *   4   u32 version             CHECKPOINT_VERSION; any other value: ignored
 *   8   u32 crc32               of bytes 12..end
 *   12  u32 uidValidity
 *   16  f64 floor, f64 highestModSeq
 *   32  f64 log inode, f64 log offset (the log bytes this state stands for),
 *   48  u32 log records, u32 CRC-32 of the last ≤256 log bytes before that offset
 *   56  f64 uidlist inode, f64 uidlist size, f64 uidlist mtime (ms), f64 appendable size (-1: none)
 *   88  u32 messages n, u32 expunged e, u32 info strings, u32 files json bytes, u32 base-name bytes,
 *   108 u32 scan trusted (0/1), f64 cur/ mtime, f64 new/ mtime (the directory scan this state comes from; -1: none),
 *   128 f64 when that scan was made (ms; its check time, see Folder#scanHolds)
 *   136 f64 modSeq[n], f64 internalDate[n] (NaN: not known), f64 structure offset[n] (-1), f64 size[n], f64 expunged modSeq[e]
 *       u32 uid[n], u32 structure length[n], u32 info id[n], u32 base end[n] (UTF-16 offsets into the names), u32 expunged uid[e]
 *       info strings (u32 byte length + UTF-8, each), files JSON ([[index, "cur/name"], …]: names that are not `cur/<base>:2,<info>`),
 *       base names (UTF-8, concatenated)
 *
 * A checkpoint is only trusted for the index log it was made from: same
 * inode, at least as long, and the same bytes just before its offset;
 * then the records after the offset are applied to it. Otherwise (missing,
 * truncated, damaged, another version, another log) it is ignored and the
 * log is read from the start, or the index rebuilt from the files: a
 * checkpoint never adds anything the log and the files cannot give.
 */
import { open } from 'node:fs/promises';
import { crc32 } from './index-log.js';
import type { IndexState } from './index-log.js';
import { MaildirMessage } from './message.js';

export const CHECKPOINT_VERSION = 2;
const MAGIC = 0x4b435050; // "PPCK" little-endian
const HEADER = 136;
/** Bytes of the log before the checkpoint's offset that must still be the same. */
export const LOG_TAIL_CHECK = 256;

/** A scan of cur/ and new/ (or a store's own renames after one): their mtimes, whether they can be trusted, and when it was made (`at`, ms; see Folder#scanHolds). */
export interface ScanState {
  readonly cur: number;
  readonly new: number;
  readonly trusted: boolean;
  readonly at: number;
}

export interface CheckpointMeta {
  /** The last full scan of cur/ and new/ that this state reflects. */
  readonly scan: ScanState | undefined;
  readonly logIno: number;
  readonly logOffset: number;
  readonly logTailCrc: number;
  readonly uidlist: { readonly ino: number; readonly size: number; readonly mtimeMs: number; readonly appendable: number } | undefined;
}

export interface DecodedCheckpoint extends CheckpointMeta {
  readonly uidValidity: number;
}

/** The directory scan a checkpoint file was made from, from its header only (undefined: none, or not a checkpoint of this version). */
export async function peekCheckpointScan(path: string): Promise<CheckpointMeta['scan']> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const head = Buffer.alloc(HEADER);
    const { bytesRead } = await fh.read(head, 0, HEADER, 0);
    if (bytesRead < HEADER || head.readUInt32LE(0) !== MAGIC || head.readUInt32LE(4) !== CHECKPOINT_VERSION) return undefined;
    const cur = head.readDoubleLE(112);
    return cur < 0 ? undefined : { cur, new: head.readDoubleLE(120), trusted: head.readUInt32LE(108) === 1, at: head.readDoubleLE(128) };
  } finally {
    await fh.close();
  }
}

function f64s(buf: Buffer, at: number, n: number): Float64Array {
  const offset = buf.byteOffset + at;
  if (offset % 8 === 0) return new Float64Array(buf.buffer, offset, n);
  return new Float64Array(buf.buffer.slice(offset, offset + n * 8));
}

function u32s(buf: Buffer, at: number, n: number): Uint32Array {
  const offset = buf.byteOffset + at;
  if (offset % 4 === 0) return new Uint32Array(buf.buffer, offset, n);
  return new Uint32Array(buf.buffer.slice(offset, offset + n * 4));
}

/** The fixed-size columns after the header, in file order; `end` is the offset just past them. Encode and decode share it, so the layout cannot drift. */
function columns(buf: Buffer, n: number, e: number) {
  let at = HEADER;
  const modSeq = f64s(buf, at, n);
  const date = f64s(buf, (at += 8 * n), n);
  const stOff = f64s(buf, (at += 8 * n), n);
  const sizes = f64s(buf, (at += 8 * n), n);
  const exModSeq = f64s(buf, (at += 8 * n), e);
  const uid = u32s(buf, (at += 8 * e), n);
  const stLen = u32s(buf, (at += 4 * n), n);
  const ids = u32s(buf, (at += 4 * n), n);
  const ends = u32s(buf, (at += 4 * n), n);
  const exUid = u32s(buf, (at += 4 * n), e);
  return { modSeq, date, stOff, sizes, exModSeq, uid, stLen, ids, ends, exUid, end: at + 4 * e };
}

/** Encode the index state (as it stands for `meta.logOffset` bytes of the log). */
export function encodeCheckpoint(state: IndexState, view: readonly MaildirMessage[], meta: CheckpointMeta): Buffer {
  const n = view.length;
  const e = state.expunged.length;
  const infos: string[] = [];
  const infoIds = new Map<string, number>();
  const files: [number, string][] = [];
  let names = '';
  const ends = new Uint32Array(n);
  const infoId = new Uint32Array(n);
  for (let k = 0; k < n; k++) {
    const m = view[k]!;
    let id = infoIds.get(m.info);
    if (id === undefined) {
      id = infos.length;
      infos.push(m.info);
      infoIds.set(m.info, id);
    }
    infoId[k] = id;
    names += m.base;
    ends[k] = names.length;
    if (m.file !== undefined) files.push([k, m.file]);
  }
  const infoBytes = infos.map((s) => Buffer.from(s, 'utf8'));
  const filesJson = Buffer.from(JSON.stringify(files), 'utf8');
  const namesBytes = Buffer.from(names, 'utf8');
  const size = HEADER + 8 * (4 * n + e) + 4 * (4 * n + e) + infoBytes.reduce((s, b) => s + 4 + b.length, 0) + filesJson.length + namesBytes.length;
  const buf = Buffer.alloc(size);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(CHECKPOINT_VERSION, 4);
  buf.writeUInt32LE(state.uidValidity, 12);
  buf.writeDoubleLE(state.floor, 16);
  buf.writeDoubleLE(state.highestModSeq, 24);
  buf.writeDoubleLE(meta.logIno, 32);
  buf.writeDoubleLE(meta.logOffset, 40);
  buf.writeUInt32LE(state.records, 48);
  buf.writeUInt32LE(meta.logTailCrc, 52);
  const u = meta.uidlist;
  buf.writeDoubleLE(u?.ino ?? -1, 56);
  buf.writeDoubleLE(u?.size ?? -1, 64);
  buf.writeDoubleLE(u?.mtimeMs ?? -1, 72);
  buf.writeDoubleLE(u?.appendable ?? -1, 80);
  buf.writeUInt32LE(n, 88);
  buf.writeUInt32LE(e, 92);
  buf.writeUInt32LE(infos.length, 96);
  buf.writeUInt32LE(filesJson.length, 100);
  buf.writeUInt32LE(namesBytes.length, 104);
  buf.writeUInt32LE(meta.scan?.trusted === true ? 1 : 0, 108);
  buf.writeDoubleLE(meta.scan?.cur ?? -1, 112);
  buf.writeDoubleLE(meta.scan?.new ?? -1, 120);
  buf.writeDoubleLE(meta.scan?.at ?? -1, 128);
  const { modSeq, date, stOff, sizes, exModSeq, uid, stLen, ids, ends: endsOut, exUid, end } = columns(buf, n, e);
  let at = end;
  for (let k = 0; k < n; k++) {
    const m = view[k]!;
    modSeq[k] = m.modSeq;
    date[k] = m.date;
    stOff[k] = m.structureOffset;
    sizes[k] = m.size;
    uid[k] = m.uid;
    stLen[k] = m.structureLength;
  }
  ids.set(infoId);
  endsOut.set(ends);
  state.expunged.forEach(([u2, m], k) => {
    exUid[k] = u2;
    exModSeq[k] = m;
  });
  for (const b of infoBytes) {
    buf.writeUInt32LE(b.length, at);
    b.copy(buf, at + 4);
    at += 4 + b.length;
  }
  filesJson.copy(buf, at);
  at += filesJson.length;
  namesBytes.copy(buf, at);
  buf.writeUInt32LE(crc32(buf.subarray(12)), 8);
  return buf;
}

/**
 * Decode a checkpoint into `state` (reset first). Returns undefined, with
 * `state` left reset, when the bytes are not a checkpoint of this version or
 * fail their checksum.
 */
export function decodeCheckpoint(buf: Buffer, state: IndexState): DecodedCheckpoint | undefined {
  state.reset();
  if (buf.length < HEADER || buf.readUInt32LE(0) !== MAGIC || buf.readUInt32LE(4) !== CHECKPOINT_VERSION) return undefined;
  if (crc32(buf.subarray(12)) !== buf.readUInt32LE(8)) return undefined;
  try {
    const n = buf.readUInt32LE(88);
    const e = buf.readUInt32LE(92);
    const infoCount = buf.readUInt32LE(96);
    const filesLength = buf.readUInt32LE(100);
    const namesLength = buf.readUInt32LE(104);
    if (buf.length < HEADER + 8 * (4 * n + e) + 4 * (4 * n + e)) return undefined;
    const { modSeq, date, stOff, sizes, exModSeq, uid, stLen, ids, ends, exUid, end } = columns(buf, n, e);
    let at = end;
    const infos: string[] = [];
    const flags: (readonly string[])[] = [];
    for (let k = 0; k < infoCount; k++) {
      const length = buf.readUInt32LE(at);
      const info = buf.toString('utf8', at + 4, at + 4 + length);
      infos.push(info);
      flags.push(state.flagsOf(info));
      at += 4 + length;
    }
    const files = JSON.parse(buf.toString('utf8', at, at + filesLength)) as [number, string][];
    at += filesLength;
    if (at + namesLength !== buf.length) return undefined;
    // One string for all base names; each message's is a slice of it (no copy per name).
    const names = buf.toString('utf8', at, at + namesLength);
    state.uidValidity = buf.readUInt32LE(12);
    state.floor = buf.readDoubleLE(16);
    state.highestModSeq = buf.readDoubleLE(24);
    state.records = buf.readUInt32LE(48);
    let start = 0;
    const messages: MaildirMessage[] = new Array<MaildirMessage>(n);
    for (let k = 0; k < n; k++) {
      const id = ids[k]!;
      if (id >= infoCount || ends[k]! < start || ends[k]! > names.length) throw new RangeError('bad checkpoint');
      const m = new MaildirMessage(uid[k]!, modSeq[k]!, flags[id]!, sizes[k]!, names.slice(start, ends[k]), infos[id]!, date[k]!);
      m.structureOffset = stOff[k]!;
      m.structureLength = stLen[k]!;
      start = ends[k]!;
      messages[k] = m;
      state.messages.set(m.uid, m);
    }
    for (const [k, file] of files) messages[k]!.file = file;
    for (let k = 0; k < e; k++) state.expunged.push([exUid[k]!, exModSeq[k]!]);
    const ino = buf.readDoubleLE(56);
    const scanCur = buf.readDoubleLE(112);
    return {
      scan: scanCur < 0 ? undefined : { cur: scanCur, new: buf.readDoubleLE(120), trusted: buf.readUInt32LE(108) === 1, at: buf.readDoubleLE(128) },
      uidValidity: state.uidValidity,
      logIno: buf.readDoubleLE(32),
      logOffset: buf.readDoubleLE(40),
      logTailCrc: buf.readUInt32LE(52),
      uidlist: ino < 0 ? undefined : { ino, size: buf.readDoubleLE(64), mtimeMs: buf.readDoubleLE(72), appendable: buf.readDoubleLE(80) },
    };
  } catch {
    state.reset();
    return undefined;
  }
}
