/**
 * One Maildir folder (INBOX or a Maildir++ subfolder) as seen by one store:
 * the dovecot-uidlist, dovecot-keywords and the Pigeonpost index, brought up
 * to date by `sync()` under the uidlist dot-lock, exactly like Dovecot's
 * maildir-sync: files found in new/ are moved to cur/ (`:2,` appended),
 * files without a UID get the next ones, files gone are expunged.
 *
 * Every change to a folder (deliver, flags, expunge, copy) happens with the
 * uidlist lock held, so Dovecot and every Pigeonpost process agree on UIDs,
 * and the index has one writer at a time.
 */
import { randomBytes, createHash } from 'node:crypto';
import { createReadStream, readFile as readFileCallback, rename as renameCallback, stat as statCallback } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, Logger } from '@pigeonpost/wire';
import { StoreError } from '../errors.js';
import { isDeleted, isKeyword, isSeen } from '../flags.js';
import type { StoreLimits } from '../limits.js';
import { MessageSizeCounter, meterMessageSource } from '../source.js';
import type { MessageStructure } from '../structure.js';
import { computeStructure } from '../structure.js';
import type { MessageMeta, MessageSource } from '../types.js';
import { acquireDotlock, writeThroughDotlock } from './dotlock.js';
import type { Dotlock } from './dotlock.js';
import { baseOfName, curName, infoOfName, LETTER_OF_FLAG, parseFilename, sortInfo, splitInfo, withSizes } from './filename.js';
import type { UniqueNames } from './filename.js';
import type { IndexedMessage, IndexRecord } from './index-log.js';
import { decodeRecords, encodeRecord, encodeRecordAt, IndexState } from './index-log.js';
import { KeywordTable, parseKeywordsFile, serializeKeywordsFile } from './keywords.js';
import { newMailboxGuid, parseUidlist, serializeUidlist, UidlistParseError } from './uidlist.js';
import type { Uidlist, UidlistRecord } from './uidlist.js';

export const UIDLIST = 'dovecot-uidlist';
export const KEYWORDS = 'dovecot-keywords';
export const INDEX_LOG = 'pigeonpost-index.log';
export const FOLDER_MARKER = 'maildirfolder';
/** File renames (flag changes) in flight at once. */
const RENAMES_IN_FLIGHT = 16;
/** Files looked at (a stat, or a read when the name has no `,W=`) at once when indexing new files. */
const DESCRIBES_IN_FLIGHT = 32;
/** Structures computed on first use and not yet in the index log: past this many, they are appended in the background. */
const PENDING_STRUCTURES_FLUSH = 1024;
/** When a structure is computed from its file, the next UIDs' are computed too, this many at once (FETCH 1:* BODYSTRUCTURE walks in order). */
const STRUCTURE_PREFETCH = 16;
/** Files up to this size are read whole when indexed; larger ones are streamed. */
const WHOLE_READ_BYTES = 1024 * 1024;
/** Bytes of the index log read at once when a structure is asked for. */
const STRUCTURE_READ_AHEAD = 256 * 1024;
/** A directory mtime at least this much older than a scan cannot hide a later change (FAT keeps 2 s). */
const MTIME_TRUST_MS = 2000;

export interface FolderContext {
  readonly clock: Clock;
  readonly limits: StoreLimits;
  readonly logger: Logger;
  readonly fsync: boolean;
  readonly lockStaleTimeoutMs: number;
  readonly lockTimeoutMs: number;
  readonly uniqueNames: UniqueNames;
  /** This store's id, written into index records so watchers can tell whose changes they are. */
  readonly writerId: string;
  /** A new UIDVALIDITY for this user (never reused). */
  nextUidValidity(): Promise<number>;
  /** Called after every change committed to the index (local notifications). */
  onRecords(folder: Folder, records: readonly IndexRecord[]): void;
}

export interface FolderMessage extends MessageMeta {
  /** Current file: `cur/<name>` or `new/<name>`. */
  readonly dir: 'cur' | 'new';
  readonly file: string;
  readonly base: string;
  readonly info: string;
  /** The same fields as a plain MessageMeta, made once per message version and shared by every handle. */
  readonly meta: MessageMeta;
}

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

export function emailIdOf(base: string): string {
  // RFC 8474 objectid: stable for a stored file; MOVE and hard-link COPY keep the base, so they keep it too.
  return 'M' + createHash('sha256').update(base).digest('base64url').slice(0, 23);
}

/** fs.readFile through its callback: no FileHandle (the promise API's is several times slower for small files). */
function readSmallFile(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => readFileCallback(path, (error, data) => (error ? reject(error) : resolve(data))));
}

/** rename through its callback (fs/promises' costs several times more per call; a STORE on 100k messages is 100k renames). */
function renameFile(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => renameCallback(from, to, (error) => (error ? reject(error) : resolve())));
}

/** A file's mtime through the callback stat (cheaper than fs/promises' for 100k files). */
function mtimeOf(path: string): Promise<number> {
  return new Promise((resolve, reject) => statCallback(path, (error, st) => (error ? reject(error) : resolve(st.mtimeMs))));
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Create a folder's directories (tmp, new, cur) and, for a subfolder, the marker file. */
export async function makeFolderDirs(path: string, subfolder: boolean): Promise<void> {
  for (const d of ['tmp', 'new', 'cur']) await mkdir(join(path, d), { recursive: true });
  if (subfolder) await writeFile(join(path, FOLDER_MARKER), '', { flag: 'a' });
}

type PendingTmp = { tmpPath: string; base: string; bytes: number; size: number; structure: MessageStructure };
interface PendingCommit {
  readonly tmp: PendingTmp;
  readonly flags: readonly string[];
  readonly internalDate: number;
  resolve(message: FolderMessage): void;
  reject(error: unknown): void;
}

export class Folder {
  readonly path: string;
  name: string;
  readonly #ctx: FolderContext;
  #queue: Promise<unknown> = Promise.resolve();
  uidlist: Uidlist | undefined;
  keywords: KeywordTable;
  readonly index = new IndexState();
  #indexOffset = 0;
  #indexIno = -1;
  /** UID → current file. */
  readonly files = new Map<number, { dir: 'cur' | 'new'; name: string }>();
  #view: FolderMessage[] = [];
  #viewByUid = new Map<number, FolderMessage>();
  #viewKeywords = '';
  #structureWindow: { ino: number; start: number; buf: Buffer } | undefined;
  /** dovecot-uidlist as last read under the lock: its inode and the bytes up to its last `\n` (for appends). */
  #uidlistAt: { ino: number; size: number } | undefined;
  /** dovecot-uidlist as this.uidlist holds it (inode, size, mtime), so an unchanged file is not parsed again. */
  #uidlistRead: { ino: number; size: number; mtimeMs: number; appendable: { ino: number; size: number } | undefined } | undefined;
  /** The last full scan of cur/ and new/: their mtimes, and whether they are old enough to trust (see #syncLocked). */
  #lastScan: { cur: number; new: number; trusted: boolean } | undefined;
  readonly #pendingCommits: PendingCommit[] = [];
  /** Structures computed since the index was written (a folder indexed from its files), by UID, to append to the log. */
  readonly #pendingStructures = new Map<number, { base: string; structure: MessageStructure }>();
  #structureFlushScheduled = false;
  /** Structures being computed from files (asked for, or prefetched), by UID. */
  readonly #computing = new Map<number, Promise<MessageStructure>>();

  constructor(path: string, name: string, ctx: FolderContext) {
    this.path = path;
    this.name = name;
    this.#ctx = ctx;
    this.keywords = new KeywordTable([], ctx.limits.maxKeywordsPerMailbox);
  }

  get id(): string {
    return this.uidlist?.guid ?? '';
  }

  get uidValidity(): number {
    return this.uidlist?.uidValidity ?? 0;
  }

  get uidNext(): number {
    return this.uidlist?.nextUid ?? 1;
  }

  /** Messages, ascending by UID, as of the last sync. */
  messages(): readonly FolderMessage[] {
    return this.#view;
  }

  /** Run `fn` alone in this process and with the uidlist lock held, after a sync. */
  locked<T>(fn: (lock: Dotlock) => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      const lock = await acquireDotlock(join(this.path, `${UIDLIST}.lock`), {
        clock: this.#ctx.clock,
        protects: join(this.path, UIDLIST),
        staleTimeoutMs: this.#ctx.lockStaleTimeoutMs,
        timeoutMs: this.#ctx.lockTimeoutMs,
      });
      try {
        await this.#syncLocked();
        await this.#flushStructures();
        return await fn(lock);
      } finally {
        await lock.release();
      }
    };
    const guarded = (): Promise<T> =>
      run().catch((error: unknown) => {
        // The folder (or the whole user) was deleted under us.
        if (errno(error) === 'ENOENT') throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${this.name} does not exist`);
        throw error;
      });
    const result = this.#queue.then(guarded, guarded);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /** Bring the folder up to date (files, uidlist, index). */
  sync(): Promise<void> {
    return this.locked(() => Promise.resolve());
  }

  // -------------------------------------------------------------------------
  // Sync

  async #readUidlist(): Promise<Uidlist | undefined> {
    let text: string;
    this.#uidlistAt = undefined;
    let at: { ino: number; size: number };
    let mtimeMs: number;
    try {
      const fh = await open(join(this.path, UIDLIST), 'r');
      try {
        const st = await fh.stat();
        mtimeMs = st.mtimeMs;
        // Unchanged since we read or wrote it: the same inode (a rewrite renames a new file
        // in) and size (Dovecot appends in place). We hold the lock, so nobody is writing it.
        const known = this.#uidlistRead;
        if (known !== undefined && this.uidlist !== undefined && known.ino === st.ino && known.size === st.size && known.mtimeMs === st.mtimeMs) {
          this.#uidlistAt = known.appendable;
          return this.uidlist;
        }
        this.#uidlistRead = undefined;
        const buf = await fh.readFile();
        at = { ino: st.ino, size: buf.lastIndexOf(0x0a) + 1 };
        text = buf.toString('utf8');
      } finally {
        await fh.close();
      }
    } catch (error) {
      if (errno(error) === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const list = parseUidlist(text);
      if (list.version === 3) this.#uidlistAt = at;
      this.#uidlistRead = { ino: at.ino, size: Buffer.byteLength(text), mtimeMs, appendable: this.#uidlistAt };
      return list;
    } catch (error) {
      if (error instanceof UidlistParseError) {
        this.#ctx.logger.warn({ path: this.path, error: error.message }, 'corrupted dovecot-uidlist: recreating with a new UIDVALIDITY');
        return undefined;
      }
      throw error;
    }
  }

  async #writeUidlist(list: Uidlist): Promise<void> {
    const tmp = join(this.path, `${UIDLIST}.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    let st;
    try {
      await fh.writeFile(serializeUidlist(list));
      if (this.#ctx.fsync) await fh.datasync();
      st = await fh.stat();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.path, UIDLIST));
    if (this.#ctx.fsync) await fsyncPath(this.path);
    this.uidlist = list;
    // The file is exactly what we wrote: later appends may go to its end, and the next sync need not parse it again.
    this.#uidlistAt = { ino: st.ino, size: st.size };
    this.#uidlistRead = { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, appendable: this.#uidlistAt };
  }

  /**
   * New records only: append them to dovecot-uidlist in place, as Dovecot does
   * (maildir_uidlist_sync_update), instead of rewriting the whole file: one
   * fdatasync of a few bytes rather than a rewrite, a rename and a directory
   * fsync. The header's N is left as it was: readers (ours and Dovecot's) take
   * a record at or above it as the next UID's floor. A torn append (a crash
   * mid-write: a last line without `\n`, which readers skip) is cut off first;
   * we hold the lock. Falls back to a rewrite when the file is not the one we read.
   */
  async #appendUidlist(list: Uidlist, added: readonly UidlistRecord[]): Promise<void> {
    const at = this.#uidlistAt;
    if (at === undefined || added.length === 0) return this.#writeUidlist(list);
    let fh;
    try {
      fh = await open(join(this.path, UIDLIST), 'r+');
    } catch (error) {
      if (errno(error) === 'ENOENT') return this.#writeUidlist(list);
      throw error;
    }
    let appended: number;
    let after;
    try {
      const st = await fh.stat();
      if (st.ino !== at.ino || st.size < at.size) {
        await fh.close();
        fh = undefined;
        return this.#writeUidlist(list);
      }
      if (st.size > at.size) await fh.truncate(at.size);
      const data = Buffer.from(added.map((r) => `${r.uid}${r.extensions.map((e) => ` ${e}`).join('')} :${r.base}\n`).join(''), 'utf8');
      await fh.write(data, 0, data.length, at.size);
      if (this.#ctx.fsync) await fh.datasync();
      appended = data.length;
      after = await fh.stat();
    } finally {
      await fh?.close();
    }
    this.#uidlistAt = { ino: at.ino, size: at.size + appended };
    this.#uidlistRead = after.size === this.#uidlistAt.size ? { ino: at.ino, size: after.size, mtimeMs: after.mtimeMs, appendable: this.#uidlistAt } : undefined;
    this.uidlist = list;
  }

  async #readKeywords(): Promise<void> {
    let text = '';
    try {
      text = await readFile(join(this.path, KEYWORDS), 'utf8');
    } catch (error) {
      if (errno(error) !== 'ENOENT') throw error;
    }
    this.keywords = new KeywordTable(parseKeywordsFile(text), this.#ctx.limits.maxKeywordsPerMailbox);
  }

  async #writeKeywords(): Promise<void> {
    await writeThroughDotlock(
      join(this.path, KEYWORDS),
      serializeKeywordsFile(this.keywords.slots),
      { clock: this.#ctx.clock, staleTimeoutMs: this.#ctx.lockStaleTimeoutMs, timeoutMs: this.#ctx.lockTimeoutMs },
      this.#ctx.fsync,
      true,
    );
  }

  async #listDir(dir: 'cur' | 'new'): Promise<string[]> {
    try {
      return (await readdir(join(this.path, dir))).filter((n) => !n.startsWith('.'));
    } catch (error) {
      if (errno(error) === 'ENOENT') {
        if (dir === 'cur') throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${this.name} does not exist`);
        return [];
      }
      throw error;
    }
  }

  /** Read the index from where we stopped; reload when it was replaced. Returns false when it is unusable. */
  async #refreshIndex(): Promise<boolean> {
    const path = join(this.path, INDEX_LOG);
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (error) {
      if (errno(error) === 'ENOENT') return false;
      throw error;
    }
    try {
      const st = await fh.stat();
      if (st.ino !== this.#indexIno || st.size < this.#indexOffset) {
        this.#indexIno = st.ino;
        this.#indexOffset = 0;
        this.index.reset();
      }
      if (st.size === this.#indexOffset) return this.index.uidValidity !== 0;
      const buf = Buffer.alloc(st.size - this.#indexOffset);
      await fh.read(buf, 0, buf.length, this.#indexOffset);
      // Structures stay in the file (read when asked for): a 100k-message folder holds no MIME trees in memory.
      const decoded = decodeRecords(buf, { lazyStructures: true });
      const start = this.#indexOffset;
      decoded.records.forEach((r, k) => {
        const at = decoded.structures?.[k];
        this.index.apply(r, at === undefined ? undefined : [start + at[0], at[1]]);
      });
      if (start === 0 && decoded.records.length > 0 && decoded.records[0]!.t !== 'H') return false;
      this.#indexOffset += decoded.consumed;
      if (decoded.stop === 'corrupt') return false;
      if (decoded.stop === 'partial') {
        // A crash mid-append (we hold the lock: nobody is writing). Cut the torn record off.
        await truncate(path, this.#indexOffset);
      }
      return this.index.uidValidity !== 0;
    } finally {
      await fh.close();
    }
  }

  async #appendIndex(records: readonly IndexRecord[]): Promise<void> {
    if (records.length === 0) return;
    const encoded = records.map(encodeRecordAt);
    const data = Buffer.concat(encoded.map((e) => e.data));
    const path = join(this.path, INDEX_LOG);
    const fh = await open(path, 'a', 0o600);
    try {
      await fh.write(data);
      if (this.#ctx.fsync) await fh.datasync();
      const st = await fh.stat();
      this.#indexIno = st.ino;
    } finally {
      await fh.close();
    }
    let at = this.#indexOffset;
    records.forEach((r, k) => {
      const e = encoded[k]!;
      this.index.apply(r, e.structure === undefined ? undefined : [at + e.structure[0], e.structure[1]]);
      at += e.data.length;
    });
    this.#indexOffset += data.length;
    this.#ctx.onRecords(this, records);
  }

  async #rewriteIndex(records: readonly IndexRecord[]): Promise<void> {
    const path = join(this.path, INDEX_LOG);
    const tmp = `${path}.tmp`;
    const data = Buffer.concat(records.map(encodeRecord));
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.write(data);
      if (this.#ctx.fsync) await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    if (this.#ctx.fsync) await fsyncPath(this.path);
    const st = await stat(path);
    this.#indexIno = st.ino;
    this.#indexOffset = data.length;
  }

  /** Rebuild the index from the files: same UIDs (they come from the uidlist), MODSEQs restarting above anything handed out before. */
  async #rebuildIndex(uidValidity: number): Promise<void> {
    // MODSEQs after a rebuild start at the clock in milliseconds, above any
    // counter a client may have cached from before (which grows by one per
    // change, far slower than the clock), and above what is left of the old index.
    const floor = Math.max(this.#ctx.clock.now(), this.index.highestModSeq + 1, 1);
    this.#ctx.logger.warn({ path: this.path, floor }, 'rebuilding the Pigeonpost index of a Maildir folder');
    const header: IndexRecord = { t: 'H', v: 1, uv: uidValidity, floor };
    this.index.reset();
    this.index.apply(header);
    await this.#rewriteIndex([header]);
  }

  async #syncLocked(): Promise<void> {
    const ctx = this.#ctx;
    // The directories' mtimes, taken before anything is read (see #lastScan).
    const scanStart = Date.now();
    const dirMtimes = await this.#dirMtimes();
    let uidlist = await this.#readUidlist();
    await this.#readKeywords();
    const last = this.#lastScan;
    this.#lastScan = undefined;
    if (
      last !== undefined &&
      dirMtimes !== undefined &&
      last.trusted &&
      last.cur === dirMtimes.cur &&
      last.new === dirMtimes.new &&
      uidlist !== undefined &&
      uidlist === this.uidlist
    ) {
      // Nothing in cur/ or new/ and no dovecot-uidlist change since the last scan:
      // only the index may have grown (another process's records).
      const records = this.index.records;
      const ino = this.#indexIno;
      const usable = await this.#refreshIndex();
      if (usable && records === this.index.records && ino === this.#indexIno && this.index.uidValidity === uidlist.uidValidity) {
        if (this.keywords.slots.join('\n') !== this.#viewKeywords) this.#rebuildView();
        this.#lastScan = last;
        return;
      }
    }
    let uidlistChanged = false;
    if (uidlist === undefined) {
      await stat(join(this.path, 'cur')).catch((error: unknown) => {
        if (errno(error) === 'ENOENT') throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${this.name} does not exist`);
        throw error;
      });
      uidlist = { version: 3, uidValidity: await ctx.nextUidValidity(), nextUid: 1, guid: newMailboxGuid(), headerExtensions: [], records: [] };
      uidlistChanged = true;
    } else if (uidlist.guid === '') {
      uidlist = { ...uidlist, guid: newMailboxGuid() };
      uidlistChanged = true;
    }

    // Scan cur/ and new/; move new/ files to cur/ as Dovecot does. A rename that
    // fails (another process moved it first) means: scan again.
    let found: Map<string, { dir: 'cur' | 'new'; name: string }>;
    for (let attempt = 0; ; attempt++) {
      found = new Map();
      let raced = false;
      for (const name of await this.#listDir('cur')) found.set(baseOfName(name), { dir: 'cur', name });
      for (const name of await this.#listDir('new')) {
        const base = parseFilename(name).base;
        if (found.has(base)) continue;
        const target = curName(base, parseFilename(name).info);
        try {
          await rename(join(this.path, 'new', name), join(this.path, 'cur', target));
          found.set(base, { dir: 'cur', name: target });
        } catch (error) {
          if (errno(error) !== 'ENOENT') throw error;
          raced = true;
        }
      }
      if (!raced || attempt > 5) break;
    }

    // UIDs: keep the uidlist's, drop those whose file is gone, number the new files in name order (time order).
    const known = new Set<string>();
    const records: UidlistRecord[] = [];
    for (const r of uidlist.records) {
      if (found.has(r.base)) {
        records.push(r);
        known.add(r.base);
      } else uidlistChanged = true;
    }
    const fresh = [...found.keys()].filter((b) => !known.has(b)).sort();
    let nextUid = uidlist.nextUid;
    for (const base of fresh) {
      records.push({ uid: nextUid++, extensions: [], base });
      uidlistChanged = true;
    }
    const list: Uidlist = { ...uidlist, nextUid, records };
    if (uidlistChanged) await this.#writeUidlist(list);
    else this.uidlist = list;

    this.files.clear();
    for (const r of records) this.files.set(r.uid, found.get(r.base)!);

    // Index: add what is new, note flag changes made by other programs, log expunges.
    const usable = await this.#refreshIndex();
    if (!usable || this.index.uidValidity !== list.uidValidity) await this.#rebuildIndex(list.uidValidity);
    const adds: IndexRecord[] = [];
    const flagUids: number[] = [];
    const flagInfos: string[] = [];
    const present = new Set<number>();
    let modSeq = this.index.highestModSeq;
    let addModSeq = 0;
    const nextModSeq = (): number => ++modSeq;
    const describe: { uid: number; file: { dir: 'cur' | 'new'; name: string }; info: string }[] = [];
    for (const r of records) {
      present.add(r.uid);
      const file = this.files.get(r.uid)!;
      const info = sortInfo(infoOfName(file.name));
      const indexed = this.index.messages.get(r.uid);
      // One copy of each base name in memory (the uidlist's), not one per structure holding it.
      if (indexed !== undefined && indexed.base === r.base) indexed.base = r.base;
      if (indexed === undefined) {
        if (addModSeq === 0) addModSeq = nextModSeq();
        describe.push({ uid: r.uid, file, info });
      } else if (indexed.info !== info) {
        flagUids.push(r.uid);
        flagInfos.push(info);
      }
    }
    // New files (all of them on a rebuild) are read several at a time, and kept in UID order.
    let nextDescribe = 0;
    adds.length = describe.length;
    const describer = async (): Promise<void> => {
      while (nextDescribe < describe.length) {
        const k = nextDescribe++;
        const d = describe[k]!;
        adds[k] = await this.#describeLazily(d.uid, d.file, d.info, addModSeq);
      }
    };
    await Promise.all(Array.from({ length: Math.min(DESCRIBES_IN_FLIGHT, describe.length) }, describer));
    const out: IndexRecord[] = [...adds];
    if (flagUids.length > 0) out.push({ t: 'F', u: flagUids, m: nextModSeq(), i: flagInfos, w: ctx.writerId });
    const gone = [...this.index.messages.keys()].filter((uid) => !present.has(uid)).sort((a, b) => a - b);
    if (gone.length > 0) out.push({ t: 'X', u: gone, m: nextModSeq(), w: ctx.writerId });
    await this.#appendIndex(out);
    await this.#maybeCompact();
    this.#rebuildView();
    // The next sync may skip the scan while both directories keep these mtimes, when they are
    // old enough that a change could not have kept them: more than the coarsest mtime
    // granularity (2 s, FAT; ext4 and XFS are finer) before this scan began.
    if (dirMtimes !== undefined) {
      const trusted = Math.max(dirMtimes.cur, dirMtimes.new) < scanStart - MTIME_TRUST_MS;
      this.#lastScan = { ...dirMtimes, trusted };
    }
  }

  /** mtimes of cur/ and new/ (undefined when one is missing: the scan reports that). */
  async #dirMtimes(): Promise<{ cur: number; new: number } | undefined> {
    try {
      const [cur, fresh] = await Promise.all([stat(join(this.path, 'cur')), stat(join(this.path, 'new'))]);
      return { cur: cur.mtimeMs, new: fresh.mtimeMs };
    } catch (error) {
      if (errno(error) === 'ENOENT') return undefined;
      throw error;
    }
  }

  /**
   * The index record of a file found in the folder, without reading it when
   * its name has `,W=` (what Dovecot, Pigeonpost and most MDAs write): the
   * UID is the uidlist's, flags come from the name, RFC822.SIZE from `W=`,
   * INTERNALDATE from the mtime (one stat). The MIME structure is left out:
   * computed on first use (see `structure()`), as Dovecot does. A name
   * without `W=` is read to count the size (no MIME parse).
   */
  async #describeLazily(uid: number, file: { dir: 'cur' | 'new'; name: string }, info: string, modSeq: number): Promise<IndexRecord> {
    const parsed = parseFilename(file.name);
    let current = file;
    for (let attempt = 0; ; attempt++) {
      const path = join(this.path, current.dir, current.name);
      try {
        let size = parsed.virtualSize;
        let mtimeMs: number;
        if (size === undefined) {
          const whole = await this.#readWhole(path, true);
          mtimeMs = whole.mtimeMs;
          size = whole.size;
        } else mtimeMs = await mtimeOf(path);
        return { t: 'A', u: uid, m: modSeq, i: info, s: size, d: Math.floor(mtimeMs), b: parsed.base, w: this.#ctx.writerId };
      } catch (error) {
        // Renamed (a flag change by another program) since the scan: find it again.
        if (errno(error) !== 'ENOENT' || attempt > 2) throw error;
        const again = await this.#findByBase(parsed.base);
        if (again === undefined) throw error;
        current = again;
        this.files.set(uid, again);
      }
    }
  }

  /**
   * A message file's bytes (whole when small: one open, fstat, read, close,
   * not a stream and its 64 KiB buffer), its RFC822.SIZE and mtime. With
   * `sizeOnly`, a large file is streamed through the size counter only.
   */
  async #readWhole(path: string, sizeOnly: boolean): Promise<{ data: Buffer | undefined; size: number; mtimeMs: number }> {
    const fh = await open(path, 'r');
    let whole: Buffer | undefined;
    let mtimeMs: number;
    try {
      const fst = await fh.stat();
      mtimeMs = fst.mtimeMs;
      if (fst.size <= WHOLE_READ_BYTES) {
        const buf = Buffer.allocUnsafe(fst.size);
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        whole = buf.subarray(0, got);
      }
    } finally {
      await fh.close();
    }
    const counter = new MessageSizeCounter();
    if (whole !== undefined) {
      counter.push(whole);
      return { data: whole, size: counter.sizes.size, mtimeMs };
    }
    if (!sizeOnly) return { data: undefined, size: -1, mtimeMs };
    for await (const chunk of createReadStream(path)) counter.push(chunk as Buffer);
    return { data: undefined, size: counter.sizes.size, mtimeMs };
  }

  /**
   * Append the structures computed on first use to the index log, so the next
   * open (here or in another process) need not read those files again. Under
   * the lock (inside `locked()`, or from `#flushStructuresSoon`). Only the
   * messages still present with the same base name get them.
   */
  async #flushStructures(): Promise<void> {
    if (this.#pendingStructures.size === 0) return;
    const records: IndexRecord[] = [];
    for (const [uid, p] of this.#pendingStructures) {
      const m = this.index.messages.get(uid);
      if (m !== undefined && m.base === p.base && m.structure === undefined && m.structureOffset < 0) {
        records.push({ t: 'S', u: uid, b: p.base, st: p.structure, w: this.#ctx.writerId });
      }
    }
    this.#pendingStructures.clear();
    await this.#appendIndex(records);
  }

  /** When the store closes: append the structures still waiting, if the lock can be had at once (otherwise they are dropped: a cache). */
  async flushStructuresOnClose(): Promise<void> {
    if (this.#pendingStructures.size === 0) return;
    this.#flushStructuresSoon(0);
    await this.#queue;
  }

  /**
   * In the background, once enough structures are waiting: take the lock,
   * read what other writers appended to the index (cutting a torn tail, as a
   * sync does), and append them — no directory scan. The structures are a
   * cache: a failure only drops them (they are computed again when asked).
   */
  #flushStructuresSoon(lockTimeoutMs = this.#ctx.lockTimeoutMs): void {
    if (this.#structureFlushScheduled) return;
    this.#structureFlushScheduled = true;
    const run = async (): Promise<void> => {
      this.#structureFlushScheduled = false;
      if (this.#pendingStructures.size === 0) return;
      const lock = await acquireDotlock(join(this.path, `${UIDLIST}.lock`), {
        clock: this.#ctx.clock,
        protects: join(this.path, UIDLIST),
        staleTimeoutMs: this.#ctx.lockStaleTimeoutMs,
        timeoutMs: lockTimeoutMs,
      });
      try {
        const usable = await this.#refreshIndex();
        if (usable && this.index.uidValidity === this.uidValidity) await this.#flushStructures();
        else this.#pendingStructures.clear();
      } finally {
        await lock.release();
      }
    };
    const result = this.#queue.then(run, run).catch((error: unknown) => {
      this.#pendingStructures.clear();
      this.#ctx.logger.warn({ path: this.path, error: String(error) }, 'could not append MIME structures to the index log');
    });
    this.#queue = result;
  }

  async #maybeCompact(): Promise<void> {
    const live = 1 + this.index.messages.size + this.index.expunged.length;
    if (this.index.records < 256 || this.index.records < live * 2) return;
    // The structures held only in the log come back for the rewrite, then go again.
    const old = await readFile(join(this.path, INDEX_LOG));
    for (const m of this.index.messages.values()) {
      if (m.structure === undefined && m.structureAt !== undefined) m.structure = this.#structureFrom(old, m.structureAt);
    }
    const records = this.index.snapshot();
    await this.#rewriteIndex(records);
    this.index.reset();
    this.#indexOffset = 0;
    this.#indexIno = -1;
    this.#structureWindow = undefined;
    await this.#refreshIndex();
  }

  #structureFrom(buf: Buffer, at: readonly [number, number]): MessageStructure | undefined {
    if (at[0] + at[1] > buf.length) return undefined;
    try {
      return JSON.parse(buf.toString('utf8', at[0], at[0] + at[1])) as MessageStructure;
    } catch {
      return undefined;
    }
  }

  /** A structure left in the index log; undefined when the log was replaced meanwhile (then it is recomputed). */
  async #loadStructure(at: readonly [number, number]): Promise<MessageStructure | undefined> {
    const w = this.#structureWindow;
    if (w !== undefined && w.ino === this.#indexIno && at[0] >= w.start && at[0] + at[1] <= w.start + w.buf.length) {
      return this.#structureFrom(w.buf.subarray(at[0] - w.start), [0, at[1]]);
    }
    let fh;
    try {
      fh = await open(join(this.path, INDEX_LOG), 'r');
    } catch (error) {
      if (errno(error) === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const st = await fh.stat();
      if (st.ino !== this.#indexIno) return undefined;
      // Read ahead: FETCH BODYSTRUCTURE of a range asks for neighbours, which sit next to each other in the log.
      const buf = Buffer.allocUnsafe(Math.max(0, Math.min(Math.max(at[1], STRUCTURE_READ_AHEAD), st.size - at[0], this.#indexOffset - at[0])));
      const { bytesRead } = await fh.read(buf, 0, buf.length, at[0]);
      this.#structureWindow = { ino: st.ino, start: at[0], buf: buf.subarray(0, bytesRead) };
      return this.#structureFrom(buf.subarray(0, bytesRead), [0, at[1]]);
    } finally {
      await fh.close();
    }
  }

  flagsOf(info: string): string[] {
    const { flags, keywordIndexes } = splitInfo(info);
    const out = [...flags];
    for (const idx of keywordIndexes) {
      const name = this.keywords.nameAt(idx);
      if (name !== undefined) out.push(name);
    }
    return out;
  }

  /** Info letters for flags; keywords must be in the table. Unknown letters of `keep` (like `P`) are kept. */
  infoOf(flags: readonly string[], keep = ''): string {
    let letters = splitInfo(keep).other;
    for (const f of flags) {
      const letter = isKeyword(f) ? this.keywords.letterOf(f) : LETTER_OF_FLAG.get(f);
      if (letter !== undefined) letters += letter;
    }
    return sortInfo(letters);
  }

  #meta(m: IndexedMessage, previous?: FolderMessage): FolderMessage {
    const file = this.files.get(m.uid)!;
    const meta: MessageMeta = {
      uid: m.uid,
      modSeq: m.modSeq,
      flags: this.flagsOf(m.info),
      internalDate: m.internalDate,
      size: m.size,
      // The EMAILID depends on the base name only: not hashed again for a flag change.
      emailId: previous !== undefined && previous.base === m.base ? previous.emailId : emailIdOf(m.base),
    };
    return { uid: meta.uid, modSeq: meta.modSeq, flags: meta.flags, internalDate: meta.internalDate, size: meta.size, emailId: meta.emailId, dir: file.dir, file: file.name, base: m.base, info: m.info, meta };
  }

  #rebuildView(): void {
    // A message whose index entry, file and keyword table are as they were keeps its
    // FolderMessage (no new flags array, no new EMAILID hash): a sync of an unchanged
    // 100k-message folder then allocates next to nothing.
    const keywords = this.keywords.slots.join('\n');
    const previous = keywords === this.#viewKeywords ? this.#viewByUid : new Map<number, FolderMessage>();
    const byUid = new Map<number, FolderMessage>();
    const view: FolderMessage[] = [];
    let uids: Iterable<number> = this.files.keys();
    let last = 0;
    for (const uid of this.files.keys()) {
      if (uid < last) {
        uids = [...this.files.keys()].sort((a, b) => a - b);
        break;
      }
      last = uid;
    }
    for (const uid of uids) {
      const m = this.index.messages.get(uid);
      if (m === undefined) continue;
      const file = this.files.get(uid)!;
      const old = previous.get(uid);
      const meta =
        old !== undefined && old.modSeq === m.modSeq && old.info === m.info && old.file === file.name && old.dir === file.dir && old.base === m.base && old.size === m.size && old.internalDate === m.internalDate
          ? old
          : this.#meta(m, old ?? this.#viewByUid.get(uid));
      view.push(meta);
      byUid.set(uid, meta);
    }
    this.#view = view;
    this.#viewByUid = byUid;
    this.#viewKeywords = keywords;
  }

  /** The structure cached in the index (computed now if it is missing). */
  async structure(uid: number): Promise<MessageStructure> {
    const m = this.index.messages.get(uid);
    if (m === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
    if (m.structure !== undefined) return m.structure;
    if (m.structureAt !== undefined) {
      const stored = await this.#loadStructure(m.structureAt);
      if (stored !== undefined) return stored;
    }
    const pending = this.#pendingStructures.get(uid);
    if (pending !== undefined && pending.base === m.base) return pending.structure;
    if (m.structureAt !== undefined) {
      // The log was replaced meanwhile: compute it, and keep it in memory as before.
      const s = await this.#computeStructure(uid);
      m.structure = s;
      return s;
    }
    const s = await this.#computeOnFirstUse(uid, m);
    // The next messages will likely be asked for next: read and parse them meanwhile.
    for (let next = uid + 1, n = 0; n < STRUCTURE_PREFETCH && next < this.uidNext; next++) {
      const other = this.index.messages.get(next);
      if (other === undefined) continue;
      n++;
      if (other.structure === undefined && other.structureOffset < 0 && !this.#pendingStructures.has(next)) this.#computeOnFirstUse(next, other).catch(() => undefined);
    }
    return s;
  }

  /** A structure computed once per message even when asked for (or prefetched) concurrently. */
  #computeOnFirstUse(uid: number, m: IndexedMessage): Promise<MessageStructure> {
    const running = this.#computing.get(uid);
    if (running !== undefined) return running;
    const run = this.#computeStructure(uid).then((s) => {
      this.#computing.delete(uid);
      // Computed on first use (the folder was indexed from its files): kept for
      // the index log, appended at the next change or in the background.
      if (this.index.messages.get(uid) === m && m.structure === undefined && m.structureOffset < 0) {
        this.#pendingStructures.set(uid, { base: m.base, structure: s });
        if (this.#pendingStructures.size >= PENDING_STRUCTURES_FLUSH) this.#flushStructuresSoon();
      }
      return s;
    }, (error: unknown) => {
      this.#computing.delete(uid);
      throw error;
    });
    this.#computing.set(uid, run);
    return run;
  }

  /** The structure of a message's file: read whole when small, streamed otherwise. */
  async #computeStructure(uid: number): Promise<MessageStructure> {
    const file = this.files.get(uid);
    if (file !== undefined) {
      try {
        const path = join(this.path, file.dir, file.name);
        const physical = parseFilename(file.name).physicalSize;
        // Small (by its `,S=`): one fs.readFile, cheaper than a FileHandle's open, stat, read and close.
        if (physical !== undefined && physical <= WHOLE_READ_BYTES) return await computeStructure(await readSmallFile(path));
        const whole = await this.#readWhole(path, false);
        if (whole.data !== undefined) return await computeStructure(whole.data);
      } catch (error) {
        if (errno(error) !== 'ENOENT') throw error;
      }
    }
    // Large, or renamed meanwhile: readFile finds it again (or says it was expunged).
    return computeStructure(this.readFile(uid));
  }

  /** The message's bytes; finds the file again when another process renamed it; ERR_STORE_NO_SUCH_MESSAGE when it is gone. */
  async *readFile(uid: number, range?: { start: number; end: number }): AsyncGenerator<Uint8Array> {
    const m = this.index.messages.get(uid);
    if (m === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
    let fh;
    for (let attempt = 0; attempt < 3 && fh === undefined; attempt++) {
      const file = this.files.get(uid);
      if (file === undefined) break;
      try {
        fh = await open(join(this.path, file.dir, file.name), 'r');
      } catch (error) {
        if (errno(error) !== 'ENOENT') throw error;
        const again = await this.#findByBase(m.base);
        if (again === undefined) break;
        this.files.set(uid, again);
      }
    }
    if (fh === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
    const start = range?.start ?? 0;
    const end = range?.end;
    if (end !== undefined && end <= start) {
      await fh.close();
      return;
    }
    const stream = fh.createReadStream({ start, ...(end !== undefined ? { end: end - 1 } : {}), autoClose: true });
    for await (const chunk of stream) yield chunk as Buffer;
  }

  async #findByBase(base: string): Promise<{ dir: 'cur' | 'new'; name: string } | undefined> {
    for (const dir of ['cur', 'new'] as const) {
      for (const name of await this.#listDir(dir)) if (parseFilename(name).base === base) return { dir, name };
    }
    return undefined;
  }

  // -------------------------------------------------------------------------
  // Changes (call inside locked())

  /** Register keywords (writing dovecot-keywords when it grows). Returns the flags in canonical spelling. */
  async registerKeywords(flags: readonly string[]): Promise<string[]> {
    const keywords = flags.filter(isKeyword);
    if (this.keywords.add(keywords)) await this.#writeKeywords();
    return flags.map((f) => (isKeyword(f) ? this.keywords.canonical(f) : f));
  }

  canonical(flags: readonly string[]): string[] {
    return flags.map((f) => (isKeyword(f) ? this.keywords.canonical(f) : f));
  }

  /**
   * Write a message into tmp/ (streamed under the size cap), fsync it, and
   * stamp its mtime (INTERNALDATE). Done before taking the lock: the slow part
   * of a delivery holds nothing.
   */
  async writeTmp(source: MessageSource, internalDate: number): Promise<{ tmpPath: string; base: string; bytes: number; size: number; structure: MessageStructure }> {
    const base = this.#ctx.uniqueNames.next(this.#ctx.clock.now());
    const tmpPath = join(this.path, 'tmp', base);
    const fh = await open(tmpPath, 'wx', 0o600);
    const metered = meterMessageSource(source, this.#ctx.limits);
    try {
      for await (const chunk of metered.chunks) await fh.write(chunk);
      if (this.#ctx.fsync) await fh.sync();
    } catch (error) {
      await fh.close().catch(() => undefined);
      await unlink(tmpPath).catch(() => undefined);
      throw error;
    }
    await fh.close();
    const date = new Date(internalDate);
    await utimes(tmpPath, date, date);
    const structure = await computeStructure(createReadStream(tmpPath));
    const { bytes, size } = metered.sizes();
    return { tmpPath, base, bytes, size, structure };
  }

  /**
   * Make a written tmp/ file part of the folder: link it into new/ (no flags)
   * or cur/ (with flags) — link() never replaces an existing name — fsync the
   * directory, give it the next UID in the uidlist (written by temp + rename),
   * then log it in the index. Must run inside locked().
   */
  async commitTmp(tmp: { tmpPath: string; base: string; bytes: number; size: number; structure: MessageStructure }, flags: readonly string[], internalDate: number): Promise<FolderMessage> {
    const canonical = await this.registerKeywords(flags);
    const info = this.infoOf(canonical);
    const base = withSizes(tmp.base, tmp.bytes, tmp.size);
    const dir: 'cur' | 'new' = info === '' && canonical.length === 0 ? 'new' : 'cur';
    const name = dir === 'new' ? base : curName(base, info);
    await link(tmp.tmpPath, join(this.path, dir, name));
    if (this.#ctx.fsync) await fsyncPath(join(this.path, dir));
    await unlink(tmp.tmpPath).catch(() => undefined);
    return this.#register(base, { dir, name }, info, tmp.size, internalDate, tmp.structure);
  }

  /**
   * Group commit: `commitTmp` for deliveries that arrive while another commit
   * of this folder holds the lock. Everything waiting when the lock is taken is
   * committed together — links, one fsync per directory, one uidlist write, one
   * index append — with the same durability as one by one: each promise
   * resolves only after all of it is on disk. A failure rejects the whole batch.
   */
  commitQueued(tmp: PendingTmp, flags: readonly string[], internalDate: number): Promise<FolderMessage> {
    return new Promise<FolderMessage>((resolve, reject) => {
      this.#pendingCommits.push({ tmp, flags, internalDate, resolve, reject });
      if (this.#pendingCommits.length === 1) this.#scheduleCommit();
    });
  }

  #scheduleCommit(): void {
    const run = this.locked(async () => {
      const batch = this.#pendingCommits.splice(0);
      try {
        const done = await this.#commitBatch(batch);
        batch.forEach((b, k) => b.resolve(done[k]!));
      } catch (error) {
        for (const b of batch) b.reject(error);
      }
    });
    run.catch((error: unknown) => {
      // The lock or the sync failed before the batch was taken.
      for (const b of this.#pendingCommits.splice(0)) b.reject(error);
    });
  }

  async #commitBatch(batch: readonly PendingCommit[]): Promise<FolderMessage[]> {
    if (batch.length === 0) return [];
    const files: { base: string; dir: 'cur' | 'new'; name: string; info: string; tmp: PendingTmp; internalDate: number }[] = [];
    const dirs = new Set<'cur' | 'new'>();
    for (const b of batch) {
      const canonical = await this.registerKeywords(b.flags);
      const info = this.infoOf(canonical);
      const base = withSizes(b.tmp.base, b.tmp.bytes, b.tmp.size);
      const dir: 'cur' | 'new' = info === '' && canonical.length === 0 ? 'new' : 'cur';
      const name = dir === 'new' ? base : curName(base, info);
      await link(b.tmp.tmpPath, join(this.path, dir, name));
      dirs.add(dir);
      files.push({ base, dir, name, info, tmp: b.tmp, internalDate: b.internalDate });
    }
    if (this.#ctx.fsync) for (const dir of dirs) await fsyncPath(join(this.path, dir));
    for (const f of files) await unlink(f.tmp.tmpPath).catch(() => undefined);
    const list = this.uidlist!;
    const first = list.nextUid;
    const added: UidlistRecord[] = files.map((f, k) => ({ uid: first + k, extensions: [], base: f.base }));
    await this.#appendUidlist({ ...list, nextUid: first + files.length, records: [...list.records, ...added] }, added);
    let modSeq = this.index.highestModSeq;
    const records: IndexRecord[] = files.map((f, k) => {
      this.files.set(first + k, { dir: f.dir, name: f.name });
      return { t: 'A', u: first + k, m: ++modSeq, i: f.info, s: f.tmp.size, d: f.internalDate, b: f.base, st: f.tmp.structure, w: this.#ctx.writerId };
    });
    await this.#appendIndex(records);
    this.#rebuildView();
    return files.map((_, k) => this.#viewByUid.get(first + k) ?? this.#meta(this.index.messages.get(first + k)!));
  }

  async #register(base: string, file: { dir: 'cur' | 'new'; name: string }, info: string, size: number, internalDate: number, structure: MessageStructure | undefined): Promise<FolderMessage> {
    const list = this.uidlist!;
    const uid = list.nextUid;
    const added: UidlistRecord = { uid, extensions: [], base };
    await this.#appendUidlist({ ...list, nextUid: uid + 1, records: [...list.records, added] }, [added]);
    this.files.set(uid, file);
    const record: IndexRecord = { t: 'A', u: uid, m: this.index.highestModSeq + 1, i: info, s: size, d: internalDate, b: base, ...(structure ? { st: structure } : {}), w: this.#ctx.writerId };
    await this.#appendIndex([record]);
    this.#rebuildView();
    return this.#viewByUid.get(uid) ?? this.#meta(this.index.messages.get(uid)!);
  }

  /** Change flags (files renamed atomically). Returns the messages changed. */
  async applyFlags(updates: readonly { uid: number; flags: readonly string[] }[]): Promise<FolderMessage[]> {
    const all = updates.flatMap((u) => u.flags);
    await this.registerKeywords(all);
    // The renames are independent: several in flight (the thread pool runs them in parallel).
    // A UID given twice is renamed once, with its last flags.
    const lastOf = new Map<number, number>();
    updates.forEach((u, k) => lastOf.set(u.uid, k));
    const changed: (string | undefined)[] = new Array<string | undefined>(updates.length);
    const one = async (u: { uid: number; flags: readonly string[] }, k: number): Promise<void> => {
      const m = this.index.messages.get(u.uid);
      let file = this.files.get(u.uid);
      if (m === undefined || file === undefined || lastOf.get(u.uid) !== k) return;
      const parsed = parseFilename(file.name);
      const info = this.infoOf(this.canonical(u.flags), parsed.info);
      const target = curName(parsed.base, info);
      for (let attempt = 0; ; attempt++) {
        try {
          if (file.dir !== 'cur' || file.name !== target) await renameFile(join(this.path, file.dir, file.name), join(this.path, 'cur', target));
          break;
        } catch (error) {
          if (errno(error) !== 'ENOENT' || attempt > 2) throw error;
          file = await this.#findByBase(m.base);
          if (file === undefined) break;
        }
      }
      if (file === undefined) return;
      this.files.set(u.uid, { dir: 'cur', name: target });
      if (m.info !== info) changed[k] = info;
    };
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < updates.length) {
        const k = next++;
        try {
          await one(updates[k]!, k);
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RENAMES_IN_FLIGHT, updates.length) }, worker));
    const uids: number[] = [];
    const infos: string[] = [];
    updates.forEach((u, k) => {
      const info = changed[k];
      if (info !== undefined) {
        uids.push(u.uid);
        infos.push(info);
      }
    });
    if (uids.length > 0) await this.#appendIndex([{ t: 'F', u: uids, m: this.index.highestModSeq + 1, i: infos, w: this.#ctx.writerId }]);
    this.#rebuildView();
    return uids.map((uid) => this.#viewByUid.get(uid) ?? this.#meta(this.index.messages.get(uid)!));
  }

  /** Unlink the files of `uids` and log the expunge. Returns the UIDs removed. */
  async expungeUids(uids: readonly number[]): Promise<number[]> {
    const removed: number[] = [];
    for (const uid of [...uids].sort((a, b) => a - b)) {
      let file = this.files.get(uid);
      const m = this.index.messages.get(uid);
      if (file === undefined || m === undefined) continue;
      for (let attempt = 0; file !== undefined; attempt++) {
        try {
          await unlink(join(this.path, file.dir, file.name));
          break;
        } catch (error) {
          if (errno(error) !== 'ENOENT' || attempt > 2) throw error;
          file = await this.#findByBase(m.base);
        }
      }
      this.files.delete(uid);
      removed.push(uid);
    }
    if (removed.length > 0) {
      if (this.#ctx.fsync) await fsyncPath(join(this.path, 'cur'));
      const list = this.uidlist!;
      const gone = new Set(removed);
      await this.#writeUidlist({ ...list, records: list.records.filter((r) => !gone.has(r.uid)) });
      await this.#appendIndex([{ t: 'X', u: removed, m: this.index.highestModSeq + 1, w: this.#ctx.writerId }]);
    }
    this.#rebuildView();
    return removed;
  }

  /**
   * Bring a message of another folder in: a hard link of its file (a copy
   * when the file system refuses links), keeping its base name (so its
   * EMAILID) unless this folder already has it.
   */
  async importFrom(source: Folder, message: FolderMessage): Promise<FolderMessage | undefined> {
    let sourceFile: { dir: 'cur' | 'new'; name: string } | undefined = { dir: message.dir, name: message.file };
    const flags = await this.registerKeywords(message.flags);
    const info = this.infoOf(flags, message.info);
    const parsed = parseFilename(message.file);
    let base = parsed.base;
    if ([...this.index.messages.values()].some((m) => m.base === base)) {
      base = withSizes(this.#ctx.uniqueNames.next(this.#ctx.clock.now()), parsed.physicalSize ?? 0, message.size);
    }
    const name = curName(base, info);
    const target = join(this.path, 'cur', name);
    for (let attempt = 0; ; attempt++) {
      const from = join(source.path, sourceFile.dir, sourceFile.name);
      try {
        await link(from, target);
        break;
      } catch (error) {
        const code = errno(error);
        if (code === 'ENOENT' && attempt < 2) {
          sourceFile = await source.#findByBase(message.base);
          if (sourceFile === undefined) return undefined;
          continue;
        }
        if (code === 'EXDEV' || code === 'EPERM' || code === 'EMLINK') {
          const tmp = join(this.path, 'tmp', `${base}.${randomBytes(4).toString('hex')}`);
          await copyFile(from, tmp);
          if (this.#ctx.fsync) await fsyncPath(tmp);
          await link(tmp, target);
          await unlink(tmp);
          break;
        }
        if (code === 'ENOENT') return undefined;
        throw error;
      }
    }
    if (this.#ctx.fsync) await fsyncPath(join(this.path, 'cur'));
    const structure = await source.structure(message.uid).catch(() => undefined);
    return this.#register(base, { dir: 'cur', name }, info, message.size, message.internalDate, structure);
  }

  /** Unseen, deleted, size counts of the current view. */
  counts(): { messages: number; unseen: number; deleted: number; size: number } {
    let unseen = 0;
    let deleted = 0;
    let size = 0;
    for (const m of this.#view) {
      if (!isSeen(m.flags)) unseen++;
      if (isDeleted(m.flags)) deleted++;
      size += m.size;
    }
    return { messages: this.#view.length, unseen, deleted, size };
  }
}

