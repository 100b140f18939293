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
import { randomBytes } from 'node:crypto';
import { isAscii } from 'node:buffer';
import { closeSync, createReadStream, fdatasync, fstatSync, openSync, readFileSync, readFile as readFileCallback, readSync, rename as renameCallback, renameSync, stat as statCallback, statSync, writeSync, writevSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, Logger } from '@pigeonpost/wire';
import { StoreError } from '../errors.js';
import { isKeyword, withVersions } from '../flags.js';
import type { StoreLimits } from '../limits.js';
import { MessageSizeCounter, meterMessageSource } from '../source.js';
import type { MessageStructure } from '../structure.js';
import { imapBodyStructure, MimeParser, STRUCTURE_VERSION } from '@pigeonpost/mime';
import { computeStructure } from '../structure.js';
import type { FlagChangeMode, MessageSource } from '../types.js';
import { CHECKPOINT_VERSION, decodeCheckpoint, encodeCheckpoint, LOG_TAIL_CHECK, peekCheckpointScan } from './checkpoint.js';
import type { ScanState } from './checkpoint.js';
import { acquireDotlock, writeThroughDotlock } from './dotlock.js';
import type { Dotlock } from './dotlock.js';
import { baseOfName, curName, INFO_PREFIX, infoOfName, LETTER_OF_FLAG, parseFilename, physicalSizeOfBase, sortForUids, sortInfo, splitInfo, virtualSizeOfBase, withSizes } from './filename.js';
import type { UniqueNames } from './filename.js';
import type { FsFailure, FsWorker, RenameJob } from './fs-worker.js';
import type { MaildirReadMode } from './store.js';
import type { AddRecord, IndexRecord } from './index-log.js';
import { cachedBodyStructureAt, crc32, READ_MORE, decodeRecords, encodeRecord, encodeRecordAt, IndexState, infoDelta, parseJsonBytes, uidRanges } from './index-log.js';
import { KeywordTable, parseKeywordsFile, serializeKeywordsFile } from './keywords.js';
import { MaildirMessage } from './message.js';
import { readFullySync, readHandleIntoScratch, readWholeIntoScratch, releaseScratch } from './scratch.js';
import { newMailboxGuid, parseUidlistHeader, parseUidlistIndexed, serializeUidlist, UidlistParseError } from './uidlist.js';
import type { Uidlist, UidlistRecord } from './uidlist.js';

export const UIDLIST = 'dovecot-uidlist';
export const KEYWORDS = 'dovecot-keywords';
export const INDEX_LOG = 'pigeonpost-index.log';
export const INDEX_CHECKPOINT = 'pigeonpost-index.bin';
export const FOLDER_MARKER = 'maildirfolder';
/** File renames (flag changes) in flight at once through libuv, for small changes. */
const RENAMES_IN_FLIGHT = 16;
/** A flag change renaming more files than this goes to the file worker, in batches of RENAME_BATCH. */
const WORKER_RENAMES_FROM = 64;
const RENAME_BATCH = 8192;
/**
 * With readMode 'worker', a STORE on at least this many files has its
 * batches renamed by two workers at once (the file worker and a parse
 * worker, alternately): the kernel serialises renames in one directory, but
 * the syscall around them and Node's side of each call do not. 100k renames
 * of the bench's Maildir on 2 cores, quiet: 1.17–1.25 s with two workers,
 * 1.35–1.48 s with one (three or four: no better than two). Below it, one
 * worker. With 'sync-batched' the second renamer is this thread instead,
 * once it has nothing else to do (see #steal): no second thread to boot, and
 * none spinning on the directory's lock while this one plans.
 */
const PARALLEL_RENAMES_FROM = 2 * RENAME_BATCH;
/**
 * ...and from this many when the file worker is not running yet (it is
 * started then): fewer are done (here, or through libuv) before it would
 * have booted (50–90 ms here).
 */
const COLD_WORKER_RENAMES_FROM = 4096;
/** Index log appends up to this size are written synchronously with readMode 'sync-batched' (their fdatasync is not). */
const SYNC_APPEND_BYTES = 64 * 1024;
/** Renames made on the main thread (readMode 'sync-batched') per event-loop turn: ~3 ms. */
const RENAME_SLICE = 256;
/** Renames left at least this many when the file worker is up: handed over to it (fewer are finished here). */
const HAND_OVER_FROM = 2048;

/** Files read ahead by the file worker when structures are computed on first use, and per batch. */
const STRUCTURE_READ_AHEAD = 512;
const READ_BATCH = 128;
/**
 * readMode 'sync-batched': a folder with fewer messages than this whose structure is unknown,
 * when no worker is up, has them read (synchronously, small files) and parsed on the calling
 * thread, as they are asked for: booting the workers (50–90 ms each, then their module and JIT
 * warm-up) would cost more than the parses. 20 messages in a fresh process: 440–830 ms → a
 * few ms.
 */
const PARSE_HERE_BELOW = 1000;
/** INTERNALDATEs stat'ed by the file worker per batch. */
const STAT_BATCH = 4096;
/** New files found by one sync past this many are not logged one add record each: the checkpoint holds them. */
const LOGGED_ADDS_MAX = 512;
/** Index log bytes after the checkpoint past which a new checkpoint is written in the background (at least; see CHECKPOINT_LOG_RATIO). */
const CHECKPOINT_AFTER_BYTES = 8 * 1024 * 1024;
/**
 * ...or this many times the last checkpoint's size, when more: a checkpoint
 * of a big folder (~10 MB at 100k messages) is not written again for every
 * 8 MiB of log (a first BODYSTRUCTURE of all appends ~100 MB of structures),
 * which would write more than the log itself; the log tail an open reads
 * stays in proportion to the folder.
 */
const CHECKPOINT_LOG_RATIO = 4;
/** How long after it is asked for a background checkpoint is written. */
const CHECKPOINT_DELAY_MS = 1000;
/** Files looked at (a stat, or a read when the name has no `,W=`) at once when indexing new files. */
const DESCRIBES_IN_FLIGHT = 32;
/** Structures computed on first use and not yet in the index log: past this many, they are appended in the background. */
const PENDING_STRUCTURES_FLUSH = 1024;
/** Files up to this size are read whole when indexed; larger ones are streamed. */
const WHOLE_READ_BYTES = 1024 * 1024;
/** Default of the store's `wholeReadBytes`: message files up to this size are read whole by read() and POP3 RETR. */
export const DEFAULT_WHOLE_READ_BYTES = 256 * 1024;
/** Default of the store's `readAheadBytes`: small files read ahead per folder when messages are read in UID order. */
export const DEFAULT_READ_AHEAD_BYTES = 1024 * 1024;
/** At most this many message files read ahead (or being read) per folder for read(). */
const BODY_READ_AHEAD_FILES = 128;
/** Files per message to the read worker (each message wakes its thread: on a busy machine that costs more than reading a few files). */
const BODY_READ_BATCH = 64;
/** readMode 'sync-batched': at most this many small files read on the main thread per event-loop turn... */
const SYNC_READ_FILES = 64;
/** ...and at most about this many bytes (the file that crosses it is still read); the rest waits for setImmediate. */
const SYNC_READ_BYTES = 1024 * 1024;
/** Files read ahead but not asked for within this long are dropped. */
const BODY_READ_AHEAD_IDLE_MS = 2000;
/**
 * Chunks a large message file is streamed in: the memory a stream holds,
 * whatever the file's size. 256 KiB rather than fs streams' 64 KiB: a 32 MB
 * POP3 RETR took ~10–40 % less server CPU (fewer reads, promises and buffers).
 */
const STREAM_CHUNK_BYTES = 256 * 1024;
/** Bytes of the index log read at once when a structure is asked for. */
const STRUCTURE_LOG_WINDOW = 1024 * 1024;
/**
 * A directory mtime at least this much older than a scan cannot hide a later
 * change: 2 s where mtimes are in whole seconds (FAT keeps 2 s, ext3 1 s),
 * 250 ms where they have sub-second parts (ext4, XFS, btrfs, tmpfs set them
 * from a clock that ticks every few milliseconds).
 */
const MTIME_TRUST_MS = 2000;
const MTIME_TRUST_FINE_MS = 250;

/** How long directory mtimes count as recent: MTIME_TRUST_FINE_MS when the file system keeps sub-second mtimes, MTIME_TRUST_MS otherwise. */
function trustWindowMs(mtimes: { readonly cur: number; readonly new: number }): number {
  return mtimes.cur % 1000 !== 0 || mtimes.new % 1000 !== 0 ? MTIME_TRUST_FINE_MS : MTIME_TRUST_MS;
}
/**
 * A scan that is not trusted is relied on until it is this old (Dovecot's
 * MAILDIR_SYNC_SECS: it lists a dirty cur/ again once its check time is more
 * than that in the past), or the trust window where that is longer; then the
 * folder is listed once more (see Folder#scanHolds).
 */
const REFRESH_AFTER_MS = 1000;

function refreshAfterMs(mtimes: { readonly cur: number; readonly new: number }): number {
  return Math.max(REFRESH_AFTER_MS, trustWindowMs(mtimes));
}
/** The background delayed refresh runs this long after it is due, once the folder was not used for REFRESH_IDLE_MS (see Folder#scheduleRefresh). */
const REFRESH_SLACK_MS = 50;
const REFRESH_IDLE_MS = 200;

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
  /**
   * Called after every change committed to the index (local notifications). A function
   * makes the records only if someone is watching (a rebuilt index's 100k adds).
   */
  onRecords(folder: Folder, records: readonly IndexRecord[] | (() => readonly IndexRecord[])): void;
  /** The store's file worker (bulk renames, reads and stats off the main thread). */
  readonly fsWorker: FsWorker;
  /** The store's worker for whole reads of small message files (read(), POP3 RETR). */
  readonly readWorker: FsWorker;
  /** Message files up to this size (by `,S=`) are read whole, through readWorker; larger ones stream. */
  readonly wholeReadBytes: number;
  /** Bytes of small files read ahead per folder when messages are read in UID order; 0: none. */
  readonly readAheadBytes: number;
  /** Small files read by readWorker ('worker'), or here with synchronous calls in bounded batches ('sync-batched'). */
  readonly readMode: MaildirReadMode;
  /** Workers that read and parse files for structures computed on first use (empty: read by fsWorker, parsed here). */
  readonly parseWorkers: readonly FsWorker[];
  /** @pigeonpost/mime's CommonJS entry, for the parse workers; undefined: parse here. */
  readonly mimePath: string | undefined;
}

export type FolderMessage = MaildirMessage;

/** Where a message's file is. */
export interface FileLocation {
  readonly dir: 'cur' | 'new';
  readonly name: string;
}

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

export { emailIdOf } from './message.js';

/** fs.readFile through its callback: no FileHandle (the promise API's is several times slower for small files). */
function readSmallFile(path: string): Promise<Buffer> {
  return new Promise((resolve, reject) => readFileCallback(path, (error, data) => (error ? reject(error) : resolve(data))));
}

/** rename through its callback (fs/promises' costs several times more per call; a STORE on 100k messages is 100k renames). */
function renameFile(from: string, to: string): Promise<void> {
  return new Promise((resolve, reject) => renameCallback(from, to, (error) => (error ? reject(error) : resolve())));
}

/** A file's mtime through the callback stat (cheaper than fs/promises' for many files). */
function mtimeOf(path: string): Promise<number> {
  return new Promise((resolve, reject) => statCallback(path, (error, st) => (error ? reject(error) : resolve(st.mtimeMs))));
}

/** True when `name` is `<base>:2,<info>`, the name a message with these flags has in cur/. */
function isCanonicalName(name: string, base: string, info: string): boolean {
  return name.length === base.length + 3 + info.length && name.startsWith(base) && name.startsWith(':2,', base.length) && name.endsWith(info);
}

const NO_EXTENSIONS: readonly string[] = Object.freeze([]);

/** The structure of a message held whole: one push, no async iteration. */
function structureOfBytes(data: Buffer): MessageStructure {
  const parser = new MimeParser();
  parser.push(data);
  return parser.end();
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
  resolve(message: MaildirMessage): void;
  reject(error: unknown): void;
}

export class Folder {
  readonly path: string;
  name: string;
  readonly #ctx: FolderContext;
  #queue: Promise<unknown> = Promise.resolve();
  /** dovecot-uidlist's header (V, N, G, other fields). Its records are the messages of the index (see #records). */
  uidlist: Uidlist | undefined;
  keywords: KeywordTable;
  readonly index: IndexState;
  #indexOffset = 0;
  #indexIno = -1;
  /** The last ≤ LOG_TAIL_CHECK bytes of the index log before #indexOffset (a checkpoint's proof of which log it stands for). */
  #logTail: Buffer = Buffer.alloc(0);
  /** The log offset the last checkpoint (written or loaded) stands for; -1: none. */
  #checkpointOffset = -1;
  /** Size of the last checkpoint this folder wrote (0: none yet). */
  #checkpointBytes = 0;
  /** Something a checkpoint holds changed without a log record (INTERNALDATEs read, adds not logged). */
  #checkpointDirty = false;
  #checkpointScheduled = false;
  /** The store closed: no more background writes. */
  #closed = false;
  #checkpointWrite: Promise<void> = Promise.resolve();
  /** What the last #refreshIndex did: records applied, and whether it started over (from a checkpoint or not). */
  #refreshed = { applied: 0, reset: false, fromCheckpoint: false };
  /** Messages ascending by UID, as of the last change; replaced (never changed in place), so handles can hold it. */
  #view: MaildirMessage[] = [];
  #viewKeywords = '';
  /** Flags arrays by info letters, shared by every message with those letters (frozen), for the current keyword table. */
  #flagsByInfo = new Map<string, readonly string[]>();
  readonly #infos = new Map<string, string>();
  /** The last window of the index log read for structures (see #currentWindow). */
  #structureWindow: StructureWindow | undefined;
  /** dovecot-uidlist as last read under the lock: its inode and the bytes up to its last `\n` (for appends). */
  #uidlistAt: { ino: number; size: number } | undefined;
  /** dovecot-uidlist as this.uidlist and the index's messages hold it (inode, size, mtime), so an unchanged file is not parsed again. */
  #uidlistRead: { ino: number; size: number; mtimeMs: number; appendable: { ino: number; size: number } | undefined } | undefined;
  /** dovecot-keywords as this.keywords was read from it: null when it was missing, undefined when unknown (read it again). */
  #keywordsRead: FileIdentity | null | undefined;
  /** Extension fields of uidlist records (rare), by UID; undefined when the records were not parsed (the file was known). */
  #extensions: Map<number, readonly string[]> | undefined = new Map();
  /** The last full scan of cur/ and new/: their mtimes, and whether they are old enough to trust (see #syncLocked). */
  #lastScan: ScanState | undefined;
  /** The background delayed refresh of a recent scan (see #scheduleRefresh), while one is due, and the state it was for. */
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshFor: object | undefined;
  /** When the folder was last used (a change, a sync, a read): the background refresh waits for a quiet moment. */
  #lastUse = 0;
  /** The store is closing: nothing more is started in the background. */
  #closing = false;
  /** Renames that found their file gone (another program moved it): counted, so a STORE knows it raced one. */
  #renameRaces = 0;
  readonly #pendingCommits: PendingCommit[] = [];
  /** Structures computed since the index was written (a folder indexed from its files), by UID, to append to the log. */
  /**
   * Encoded as their structure records at once (bytes outside the JS heap, and
   * the structure objects die young instead of waiting here for the flush).
   */
  readonly #pendingStructures = new Map<number, { base: string; data: Buffer; at: readonly [number, number] }>();
  #structureFlushScheduled = false;
  /** Structures being computed from files (asked for, or prefetched), by UID. */
  readonly #computing = new Map<number, Promise<FirstUse>>();
  /** Files being read (or read) by the file worker ahead of `structure()`, by UID, with the base name they were read for. */
  readonly #readAhead = new Map<number, { base: string; result: Promise<ReadAhead | undefined> }>();
  #nextParser = 0;
  /** The last #parseHere decision and the view it was made for. */
  #parseHereFor: { view: readonly MaildirMessage[]; here: boolean } | undefined;
  #parsersFailed = false;
  /**
   * Small message files being read (or read) whole by the read worker for
   * readFile(), by UID, with the base name they were read for and their
   * size by `,S=`: the ones asked for, and those read ahead of a walk in UID
   * order. Each is taken out when read; `#bodyBytes` is their total size.
   */
  readonly #bodies = new Map<number, { base: string; size: number; data: Promise<Buffer | undefined>; value?: Buffer | null }>();
  #bodyBytes = 0;
  /** Files for the read worker, sent together at the end of this microtask (or when BODY_READ_BATCH are waiting). */
  #bodyBatch: { paths: string[]; sizes: number[]; resolves: ((data: Buffer | undefined) => void)[] } | undefined;
  /** The walk in UID order readFile() is following: the view, the position of the last file asked for, the next to read ahead. */
  readonly #bodyWalk: { view: readonly MaildirMessage[] | undefined; last: number; next: number; at: number } = { view: undefined, last: -1, next: 0, at: 0 };
  #bodyIdleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Where read-ahead stopped (a UID of `view`), for the walk that began at `from`. */
  readonly #readCursor: { view: readonly MaildirMessage[] | undefined; from: number; uid: number } = { view: undefined, from: 0, uid: 0 };

  constructor(path: string, name: string, ctx: FolderContext) {
    this.path = path;
    this.name = name;
    this.#ctx = ctx;
    this.keywords = new KeywordTable([], ctx.limits.maxKeywordsPerMailbox);
    this.index = new IndexState((info) => this.flagsOf(info));
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

  /** Messages, ascending by UID, as of the last sync. The array is never changed: a change makes a new one. */
  messages(): readonly MaildirMessage[] {
    return this.#view;
  }

  /** The current version of a message, or undefined when it is not in the folder. */
  message(uid: number): MaildirMessage | undefined {
    return this.index.messages.get(uid);
  }

  /**
   * Run `fn` alone in this process and with the uidlist lock held, after a sync.
   * `scan: false` (a delivery's commit): cur/ and new/ are not listed when the
   * uidlist and the index are as this store left them — files other programs
   * dropped in meanwhile get their UIDs at the next full sync (open, sync(), any
   * other change), as Dovecot's LMTP leaves them to the next session.
   */
  locked<T>(fn: (lock: Dotlock) => Promise<T>, options: { readonly scan?: boolean } = {}): Promise<T> {
    this.#lastUse = Date.now();
    const scan = options.scan ?? true;
    const run = async (): Promise<T> => {
      const lock = await acquireDotlock(join(this.path, `${UIDLIST}.lock`), {
        clock: this.#ctx.clock,
        protects: join(this.path, UIDLIST),
        staleTimeoutMs: this.#ctx.lockStaleTimeoutMs,
        timeoutMs: this.#ctx.lockTimeoutMs,
        sync: this.#ctx.readMode === 'sync-batched',
      });
      try {
        await this.#syncLocked(scan);
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
  // Files of a message

  /** Where a message's file is (as far as the last sync or change knows). */
  locationOf(m: MaildirMessage): FileLocation {
    const f = m.file;
    if (f === undefined) return { dir: 'cur', name: curName(m.base, m.info) };
    return { dir: f.startsWith('new/') ? 'new' : 'cur', name: f.slice(4) };
  }

  #setLocation(m: MaildirMessage, loc: FileLocation): void {
    m.file = loc.dir === 'cur' && isCanonicalName(loc.name, m.base, m.info) ? undefined : `${loc.dir}/${loc.name}`;
  }

  #pathOf(m: MaildirMessage): string {
    // Plain concatenation: path.join's normalisation shows in profiles at 100k messages, and these parts need none.
    const f = m.file;
    return f === undefined ? `${this.path}/cur/${curName(m.base, m.info)}` : `${this.path}/${f}`;
  }

  // -------------------------------------------------------------------------
  // Sync

  /**
   * dovecot-uidlist: its header always; its records only when the file is not
   * the one the index's messages were made from (`records` undefined then:
   * they are the index's). `force` parses the records in any case.
   */
  async #readUidlist(force: boolean, probed?: Stats | null): Promise<{ list: Uidlist; records: UidlistRecord[] | undefined; byBase?: ReadonlyMap<string, number> } | undefined> {
    let buf: Buffer;
    this.#uidlistAt = undefined;
    let at: { ino: number; size: number };
    let mtimeMs: number;
    let known: boolean;
    if (probed !== undefined && !force && this.uidlist !== undefined) {
      // Stat'ed by the sync's probe (under the lock): unchanged, it is not even opened.
      const read = this.#uidlistRead;
      if (probed === null) return undefined;
      if (read !== undefined && sameFile(read, probed)) {
        this.#uidlistAt = read.appendable;
        return { list: this.uidlist, records: undefined };
      }
    }
    try {
      const fh = await open(join(this.path, UIDLIST), 'r');
      try {
        const st = await fh.stat();
        mtimeMs = st.mtimeMs;
        // Unchanged since we read or wrote it: the same inode (a rewrite renames a new file
        // in), size (Dovecot appends in place) and mtime. We hold the lock, so nobody is writing it.
        const read = this.#uidlistRead;
        known = read !== undefined && sameFile(read, st);
        if (known && this.uidlist !== undefined && !force) {
          this.#uidlistAt = read!.appendable;
          return { list: this.uidlist, records: undefined };
        }
        this.#uidlistRead = undefined;
        if (known && !force && st.size > 16384) {
          // Known (from a checkpoint) but not read by this store yet: only the header line and the
          // last record are needed, so only the first and last few KiB are read, not 100k lines.
          const head = Buffer.allocUnsafe(4096);
          const tail = Buffer.allocUnsafe(8192);
          const [h, t] = await Promise.all([fh.read(head, 0, head.length, 0), fh.read(tail, 0, tail.length, st.size - tail.length)]);
          const headEnd = head.subarray(0, h.bytesRead).indexOf(0x0a) + 1;
          const lastNl = tail.subarray(0, t.bytesRead).lastIndexOf(0x0a);
          const lastStart = lastNl > 0 ? tail.lastIndexOf(0x0a, lastNl - 1) + 1 : 0;
          let list: Uidlist | undefined;
          try {
            if (headEnd > 0 && lastNl > 0 && lastStart > 0) list = parseUidlistHeader(head.toString('utf8', 0, headEnd) + tail.toString('utf8', lastStart, lastNl + 1));
          } catch {
            list = undefined; // read and judged whole below
          }
          if (list !== undefined) {
            const end = st.size - tail.length + lastNl + 1;
            if (list.version === 3) this.#uidlistAt = { ino: st.ino, size: end };
            this.#uidlistRead = { ino: st.ino, size: st.size, mtimeMs, appendable: this.#uidlistAt };
            this.#extensions = undefined;
            this.uidlist = { ...list, records: [] };
            return { list: this.uidlist, records: undefined };
          }
        }
        // Into the thread's scratch buffer (released below, once parsed into strings and records).
        buf = await readHandleIntoScratch(fh, st.size);
        at = { ino: st.ino, size: buf.lastIndexOf(0x0a) + 1 };
      } finally {
        await fh.close();
      }
    } catch (error) {
      if (errno(error) === 'ENOENT') return undefined;
      throw error;
    }
    try {
      // Known (from a checkpoint) but not read by this store yet: the header is enough.
      const headerOnly = known && !force;
      let list: Uidlist;
      let byBase: ReadonlyMap<string, number> | undefined;
      if (headerOnly) {
        // Only the header line and the last record (for N) are decoded, not the 100k lines between.
        const first = buf.indexOf(0x0a) + 1;
        const lastStart = at.size > first ? buf.lastIndexOf(0x0a, at.size - 2) + 1 : first;
        list = parseUidlistHeader(buf.toString('utf8', 0, first) + buf.toString('utf8', Math.max(first, lastStart), at.size));
      } else ({ list, byBase } = parseUidlistIndexed(buf.toString('utf8')));
      if (list.version === 3) this.#uidlistAt = at;
      this.#uidlistRead = { ino: at.ino, size: buf.length, mtimeMs, appendable: this.#uidlistAt };
      if (headerOnly) {
        this.#extensions = undefined;
        this.uidlist = { ...list, records: [] };
        return { list: this.uidlist, records: undefined };
      }
      const extensions = new Map<number, readonly string[]>();
      for (const r of list.records) if (r.extensions.length > 0) extensions.set(r.uid, r.extensions);
      this.#extensions = extensions;
      // The records copied in the same order: `byBase` (record index per base, from the common form) holds for them.
      return { list: { ...list, records: [] }, records: [...list.records], ...(byBase !== undefined ? { byBase } : {}) };
    } catch (error) {
      if (error instanceof UidlistParseError) {
        this.#ctx.logger.warn({ path: this.path, error: error.message }, 'corrupted dovecot-uidlist: recreating with a new UIDVALIDITY');
        return undefined;
      }
      throw error;
    } finally {
      releaseScratch(buf);
    }
  }

  /** The uidlist records of the folder's messages (UID order), with `added` after them and `gone` left out. */
  async #records(added: readonly UidlistRecord[] = [], gone?: ReadonlySet<number>): Promise<UidlistRecord[]> {
    if (this.#extensions === undefined) {
      // The extension fields were not parsed (the file was known from a checkpoint): read them now, under the lock.
      const read = await this.#readUidlist(true);
      if (read === undefined) this.#extensions = new Map();
    }
    const ext = this.#extensions ?? new Map<number, readonly string[]>();
    const out: UidlistRecord[] = [];
    for (const m of this.#view) if (gone === undefined || !gone.has(m.uid)) out.push({ uid: m.uid, extensions: ext.get(m.uid) ?? NO_EXTENSIONS, base: m.base });
    out.push(...added);
    return out;
  }

  async #writeUidlist(list: Uidlist, records: readonly UidlistRecord[]): Promise<void> {
    const tmp = join(this.path, `${UIDLIST}.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    let st;
    try {
      await fh.writeFile(serializeUidlist({ ...list, records }));
      if (this.#ctx.fsync) await fh.datasync();
      st = await fh.stat();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.path, UIDLIST));
    if (this.#ctx.fsync) await fsyncPath(this.path);
    this.uidlist = { ...list, records: [] };
    if (this.#extensions !== undefined) {
      const ext = new Map<number, readonly string[]>();
      for (const r of records) if (r.extensions.length > 0) ext.set(r.uid, r.extensions);
      this.#extensions = ext;
    }
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
    if (at === undefined || added.length === 0) return this.#writeUidlist(list, await this.#records(added));
    let fh;
    try {
      fh = await open(join(this.path, UIDLIST), 'r+');
    } catch (error) {
      if (errno(error) === 'ENOENT') return this.#writeUidlist(list, await this.#records(added));
      throw error;
    }
    let appended: number;
    let after;
    try {
      const st = await fh.stat();
      if (st.ino !== at.ino || st.size < at.size) {
        await fh.close();
        fh = undefined;
        return this.#writeUidlist(list, await this.#records(added));
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
    this.uidlist = { ...list, records: [] };
  }

  /** `probed`: the file as the sync's probe found it (null: missing); unchanged since it was read, it is not read again. */
  async #readKeywords(probed?: Stats | null): Promise<void> {
    const seen = this.#keywordsRead;
    if (probed !== undefined && seen !== undefined && (probed === null ? seen === null : seen !== null && sameFile(seen, probed))) return;
    let text = '';
    // Taken before the read: a change after it makes the next sync read the file again.
    this.#keywordsRead = probed === undefined ? undefined : probed === null ? null : identityOf(probed);
    try {
      text = await readFile(join(this.path, KEYWORDS), 'utf8');
    } catch (error) {
      if (errno(error) !== 'ENOENT') throw error;
    }
    this.keywords = new KeywordTable(parseKeywordsFile(text), this.#ctx.limits.maxKeywordsPerMailbox);
    this.#keywordsChanged();
  }

  /** After the keyword table changed: flags arrays are made again, and every message gets a version with them (same MODSEQ). */
  #keywordsChanged(): void {
    const keywords = this.keywords.slots.join('\n');
    if (keywords === this.#viewKeywords) return;
    this.#viewKeywords = keywords;
    this.#flagsByInfo = new Map();
    const messages = this.index.messages;
    for (const [uid, m] of messages) messages.set(uid, m.withFlags(m.modSeq, m.info, this.flagsOf(m.info)));
    this.#rebuildView();
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
      const names = await readdir(join(this.path, dir));
      // Dot files (not messages) are rare: removed in place, no second array of 100k names.
      let w = 0;
      for (let r = 0; r < names.length; r++) if (names[r]!.charCodeAt(0) !== 46) names[w++] = names[r]!;
      names.length = w;
      return names;
    } catch (error) {
      if (errno(error) === 'ENOENT') {
        if (dir === 'cur') throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${this.name} does not exist`);
        return [];
      }
      throw error;
    }
  }

  #keepLogTail(bytes: Buffer): void {
    if (bytes.length >= LOG_TAIL_CHECK) this.#logTail = Buffer.from(bytes.subarray(bytes.length - LOG_TAIL_CHECK));
    else this.#logTail = Buffer.concat([this.#logTail, bytes]).subarray(-LOG_TAIL_CHECK);
  }

  /**
   * The checkpoint, when it stands for this log (`fh`, `size` bytes long):
   * loaded into the index, which then reads the log from its offset on.
   */
  async #loadCheckpoint(fh: Awaited<ReturnType<typeof open>>, ino: number, size: number): Promise<boolean> {
    // Into the thread's scratch buffer: decoded into messages, numbers and strings, nothing kept of it.
    const buf = await readWholeIntoScratch(join(this.path, INDEX_CHECKPOINT), this.#ctx.readMode === 'sync-batched');
    if (buf === undefined) return false;
    let cp: ReturnType<typeof decodeCheckpoint>;
    try {
      cp = decodeCheckpoint(buf, this.index);
    } finally {
      releaseScratch(buf);
    }
    if (cp === undefined || cp.logIno !== ino || cp.logOffset > size || cp.logOffset < 1) {
      this.index.reset();
      return false;
    }
    const start = Math.max(0, cp.logOffset - LOG_TAIL_CHECK);
    const tail = Buffer.alloc(cp.logOffset - start);
    const { bytesRead } = await fh.read(tail, 0, tail.length, start);
    if (bytesRead !== tail.length || crc32(tail) !== cp.logTailCrc) {
      this.index.reset();
      return false;
    }
    this.#indexOffset = cp.logOffset;
    this.#logTail = tail;
    this.#checkpointOffset = cp.logOffset;
    this.#checkpointBytes = buf.length;
    // The scan this state came from: a sync may skip the directories while they keep those mtimes.
    this.#lastScan = cp.scan;
    if (cp.uidlist !== undefined) {
      const u = cp.uidlist;
      this.#uidlistRead = { ino: u.ino, size: u.size, mtimeMs: u.mtimeMs, appendable: u.appendable < 0 ? undefined : { ino: u.ino, size: u.appendable } };
      // The header is read again from that file (ours may be of another version of it).
      this.uidlist = undefined;
    }
    return true;
  }

  /**
   * Read the index from where we stopped; reload when it was replaced. Returns false when it is unusable.
   * `probed`: the log as the sync's probe found it (null: missing); the same file, no longer, it is not opened.
   */
  async #refreshIndex(probed?: Stats | null): Promise<boolean> {
    const path = join(this.path, INDEX_LOG);
    if (probed === null) return false;
    if (probed !== undefined && probed.ino === this.#indexIno && probed.size === this.#indexOffset) {
      this.#refreshed = { applied: 0, reset: false, fromCheckpoint: false };
      return this.index.uidValidity !== 0;
    }
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (error) {
      if (errno(error) === 'ENOENT') return false;
      throw error;
    }
    try {
      const st = await fh.stat();
      let fromCheckpoint = false;
      this.#refreshed = { applied: 0, reset: false, fromCheckpoint: false };
      if (st.ino !== this.#indexIno || st.size < this.#indexOffset) {
        this.#indexIno = st.ino;
        this.#indexOffset = 0;
        this.#logTail = Buffer.alloc(0);
        this.#checkpointOffset = -1;
        this.#structureWindow = undefined;
        this.index.reset();
        // What the uidlist holds is known again only from a checkpoint: the index's messages are its records then.
        this.#uidlistRead = undefined;
        fromCheckpoint = await this.#loadCheckpoint(fh, st.ino, st.size);
        this.#refreshed = { applied: 0, reset: true, fromCheckpoint };
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
      this.#refreshed.applied = decoded.records.length;
      if (start === 0 && decoded.records.length > 0 && decoded.records[0]!.t !== 'H') return false;
      this.#indexOffset += decoded.consumed;
      this.#keepLogTail(buf.subarray(0, decoded.consumed));
      if (decoded.stop === 'corrupt') return false;
      if (decoded.stop === 'partial') {
        // A crash mid-append (we hold the lock: nobody is writing). Cut the torn record off.
        await truncate(path, this.#indexOffset);
      }
      // A long tail after the checkpoint (or none at all): the next open should not read it again.
      if (decoded.consumed > 1024 * 1024 || (!fromCheckpoint && start === 0 && this.index.messages.size > 1000)) this.#scheduleCheckpoint();
      return this.index.uidValidity !== 0;
    } finally {
      await fh.close();
    }
  }

  /** `versions`: for one flags record, the new message versions made for it (see IndexState.applyPrepared). */
  async #appendIndex(records: readonly IndexRecord[], preEncoded?: readonly { data: Buffer; structure?: readonly [number, number] }[], versions?: readonly MaildirMessage[]): Promise<void> {
    if (records.length === 0) return;
    const encoded = preEncoded ?? records.map((r) => encodeRecordAt(r));
    // Written as they are (writev), not copied into one buffer first: a flush of structures is a thousand records.
    const pieces = encoded.map((e) => e.data);
    let total = 0;
    for (const p of pieces) total += p.length;
    const path = join(this.path, INDEX_LOG);
    // Structure records are a cache (no MODSEQ, nothing a client saw): not synced on their own.
    // A crash may lose them (computed again) or leave a torn or damaged tail, which a
    // sync cuts off (or rebuilds the index from the files); the next synced append
    // makes them durable with it.
    const durable = this.#ctx.fsync && !records.every((r) => r.t === 'S');
    if (this.#ctx.readMode === 'sync-batched' && total <= SYNC_APPEND_BYTES) {
      // A few records (a STORE, an EXPUNGE, a delivery): written here, synchronously (into the
      // page cache); only the fdatasync goes through libuv.
      const fd = openSync(path, 'a', 0o600);
      try {
        let written = writevSync(fd, pieces);
        if (written < total) {
          const all = Buffer.concat(pieces);
          while (written < total) written += writeSync(fd, all, written);
        }
        if (durable) await new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
        this.#indexIno = fstatSync(fd).ino;
      } finally {
        closeSync(fd);
      }
    } else {
      const fh = await open(path, 'a', 0o600);
      try {
        const { bytesWritten } = pieces.length === 1 ? await fh.write(pieces[0]!) : await fh.writev(pieces);
        if (bytesWritten < total) await fh.write(Buffer.concat(pieces).subarray(bytesWritten));
        if (durable) await fh.datasync();
        const st = await fh.stat();
        this.#indexIno = st.ino;
      } finally {
        await fh.close();
      }
    }
    let at = this.#indexOffset;
    records.forEach((r, k) => {
      const e = encoded[k]!;
      if (versions !== undefined && records.length === 1 && r.t === 'F') this.index.applyPrepared(r, versions);
      else this.index.apply(r, e.structure === undefined ? undefined : [at + e.structure[0], e.structure[1]]);
      at += e.data.length;
    });
    this.#indexOffset += total;
    // The log's last bytes: from the last pieces only.
    let from = pieces.length;
    for (let tail = 0; from > 0 && tail < LOG_TAIL_CHECK; ) tail += pieces[--from]!.length;
    this.#keepLogTail(from === pieces.length - 1 ? pieces[from]! : Buffer.concat(pieces.slice(from)));
    this.#ctx.onRecords(this, records);
    if (this.#indexOffset - Math.max(0, this.#checkpointOffset) > Math.max(CHECKPOINT_AFTER_BYTES, CHECKPOINT_LOG_RATIO * this.#checkpointBytes)) this.#scheduleCheckpoint();
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
    this.#logTail = Buffer.from(data.subarray(-LOG_TAIL_CHECK));
    this.#checkpointOffset = -1;
  }

  /** Rebuild the index from the files: same UIDs (they come from the uidlist), MODSEQs restarting above anything handed out before. */
  async #rebuildIndex(uidValidity: number): Promise<void> {
    // MODSEQs after a rebuild start at the clock in milliseconds, above any
    // counter a client may have cached from before (which grows by one per
    // change, far slower than the clock), and above what is left of the old index.
    const floor = Math.max(this.#ctx.clock.now(), this.index.highestModSeq + 1, 1);
    // A folder that never had an index (new, or written by other programs only) is indexed as a
    // matter of course; one whose index was there but unusable (damaged, replaced) is worth a warning.
    const existed = await stat(join(this.path, INDEX_LOG)).then(
      () => true,
      () => false,
    );
    if (existed) this.#ctx.logger.warn({ path: this.path, floor }, 'rebuilding the Pigeonpost index of a Maildir folder');
    else this.#ctx.logger.debug({ path: this.path, floor }, 'indexing a Maildir folder for the first time');
    const header: IndexRecord = { t: 'H', v: 1, uv: uidValidity, floor };
    this.index.reset();
    this.index.apply(header);
    await this.#rewriteIndex([header]);
  }

  async #syncLocked(scan = true): Promise<void> {
    const ctx = this.#ctx;
    // The directories' mtimes, taken before anything is read (see #lastScan).
    const scanStart = ctx.clock.now();
    const probe = await this.#probe();
    const dirMtimes = probe.cur && probe.new ? { cur: probe.cur.mtimeMs, new: probe.new.mtimeMs } : undefined;
    // Without a scan (a delivery): no listing started early (it is only needed if the uidlist or index changed).
    const lightOk = !scan && dirMtimes !== undefined && this.uidlist !== undefined;
    // Directories not as the last scan left them (or it is due again, see #scanHolds): they will be
    // listed, so the listing starts now and runs (in libuv's pool) while the index and uidlist are
    // read. Likewise when no scan of this store can match and the checkpoint's (read from its header) does not.
    let early: Promise<[string[], string[]]> | undefined;
    const last0 = this.#lastScan;
    let listNow = !lightOk && (dirMtimes === undefined || (last0 !== undefined && !this.#scanHolds(last0, dirMtimes, scanStart)));
    if (!lightOk && !listNow && last0 === undefined && dirMtimes !== undefined) {
      const scan = await peekCheckpointScan(join(this.path, INDEX_CHECKPOINT));
      listNow = scan === undefined || !this.#scanHolds(scan, dirMtimes, scanStart);
    }
    if (listNow) {
      early = Promise.all([this.#listDir('cur'), this.#listDir('new')]);
      early.catch(() => undefined);
    }
    await this.#readKeywords(probe.keywords);
    const usable = await this.#refreshIndex(probe.log);
    // After the refresh: a checkpoint loaded by it brings the scan it was made from.
    const last = this.#lastScan;
    this.#lastScan = undefined;
    const refreshed = this.#refreshed;
    const read = await this.#readUidlist(false, probe.uidlist);
    // The index and dovecot-uidlist are as the last scan left them (this store's, or the checkpoint's).
    const unchanged =
      read !== undefined &&
      read.records === undefined &&
      usable &&
      refreshed.applied === 0 &&
      (!refreshed.reset || refreshed.fromCheckpoint) &&
      this.index.uidValidity === read.list.uidValidity;
    if (unchanged && last !== undefined && dirMtimes !== undefined && this.#scanHolds(last, dirMtimes, scanStart)) {
      // Nothing in cur/ or new/, the index or dovecot-uidlist changed since the last scan
      // (this store's, or the one the checkpoint was made from).
      this.#lastScan = last;
      this.uidlist = read.list;
      if (refreshed.reset) this.#rebuildView();
      if (!last.trusted) this.#scheduleRefresh();
      return;
    }
    if (
      lightOk &&
      read !== undefined &&
      read.records === undefined &&
      usable &&
      refreshed.applied === 0 &&
      !refreshed.reset &&
      this.index.uidValidity === read.list.uidValidity
    ) {
      // A delivery: the uidlist and the index are this store's, so the next UID and the log's end are
      // known; the directories are not listed. No scan is recorded (`#lastScan` stays undefined), so the
      // next full sync lists them.
      this.uidlist = read.list;
      return;
    }
    if (unchanged && dirMtimes !== undefined) {
      // The index and the uidlist are as they were, only the directories are to be listed (their
      // mtimes changed, or a recent state is due again: Dovecot's delayed refresh). When cur/ holds
      // exactly the names the index expects and new/ nothing, nothing changed: no map of the names,
      // no message looked at one by one (see namesDigest).
      early ??= Promise.all([this.#listDir('cur'), this.#listDir('new')]);
      // Made while libuv lists the directories.
      const expected = this.#expectedDigest();
      const [curNames, newNames] = await early;
      if (expected !== undefined && newNames.length === 0 && curNames.length === expected.n) {
        if (sameDigest(expected, namesDigest(curNames))) {
          this.uidlist = read.list;
          if (refreshed.reset) this.#rebuildView();
          this.#recordScan(dirMtimes, scanStart);
          return;
        }
      }
    }
    let uidlistChanged = false;
    let list: Uidlist;
    let records: UidlistRecord[] | undefined;
    // Index in `records` of each base name, when the uidlist's parse made one (its common form).
    let byBase: ReadonlyMap<string, number> | undefined;
    if (read === undefined) {
      await stat(join(this.path, 'cur')).catch((error: unknown) => {
        if (errno(error) === 'ENOENT') throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${this.name} does not exist`);
        throw error;
      });
      list = { version: 3, uidValidity: await ctx.nextUidValidity(), nextUid: 1, guid: newMailboxGuid(), headerExtensions: [], records: [] };
      records = [];
      this.#extensions = new Map();
      uidlistChanged = true;
    } else {
      list = read.list;
      records = read.records;
      byBase = read.byBase;
      if (list.guid === '') {
        list = { ...list, guid: newMailboxGuid() };
        uidlistChanged = true;
      }
    }
    let rebuilt = false;
    if (!usable || this.index.uidValidity !== list.uidValidity) {
      if (records === undefined) {
        // The records were the index's, which is not usable: the file's, then.
        const again = await this.#readUidlist(true);
        records = again?.records ?? [];
        byBase = again?.byBase;
      }
      await this.#rebuildIndex(list.uidValidity);
      rebuilt = true;
    }

    // Scan cur/ and new/; move new/ files to cur/ as Dovecot does. A rename that
    // fails (another process moved it first) means: scan again.
    // With the uidlist's index by base (`byBase`), the name of each of its records goes straight
    // into `nameAt` (one lookup per name, no map of 100k names) and `found` holds only the names
    // it does not list; without it, `found` holds every name by base.
    let found: Map<string, string>;
    let nameAt: (string | undefined)[] | undefined;
    for (let attempt = 0; ; attempt++) {
      found = new Map();
      nameAt = byBase !== undefined && records !== undefined ? new Array<string | undefined>(records.length) : undefined;
      let raced = false;
      const [curNames, newNames] = attempt === 0 && early !== undefined ? await early : [await this.#listDir('cur'), await this.#listDir('new')];
      if (nameAt !== undefined) {
        for (const name of curNames) {
          const base = baseOfName(name);
          const i = byBase!.get(base);
          if (i === undefined) found.set(base, name);
          else nameAt[i] = name;
        }
      } else for (const name of curNames) found.set(baseOfName(name), name);
      for (const name of newNames) {
        const base = baseOfName(name);
        const i = nameAt !== undefined ? byBase!.get(base) : undefined;
        if (i !== undefined ? nameAt![i] !== undefined : found.has(base)) continue;
        const target = curName(base, parseFilename(name).info);
        try {
          await rename(join(this.path, 'new', name), join(this.path, 'cur', target));
          if (i !== undefined) nameAt![i] = target;
          else found.set(base, target);
        } catch (error) {
          if (errno(error) !== 'ENOENT') throw error;
          raced = true;
        }
      }
      if (!raced || attempt > 5) break;
    }

    // UIDs: keep the uidlist's (or the index's, when the uidlist is the one they came from),
    // drop those whose file is gone, number the new files in time order (as Dovecot sorts them, see compareForUids).
    // One map lookup per message (the name found for its base); the loops below use `names`.
    let uids: number[] = [];
    let bases: string[] = [];
    let names: string[] = [];
    const keep = (uid: number, base: string): void => {
      const name = found.get(base);
      if (name !== undefined) {
        uids.push(uid);
        bases.push(base);
        names.push(name);
      } else uidlistChanged = true;
    };
    if (records !== undefined && nameAt !== undefined) {
      for (let i = 0; i < records.length; i++) {
        const name = nameAt[i];
        if (name !== undefined) {
          uids.push(records[i]!.uid);
          bases.push(records[i]!.base);
          names.push(name);
        } else uidlistChanged = true;
      }
    } else if (records !== undefined) {
      for (const r of records) keep(r.uid, r.base);
    } else {
      let sorted = true;
      for (const m of this.index.messages.values()) {
        if (uids.length > 0 && m.uid < uids[uids.length - 1]!) sorted = false;
        keep(m.uid, m.base);
      }
      if (!sorted) {
        const order = uids.map((_, k) => k).sort((a, b) => uids[a]! - uids[b]!);
        uids = order.map((k) => uids[k]!);
        bases = order.map((k) => bases[k]!);
        names = order.map((k) => names[k]!);
      }
    }
    const keptCount = uids.length;
    let nextUid = list.nextUid;
    // Names no record has: in `found` alone when the records' names went to `nameAt`.
    if (nameAt !== undefined ? found.size > 0 : found.size > keptCount) {
      const known = nameAt !== undefined ? undefined : new Set(bases);
      const fresh = sortForUids([...found.keys()].filter((b) => known === undefined || !known.has(b)));
      for (const base of fresh) {
        uids.push(nextUid++);
        bases.push(base);
        names.push(found.get(base)!);
      }
      if (fresh.length > 0) uidlistChanged = true;
    }
    list = { ...list, nextUid, records: [] };
    if (uidlistChanged) {
      if (this.#extensions === undefined) await this.#readUidlist(true);
      const ext = this.#extensions ?? new Map<number, readonly string[]>();
      const all: UidlistRecord[] = uids.map((uid, k) => ({ uid, extensions: ext.get(uid) ?? NO_EXTENSIONS, base: bases[k]! }));
      await this.#writeUidlist(list, all);
    } else this.uidlist = list;

    // Index: add what is new, note flag changes made by other programs, log expunges.
    // A rebuilt index gets its messages made here, straight from the names, rather than an add
    // record each first (on a cold open of 100k messages, 100k more objects for the GC): the
    // records are made only for watchers to be told of them (see onRecords below).
    const messages = this.index.messages;
    let made = 0;
    const adds: AddRecord[] = [];
    const flagUids: number[] = [];
    const flagInfos: string[] = [];
    let modSeq = this.index.highestModSeq;
    let addModSeq = 0;
    const nextModSeq = (): number => ++modSeq;
    const sizeUnknown: { k: number; at: number }[] = [];
    // Names not `<base>:2,<info>` (sorted info): the only ones a rebuilt index must locate below.
    const odd: number[] = [];
    for (let k = 0; k < uids.length; k++) {
      const uid = uids[k]!;
      const name = names[k]!;
      const info = this.#internInfo(sortInfo(infoOfName(name)));
      // The base is the name's own prefix (the name was found by it): the rest is checked.
      const baseLength = bases[k]!.length;
      if (!(name.length === baseLength + 3 + info.length && name.startsWith(':2,', baseLength) && name.endsWith(info))) odd.push(k);
      // A rebuilt index is empty: no lookup per file.
      const indexed = rebuilt ? undefined : this.index.messages.get(uid);
      if (indexed === undefined || indexed.base !== bases[k]) {
        // Indexed from its name, without reading it when the name has `,W=` (what Dovecot,
        // Pigeonpost and most MDAs write): flags from the name, RFC822.SIZE from `W=`,
        // INTERNALDATE (the mtime) read when asked for, the MIME structure on first use.
        if (addModSeq === 0) addModSeq = nextModSeq();
        const size = virtualSizeOfBase(bases[k]!);
        if (rebuilt) {
          if (size === undefined) sizeUnknown.push({ k: -1, at: k });
          messages.set(uid, new MaildirMessage(uid, addModSeq, this.flagsOf(info), size ?? 0, bases[k]!, info, Number.NaN));
          made++;
        } else {
          if (size === undefined) sizeUnknown.push({ k: adds.length, at: k });
          adds.push({ t: 'A', u: uid, m: addModSeq, i: info, s: size ?? 0, b: bases[k]!, w: ctx.writerId });
        }
      } else if (indexed.info !== info) {
        flagUids.push(uid);
        flagInfos.push(info);
      }
    }
    // A name without `W=`: the file is read to count its size (no MIME parse), several at a time.
    let next = 0;
    const sizer = async (): Promise<void> => {
      while (next < sizeUnknown.length) {
        const d = sizeUnknown[next++]!;
        const size = await this.#sizeOfFile(d.at, names);
        if (d.k >= 0) adds[d.k] = { ...adds[d.k]!, s: size };
        else {
          const m = messages.get(uids[d.at]!)!;
          messages.set(m.uid, new MaildirMessage(m.uid, m.modSeq, m.flags, size, m.base, m.info, Number.NaN));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DESCRIBES_IN_FLIGHT, sizeUnknown.length) }, sizer));
    const out: IndexRecord[] = [];
    if (!rebuilt && adds.length <= LOGGED_ADDS_MAX) out.push(...adds);
    else if (adds.length > 0 || made > 0) {
      // Many at once (a folder indexed from its files): not logged one by one but held by
      // the checkpoint, written after this sync. Losing them (a crash first) only means
      // indexing them from their names again, with MODSEQs above any handed out.
      for (const a of adds) messages.set(a.u, new MaildirMessage(a.u, a.m, this.flagsOf(a.i), a.s, a.b, a.i, Number.NaN));
      this.index.highestModSeq = Math.max(this.index.highestModSeq, addModSeq);
      this.#checkpointDirty = true;
      this.#scheduleCheckpoint();
      // The messages made straight from their names (all of them when rebuilt) as add records, for watchers.
      const writer = ctx.writerId;
      ctx.onRecords(this, made === 0 ? adds : () => uids.map((uid): AddRecord => {
        const m = messages.get(uid)!;
        return { t: 'A', u: uid, m: m.modSeq, i: m.info, s: m.size, b: m.base, w: writer };
      }));
      // The MODSEQ they got is logged, so that it is never handed out again for another state.
      out.push({ t: 'M', m: addModSeq, w: ctx.writerId });
    }
    if (flagUids.length > 0) out.push({ t: 'F', u: flagUids, m: nextModSeq(), i: flagInfos, w: ctx.writerId });
    if (this.index.messages.size > uids.length || uids.length < keptCount) {
      const present = new Set(uids);
      const gone = [...this.index.messages.keys()].filter((uid) => !present.has(uid)).sort((a, b) => a - b);
      if (gone.length > 0) out.push({ t: 'X', u: gone, m: nextModSeq(), w: ctx.writerId });
    }
    await this.#appendIndex(out);
    // Where each file is, for the few whose name is not `<base>:2,<info>`. A rebuilt index made
    // every message from these names (no odd location yet): only the odd names are looked at.
    const locate = (k: number): void => {
      const m = this.index.messages.get(uids[k]!);
      if (m !== undefined) {
        const name = names[k]!;
        if (m.file !== undefined || !isCanonicalName(name, m.base, m.info)) this.#setLocation(m, { dir: 'cur', name });
      }
    };
    if (rebuilt) for (const k of odd) locate(k);
    else for (let k = 0; k < uids.length; k++) locate(k);
    await this.#maybeCompact();
    this.#rebuildView();
    if (dirMtimes !== undefined) this.#recordScan(dirMtimes, scanStart);
  }

  /**
   * A scan of cur/ and new/ with these mtimes, begun at `scanStart`: the next sync may skip
   * listing them while both keep these mtimes (see #scanHolds), trusted when they are old
   * enough that a change could not have kept them (more than the mtime granularity — 2 s on
   * FAT; ext4 and XFS are finer — before the scan began), listed once more otherwise.
   */
  #recordScan(dirMtimes: { cur: number; new: number }, scanStart: number): void {
    this.#lastScan = { ...dirMtimes, trusted: this.#trustable(dirMtimes, scanStart), at: scanStart };
    // A scan the next store could skip: worth a checkpoint when the store closes.
    if (this.#lastScan.trusted) this.#checkpointDirty = true;
    else this.#scheduleRefresh();
  }

  /**
   * A state that is not trusted (see #scanHolds) must be listed once more
   * when it is REFRESH_AFTER_MS old. Dovecot does that at its next sync after
   * MAILDIR_SYNC_SECS; this store does it in the background once it is due (a
   * sync through the folder's queue, like any operation), so the next operation
   * finds the state trusted instead of listing cur/ itself (100k names:
   * ~70–100 ms). It waits for a quiet moment (nothing asked of the folder for
   * REFRESH_IDLE_MS: a FETCH walking the folder is not slowed by it); an
   * operation that comes first does the listing in its own sync instead, as
   * Dovecot's does. One timer per folder, unreferenced, cleared on close, and
   * one per state: a store whose clock says the state is still recent then
   * (a test's clock) skips the listing and schedules nothing more for it.
   */
  #scheduleRefresh(): void {
    const last = this.#lastScan;
    if (last === undefined || last.trusted || this.#closing || this.#refreshTimer !== undefined || this.#refreshFor === last) return;
    this.#refreshFor = last;
    const after = refreshAfterMs(last);
    // By the store's clock, as #scanHolds judges it; at most that long from now.
    const due = Math.min(Math.max(0, last.at + after - this.#ctx.clock.now()), after) + REFRESH_SLACK_MS;
    const fire = (): void => {
      this.#refreshTimer = undefined;
      const now = this.#lastScan;
      if (this.#closing || now === undefined || now.trusted) return;
      const quietFor = Date.now() - this.#lastUse;
      if (quietFor < REFRESH_IDLE_MS) {
        this.#refreshTimer = setTimeout(fire, REFRESH_IDLE_MS - quietFor);
        this.#refreshTimer.unref();
        return;
      }
      this.sync().catch((error: unknown) => {
        if (!this.#closed) this.#ctx.logger.warn({ path: this.path, error: String(error) }, 'background refresh of a Maildir folder failed');
      });
    };
    this.#refreshTimer = setTimeout(fire, due);
    this.#refreshTimer.unref();
  }

  /**
   * Whether a sync at `now` may skip listing cur/ and new/ because `last` (a
   * scan, or this store's own renames) still holds, as Dovecot's maildir sync
   * decides: the directories have its mtimes, and either they were old enough
   * when it was made that no change can hide behind them (trusted), or it was
   * made less than REFRESH_AFTER_MS ago and new/ is not recent. A change by
   * another program within the same mtime tick as the last one seen keeps
   * the mtime, so a state that is not trusted is listed once more when it is
   * that old (Dovecot's delayed refresh: a dirty cur/ is listed again once
   * its check time is MAILDIR_SYNC_SECS in the past), which then makes it
   * trusted. A burst of changes in cur/ (each of this store's STOREs checks
   * it anew) thus lists nothing; the first sync a second after it lists once.
   */
  #scanHolds(last: ScanState, mtimes: { cur: number; new: number }, now: number): boolean {
    if (last.cur !== mtimes.cur || last.new !== mtimes.new) return false;
    if (last.trusted) return true;
    // Not trusted: skipped only while it is recent and new/ is not — a recent new/ is always
    // listed, as Dovecot does, so a message delivered into it within the same mtime tick is
    // seen by the next session rather than after the delayed refresh.
    return now - last.at < refreshAfterMs(mtimes) && mtimes.new < now - trustWindowMs(mtimes);
  }

  /** True when directory mtimes are old enough, at a scan that began at `scanStart`, that no change can hide behind them. */
  #trustable(mtimes: { cur: number; new: number }, scanStart: number): boolean {
    return Math.max(mtimes.cur, mtimes.new) < scanStart - trustWindowMs(mtimes);
  }

  /**
   * What every sync looks at first: cur/ and new/, dovecot-keywords, the index log and
   * dovecot-uidlist (null: missing), stat'ed at once — synchronously with readMode
   * 'sync-batched' (a few microseconds each on a local file system, against a libuv round
   * trip each), else in parallel through libuv. A sync with nothing changed reads no file.
   */
  async #probe(): Promise<SyncProbe> {
    const got = await this.#statAll(['cur', 'new', KEYWORDS, INDEX_LOG, UIDLIST]);
    return { cur: got[0]!, new: got[1]!, keywords: got[2]!, log: got[3]!, uidlist: got[4]! };
  }

  /** `stat` of names in the folder (null: missing): synchronous with readMode 'sync-batched', else in parallel through libuv. */
  async #statAll(names: readonly string[]): Promise<(Stats | null)[]> {
    const paths = names.map((n) => join(this.path, n));
    if (this.#ctx.readMode === 'sync-batched') return paths.map((p) => statSync(p, { throwIfNoEntry: false }) ?? null);
    return Promise.all(
      paths.map((p) =>
        stat(p).catch((error: unknown) => {
          if (errno(error) === 'ENOENT') return null;
          throw error;
        }),
      ),
    );
  }

  /** The digest of the names the index expects in cur/ (undefined when one is expected in new/). */
  #expectedDigest(): NamesDigest | undefined {
    const d: NamesDigest = { a: 0, b: 0, n: 0 };
    for (const m of this.index.messages.values()) {
      const f = m.file;
      if (f === undefined) {
        hashStart();
        hashFeed(m.base);
        hashFeed(INFO_PREFIX);
        hashFeed(m.info);
      } else if (f.startsWith('cur/')) {
        hashStart();
        hashFeed(f.slice(4));
      } else return undefined;
      digestAdd(d);
    }
    return d;
  }

  /** mtimes of cur/ and new/ (undefined when one is missing: the scan reports that). */
  async #dirMtimes(): Promise<{ cur: number; new: number } | undefined> {
    const [cur, fresh] = await this.#statAll(['cur', 'new']);
    return cur && fresh ? { cur: cur.mtimeMs, new: fresh.mtimeMs } : undefined;
  }

  /** RFC822.SIZE of a file whose name has no `W=`: read and counted (no MIME parse). Finds it again when renamed meanwhile. */
  async #sizeOfFile(at: number, names: string[]): Promise<number> {
    const base = baseOfName(names[at]!);
    let current: FileLocation = { dir: 'cur', name: names[at]! };
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.#readWhole(join(this.path, current.dir, current.name), true)).size;
      } catch (error) {
        // Renamed (a flag change by another program) since the scan: find it again.
        if (errno(error) !== 'ENOENT' || attempt > 2) throw error;
        const again = await this.#findByBase(base);
        if (again === undefined) throw error;
        current = again;
        if (again.dir === 'cur') names[at] = again.name;
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

  // -------------------------------------------------------------------------
  // The checkpoint

  /**
   * Write a checkpoint soon, in the background: after the operations queued
   * now (so it sees a state that stands for a whole number of log records),
   * without holding anything up meanwhile but the encoding.
   */
  #scheduleCheckpoint(): void {
    if (this.#checkpointScheduled) return;
    this.#checkpointScheduled = true;
    // A moment later (the encoding takes the main thread for a while at 100k messages): not in
    // the way of the operation that follows the one that asked for it. close() writes it anyway.
    setTimeout(() => {
      // The store closed meanwhile (it wrote one then): nothing may touch the folder any more.
      if (this.#closed) return;
      const run = async (): Promise<void> => {
        // Queued behind an operation (a STORE that was running): its caller's continuation (the
        // IMAP response) first, then the encoding, in a later turn of the event loop.
        await new Promise<void>((resolve) => setImmediate(resolve));
        this.#checkpointScheduled = false;
        if (!this.#closed) await this.#writeCheckpoint();
      };
      this.#queue = this.#queue.then(run, run).catch((error: unknown) => {
        this.#ctx.logger.warn({ path: this.path, error: String(error) }, 'could not write the index checkpoint');
      });
    }, CHECKPOINT_DELAY_MS).unref();
  }

  /**
   * Encode the index as it stands for the log read so far and write it
   * (temp file + rename; not fsynced: a checkpoint lost or torn by a crash
   * fails its checksum or its log check and is ignored).
   */
  #writeCheckpoint(): Promise<void> {
    if (this.index.uidValidity === 0 || this.#indexIno < 0 || this.#indexOffset === 0) return Promise.resolve();
    if (this.#checkpointOffset === this.#indexOffset && !this.#checkpointDirty) return Promise.resolve();
    const read = this.#uidlistRead;
    const buf = encodeCheckpoint(this.index, this.#view, {
      scan: this.#lastScan,
      logIno: this.#indexIno,
      logOffset: this.#indexOffset,
      logTailCrc: crc32(this.#logTail),
      uidlist: read === undefined ? undefined : { ino: read.ino, size: read.size, mtimeMs: read.mtimeMs, appendable: read.appendable?.size ?? -1 },
    });
    this.#checkpointOffset = this.#indexOffset;
    this.#checkpointBytes = buf.length;
    this.#checkpointDirty = false;
    const target = join(this.path, INDEX_CHECKPOINT);
    const tmp = `${target}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    // The write itself does not hold the folder's queue up.
    const write = async (): Promise<void> => {
      try {
        await writeFile(tmp, buf, { mode: 0o600 });
        await rename(tmp, target);
      } catch (error) {
        await unlink(tmp).catch(() => undefined);
        if (errno(error) !== 'ENOENT') throw error;
      }
    };
    const written = this.#checkpointWrite.then(write, write);
    this.#checkpointWrite = written.catch((error: unknown) => {
      this.#ctx.logger.warn({ path: this.path, error: String(error) }, 'could not write the index checkpoint');
    });
    return Promise.resolve();
  }

  /** When the store closes: a checkpoint for what changed since the last one (no lock needed), then wait for the writes. */
  async checkpointOnClose(): Promise<void> {
    // No background refresh is queued from now on (one queued before is awaited below).
    this.#closing = true;
    const run = (): Promise<void> => this.#writeCheckpoint();
    this.#queue = this.#queue.then(run, run).catch(() => undefined);
    await this.#queue;
    this.#closed = true;
    if (this.#refreshTimer !== undefined) clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    await this.#checkpointWrite;
  }

  /** The checkpoint format version this code writes (for tests). */
  static readonly checkpointVersion = CHECKPOINT_VERSION;

  // -------------------------------------------------------------------------
  // Structures

  /**
   * Append the structures computed on first use to the index log, so the next
   * open (here or in another process) need not read those files again. Under
   * the lock (inside `locked()`, or from `#flushStructuresSoon`). Only the
   * messages still present with the same base name get them.
   */
  async #flushStructures(): Promise<void> {
    if (this.#pendingStructures.size === 0) return;
    const records: IndexRecord[] = [];
    const encoded: { data: Buffer; structure: readonly [number, number] }[] = [];
    for (const [uid, p] of this.#pendingStructures) {
      const m = this.index.messages.get(uid);
      if (m !== undefined && m.base === p.base && m.structure === undefined && m.structureOffset < 0) {
        // The record object only carries UID and base to `apply` (the structure is in the bytes).
        records.push({ t: 'S', u: uid, b: p.base, st: undefined as unknown as MessageStructure });
        encoded.push({ data: p.data, structure: p.at });
      }
    }
    this.#pendingStructures.clear();
    await this.#appendIndex(records, encoded);
  }

  /** When the store closes: append the structures still waiting, if the lock can be had at once (otherwise they are dropped: a cache). */
  async flushStructuresOnClose(): Promise<void> {
    if (this.#pendingStructures.size > 0) this.#flushStructuresSoon(0);
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
        sync: this.#ctx.readMode === 'sync-batched',
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
    // What the log does not hold comes along: INTERNALDATEs read, and where the few non-canonical files are.
    const dates = new Map<number, number>();
    const locations = new Map<number, string>();
    for (const m of this.index.messages.values()) {
      if (!Number.isNaN(m.date)) dates.set(m.uid, m.date);
      if (m.file !== undefined) locations.set(m.uid, m.file);
    }
    const records = this.index.snapshot();
    await this.#rewriteIndex(records);
    this.index.reset();
    this.#indexOffset = 0;
    this.#indexIno = -1;
    this.#structureWindow = undefined;
    const read = this.#uidlistRead;
    await this.#refreshIndex();
    this.#uidlistRead = read;
    for (const [uid, date] of dates) {
      const m = this.index.messages.get(uid);
      if (m !== undefined) m.date = date;
    }
    for (const [uid, file] of locations) {
      const m = this.index.messages.get(uid);
      if (m !== undefined) m.file = file;
    }
    this.#checkpointDirty = true;
    this.#scheduleCheckpoint();
  }

  #structureFrom(buf: Buffer, at: readonly [number, number], ascii = false): MessageStructure | undefined {
    if (at[0] + at[1] > buf.length) return undefined;
    try {
      if (ascii) return JSON.parse(buf.toString('latin1', at[0], at[0] + at[1])) as MessageStructure;
      return parseJsonBytes(buf, at[0], at[0] + at[1]) as MessageStructure;
    } catch {
      return undefined;
    }
  }

  /**
   * A structure left in the index log; undefined when the log was replaced
   * meanwhile (then it is recomputed), STALE_STRUCTURE when it is of another
   * STRUCTURE_VERSION.
   */
  async #loadStructure(offset: number, length: number): Promise<MessageStructure | undefined | typeof STALE_STRUCTURE> {
    const w = this.#currentWindow();
    if (w !== undefined && w.ino === this.#indexIno && offset >= w.start && offset + length <= w.start + w.buf.length) {
      return isCurrentStructureAt(w.buf, offset - w.start) ? this.#structureFrom(w.buf, [offset - w.start, length], w.ascii) : STALE_STRUCTURE;
    }
    // Read and used in one synchronous stretch with readMode 'sync-batched': its buffer is the thread's one window buffer.
    const read = this.#ctx.readMode === 'sync-batched' ? this.#readStructureWindowSync(offset, length) : await this.#readStructureWindow(offset, length);
    if (read === undefined) return undefined;
    return isCurrentStructureAt(read.buf, 0) ? this.#structureFrom(read.buf, [0, length], read.ascii) : STALE_STRUCTURE;
  }

  /**
   * Read the index log from `offset` on into the structure window (at least
   * `length` bytes, STRUCTURE_LOG_WINDOW when more: FETCH BODYSTRUCTURE of a
   * range asks for neighbours, which sit next to each other in the log).
   * Undefined when the log is gone or was replaced meanwhile.
   */
  async #readStructureWindow(offset: number, length: number): Promise<StructureWindow | undefined> {
    const fh = await open(join(this.path, INDEX_LOG), 'r').catch((error: unknown) => {
      if (errno(error) === 'ENOENT') return undefined;
      throw error;
    });
    if (fh === undefined) return undefined;
    try {
      const st = await fh.stat();
      if (st.ino !== this.#indexIno) return undefined;
      const buf = Buffer.allocUnsafe(Math.max(0, Math.min(Math.max(length, STRUCTURE_LOG_WINDOW), st.size - offset)));
      const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
      const data = buf.subarray(0, bytesRead);
      const window: StructureWindow = { ino: st.ino, start: offset, buf: data, ascii: isAscii(data), shared: false };
      this.#structureWindow = window;
      return window;
    } finally {
      await fh.close();
    }
  }

  /** The last window read, while its bytes are still there (a shared window is gone once any folder reads another). */
  #currentWindow(): StructureWindow | undefined {
    const w = this.#structureWindow;
    return w === undefined || !w.shared || sharedWindow.owner === w ? w : undefined;
  }

  /**
   * #readStructureWindow with synchronous calls (readMode 'sync-batched'),
   * into the one window buffer of the thread (`sharedWindow`): a fresh
   * megabyte each window costs a page fault per 4 KiB page (~4 ms a window
   * on this project's VMs, as long as reading it), a reused one nothing.
   * The window's bytes are the caller's until any folder reads the next
   * one, so it must use them before it awaits anything (both callers do).
   */
  #readStructureWindowSync(offset: number, length: number): StructureWindow | undefined {
    let fd: number;
    try {
      fd = openSync(join(this.path, INDEX_LOG), 'r');
    } catch (error) {
      if (errno(error) === 'ENOENT') return undefined;
      throw error;
    }
    try {
      const st = fstatSync(fd);
      if (st.ino !== this.#indexIno) return undefined;
      const size = Math.max(0, Math.min(Math.max(length, STRUCTURE_LOG_WINDOW), st.size - offset));
      // The window in the buffer now (this folder's or another's) is gone from here on.
      this.#structureWindow = undefined;
      sharedWindow.owner = undefined;
      if (sharedWindow.buf.length < size) sharedWindow.buf = Buffer.allocUnsafeSlow(Math.max(size, STRUCTURE_LOG_WINDOW));
      const data = sharedWindow.buf.subarray(0, readFullySync(fd, sharedWindow.buf, size, offset));
      const window: StructureWindow = { ino: st.ino, start: offset, buf: data, ascii: isAscii(data), shared: true };
      sharedWindow.owner = window;
      this.#structureWindow = window;
      return window;
    } finally {
      closeSync(fd);
    }
  }

  /** One string per distinct info (a folder has a handful: `S`, `RS`, …), not one slice of a file name per message. */
  #internInfo(info: string): string {
    const known = this.#infos.get(info);
    if (known !== undefined) return known;
    this.#infos.set(info, info);
    return info;
  }

  /** The flags of info letters (a frozen array shared by every message with those letters). */
  flagsOf(info: string): readonly string[] {
    const cached = this.#flagsByInfo.get(info);
    if (cached !== undefined) return cached;
    const { flags, keywordIndexes } = splitInfo(info);
    const out = [...flags];
    for (const idx of keywordIndexes) {
      const name = this.keywords.nameAt(idx);
      if (name !== undefined) out.push(name);
    }
    const frozen = Object.freeze(out);
    this.#flagsByInfo.set(info, frozen);
    return frozen;
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

  #rebuildView(): void {
    const view: MaildirMessage[] = new Array<MaildirMessage>(this.index.messages.size);
    let k = 0;
    let sorted = true;
    for (const m of this.index.messages.values()) {
      if (k > 0 && m.uid < view[k - 1]!.uid) sorted = false;
      view[k++] = m;
    }
    if (!sorted) view.sort((a, b) => a.uid - b.uid);
    this.#view = view;
  }

  /** Position of `uid` in the view, or of the first larger UID. */
  #viewIndex(uid: number): number {
    const view = this.#view;
    let lo = 0;
    let hi = view.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (view[mid]!.uid < uid) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The structure cached in the index (computed now if it is missing). */
  async structure(uid: number): Promise<MessageStructure> {
    this.#lastUse = Date.now();
    const m = this.index.messages.get(uid);
    if (m === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
    if (m.structure !== undefined) return m.structure;
    if (m.structureOffset >= 0) {
      const offset = m.structureOffset;
      const stored = await this.#loadStructure(offset, m.structureLength);
      if (stored === STALE_STRUCTURE) this.#forgetStale(m, offset);
      else if (stored !== undefined) return stored;
      else {
        // The log was replaced meanwhile: compute it, and keep it in memory as before.
        const s = await this.#computeStructure(uid);
        const now = this.index.messages.get(uid);
        if (now !== undefined && now.base === m.base) now.structure = s;
        return s;
      }
    }
    const pending = this.#pendingStructures.get(uid);
    if (pending !== undefined && pending.base === m.base) {
      const s = this.#structureFrom(pending.data, pending.at);
      if (s !== undefined) return s;
    }
    return this.#computeOnFirstUse(uid, m);
  }

  /**
   * IMAP BODYSTRUCTURE (`imapBodyStructure` of the structure): the string
   * cached after the structure in the index log when there is one (no parse,
   * no formatting), formatted from the structure otherwise.
   */
  async bodyStructure(uid: number): Promise<string> {
    this.#lastUse = Date.now();
    const m = this.index.messages.get(uid);
    if (m === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
    if (m.structure === undefined) {
      let cached: string | undefined;
      if (m.structureOffset >= 0) {
        const offset = m.structureOffset;
        const got = await this.#loadBodyStructure(offset, m.structureLength);
        // Of another STRUCTURE_VERSION: computed again below, as on first use (and appended to the log).
        if (got === STALE_STRUCTURE) this.#forgetStale(m, offset);
        else cached = got;
      } else {
        const pending = this.#pendingStructures.get(uid);
        if (pending !== undefined && pending.base === m.base) {
          const got = cachedBodyStructureAt(pending.data, pending.at[0] + pending.at[1]);
          if (got !== READ_MORE) cached = got;
        }
      }
      if (cached !== undefined) return cached;
      if (m.structureOffset < 0 && !this.#pendingStructures.has(uid)) {
        // First use: the parse worker formatted the string into the record it made (no JSON parse
        // of the structure here, no formatting); a structure computed here is formatted.
        const r = await this.#firstUse(uid, m);
        if (r.record !== undefined) {
          const got = cachedBodyStructureAt(r.record.data, r.record.at[0] + r.record.at[1]);
          if (typeof got === 'string') return got;
        }
        return imapBodyStructure(r.structure ?? structureOfRecord(r.record!));
      }
    }
    return imapBodyStructure(await this.structure(uid));
  }

  /**
   * The BODYSTRUCTURE cached after the structure at [offset, offset + length)
   * of the index log, through the same window as structures; STALE_STRUCTURE
   * when that structure is of another STRUCTURE_VERSION (its string too).
   */
  async #loadBodyStructure(offset: number, length: number): Promise<string | undefined | typeof STALE_STRUCTURE> {
    const w = this.#currentWindow();
    if (w !== undefined && w.ino === this.#indexIno && offset >= w.start && offset + length <= w.start + w.buf.length) {
      if (!isCurrentStructureAt(w.buf, offset - w.start)) return STALE_STRUCTURE;
      const got = cachedBodyStructureAt(w.buf, offset - w.start + length);
      if (got !== READ_MORE) return got;
      // Its end is past the window: a new window from this structure on.
      if (offset === w.start) return undefined;
    }
    const window = this.#ctx.readMode === 'sync-batched' ? this.#readStructureWindowSync(offset, length) : await this.#readStructureWindow(offset, length);
    if (window === undefined || length > window.buf.length) return undefined;
    if (!isCurrentStructureAt(window.buf, 0)) return STALE_STRUCTURE;
    const got = cachedBodyStructureAt(window.buf, length);
    return got === READ_MORE ? undefined : got;
  }

  /**
   * Forget the location of a structure of another STRUCTURE_VERSION (if the
   * index still has it), so the message is handled as on first use: computed
   * from its file and the new structure appended to the log, which later
   * readers apply over the old one.
   */
  #forgetStale(m: MaildirMessage, offset: number): void {
    if (this.index.messages.get(m.uid) !== m || m.structureOffset !== offset) return;
    m.structureOffset = -1;
    m.structureLength = 0;
  }

  /** A structure computed once per message even when asked for concurrently; the next files are read ahead by the file worker. */
  #computeOnFirstUse(uid: number, m: MaildirMessage): Promise<MessageStructure> {
    return this.#firstUse(uid, m).then((r) => r.structure ?? structureOfRecord(r.record!));
  }

  /**
   * A structure's first use (the folder was indexed from its files): the
   * parse worker's index record when it made one (the structure's JSON and
   * the BODYSTRUCTURE string inside, nothing parsed here), else the
   * structure computed here. Either way the record is kept for the index
   * log, appended at the next change or in the background. One computation
   * per UID however many ask at once.
   */
  #firstUse(uid: number, m: MaildirMessage): Promise<FirstUse> {
    const running = this.#computing.get(uid);
    if (running !== undefined) return running;
    if (!this.#readAhead.has(uid) || this.#readAhead.size < STRUCTURE_READ_AHEAD / 2) this.#scheduleReads(uid);
    const ahead = this.#readAhead.get(uid);
    const run = (async (): Promise<FirstUse> => {
      let got: ReadAhead | undefined;
      if (ahead !== undefined) {
        this.#readAhead.delete(uid);
        if (ahead.base === m.base) got = await ahead.result;
      }
      if (got?.record !== undefined) return { record: got.record };
      return { structure: got?.data !== undefined ? structureOfBytes(got.data) : await this.#computeStructure(uid) };
    })().then(
      (r) => {
        this.#computing.delete(uid);
        const now = this.index.messages.get(uid);
        if (now !== undefined && now.base === m.base && now.structure === undefined && now.structureOffset < 0) {
          // Encoded by the parse worker (for this UID and base name), or here.
          let e = r.record;
          if (e === undefined) {
            const encoded = encodeRecordAt({ t: 'S', u: uid, b: m.base, st: r.structure!, w: this.#ctx.writerId });
            e = { data: encoded.data, at: encoded.structure! };
          }
          this.#pendingStructures.set(uid, { base: m.base, data: e.data, at: e.at });
          if (this.#pendingStructures.size >= PENDING_STRUCTURES_FLUSH) this.#flushStructuresSoon();
        }
        return r;
      },
      (error: unknown) => {
        this.#computing.delete(uid);
        throw error;
      },
    );
    this.#computing.set(uid, run);
    return run;
  }

  /**
   * Read ahead, through the file worker, the files of the messages from `uid`
   * on that have no structure yet (FETCH 1:* BODYSTRUCTURE walks in order):
   * up to STRUCTURE_READ_AHEAD files in flight, READ_BATCH per batch, small
   * files only (by their `,S=`). Parsing stays here, when each is asked for.
   */
  #scheduleReads(uid: number): void {
    const view = this.#view;
    if (this.#parseHere(view)) return;
    const batch: MaildirMessage[] = [];
    const flush = (): void => {
      if (batch.length === 0) return;
      const messages = batch.splice(0);
      const paths = messages.map((b) => this.#pathOf(b));
      const parsers = this.#ctx.parseWorkers;
      const mimePath = this.#ctx.mimePath;
      let reading: Promise<(ReadAhead | undefined)[]>;
      if (mimePath !== undefined && parsers.length > 0 && !this.#parsersFailed) {
        // Read, parsed and encoded as structure records by a parse worker (round robin): the records come back in one buffer.
        const parser = parsers[this.#nextParser++ % parsers.length]!;
        const uids = messages.map((b) => b.uid);
        const bases = messages.map((b) => b.base);
        const sizes = bases.map((b) => physicalSizeOfBase(b) ?? -1);
        reading = parser.structureRecords(mimePath, paths, uids, bases, this.#ctx.writerId, sizes).then(
          (records) => records.map((r) => (r === undefined ? undefined : { record: r })),
          (error: unknown) => {
            // A worker that cannot run (the parser failed to load): read here from now on.
            this.#parsersFailed = true;
            this.#ctx.logger.warn({ path: this.path, error: String(error) }, 'parse worker failed: structures are parsed on the main thread');
            return messages.map(() => undefined);
          },
        );
      } else {
        reading = this.#ctx.fsWorker.read(paths).then(
          (r) => r.files.map((data) => (data === undefined ? undefined : { data })),
          () => messages.map(() => undefined),
        );
      }
      messages.forEach((b, k) => this.#readAhead.set(b.uid, { base: b.base, result: reading.then((r) => r[k]) }));
    };
    // Where the last read-ahead stopped, when it was for this walk: the messages before it are scheduled or done.
    const cursor = this.#readCursor;
    let k = this.#viewIndex(uid);
    if (cursor.view === view && cursor.uid >= uid && cursor.from <= uid) k = Math.max(k, this.#viewIndex(cursor.uid));
    else cursor.from = uid;
    cursor.view = view;
    for (; k < view.length && this.#readAhead.size + batch.length < STRUCTURE_READ_AHEAD; k++) {
      const v = view[k]!;
      const m = this.index.messages.get(v.uid);
      if (m === undefined || m.structure !== undefined || m.structureOffset >= 0 || this.#readAhead.has(m.uid) || this.#computing.has(m.uid) || this.#pendingStructures.has(m.uid)) continue;
      const physical = physicalSizeOfBase(m.base);
      if (physical === undefined || physical > WHOLE_READ_BYTES) continue;
      batch.push(m);
      if (batch.length >= READ_BATCH) flush();
    }
    cursor.uid = k < view.length ? view[k]!.uid : Number.MAX_SAFE_INTEGER;
    flush();
  }

  /**
   * Whether the structures of this view are computed here, one by one as they are asked for
   * (see PARSE_HERE_BELOW), rather than read ahead and parsed by the workers. Decided once
   * per view: the count of messages without a structure is a loop over the view.
   */
  #parseHere(view: readonly MaildirMessage[]): boolean {
    const known = this.#parseHereFor;
    if (known?.view === view) return known.here;
    let here = false;
    if (this.#ctx.readMode === 'sync-batched') {
      const workers = this.#ctx.mimePath !== undefined && this.#ctx.parseWorkers.length > 0 && !this.#parsersFailed ? this.#ctx.parseWorkers : [this.#ctx.fsWorker];
      for (const w of workers) w.adoptIdle();
      if (!workers.every((w) => w.online)) {
        let missing = 0;
        for (const m of view) if (m.structure === undefined && m.structureOffset < 0 && ++missing >= PARSE_HERE_BELOW) break;
        here = missing < PARSE_HERE_BELOW;
      }
    }
    this.#parseHereFor = { view, here };
    return here;
  }

  /** The structure of a message's file: read whole when small, streamed otherwise. */
  async #computeStructure(uid: number): Promise<MessageStructure> {
    const m = this.index.messages.get(uid);
    if (m !== undefined) {
      try {
        const path = this.#pathOf(m);
        const physical = physicalSizeOfBase(m.base);
        // Parsed here (see #parseHere): a small file read synchronously (from the page cache, as a rule).
        if (physical !== undefined && physical <= WHOLE_READ_BYTES && this.#parseHereFor?.here === true) return structureOfBytes(readFileSync(path));
        // Small (by its `,S=`): one fs.readFile, cheaper than a FileHandle's open, stat, read and close.
        if (physical !== undefined && physical <= WHOLE_READ_BYTES) return structureOfBytes(await readSmallFile(path));
        const whole = await this.#readWhole(path, false);
        if (whole.data !== undefined) return structureOfBytes(whole.data);
      } catch (error) {
        if (errno(error) !== 'ENOENT') throw error;
      }
    }
    // Large, or renamed meanwhile: readFile finds it again (or says it was expunged).
    return computeStructure(this.readFile(uid));
  }

  /**
   * INTERNALDATE of each UID (the file's mtime, as Dovecot's), in the order
   * given: from the index when known, otherwise stat'ed (through the file
   * worker, in batches) and kept for the checkpoint. ERR_STORE_NO_SUCH_MESSAGE
   * when one is not in the folder.
   */
  async internalDates(uids: readonly number[]): Promise<number[]> {
    this.#lastUse = Date.now();
    const out = new Array<number>(uids.length);
    const missing: { k: number; m: MaildirMessage }[] = [];
    uids.forEach((uid, k) => {
      const m = this.index.messages.get(uid);
      if (m === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
      if (Number.isNaN(m.date)) missing.push({ k, m });
      else out[k] = m.date;
    });
    for (let start = 0; start < missing.length; start += STAT_BATCH) {
      const batch = missing.slice(start, start + STAT_BATCH);
      const mtimes = batch.length > 8 ? await this.#ctx.fsWorker.mtimes(batch.map((b) => this.#pathOf(b.m))) : await Promise.all(batch.map((b) => mtimeOf(this.#pathOf(b.m)).catch(() => Number.NaN)));
      for (const [j, b] of batch.entries()) {
        let date = mtimes[j]!;
        if (Number.isNaN(date)) {
          // Renamed by another program since the last sync: find it again.
          const again = await this.#findByBase(b.m.base);
          if (again === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${b.m.uid} has been expunged`);
          date = await mtimeOf(join(this.path, again.dir, again.name));
        }
        date = Math.floor(date);
        out[b.k] = date;
        const now = this.index.messages.get(b.m.uid);
        if (now !== undefined && now.base === b.m.base) now.date = date;
        b.m.date = date;
      }
      this.#checkpointDirty = true;
    }
    return out;
  }

  /**
   * The message's bytes (`range`: from `start` up to, not including, `end`).
   * A small file (by `,S=`, up to `wholeReadBytes`) comes whole, in one
   * exact-size buffer read by the read worker or here (`readMode`) — batched with the other reads
   * asked for at the same moment, and read ahead when messages are read in
   * UID order; a larger one streams in 256 KiB chunks. Finds the file again
   * when another process renamed it; ERR_STORE_NO_SUCH_MESSAGE when it is gone.
   */
  async *readFile(uid: number, range?: { start: number; end: number }): AsyncGenerator<Uint8Array> {
    this.#lastUse = Date.now();
    const m = this.index.messages.get(uid);
    if (m === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
    const physical = physicalSizeOfBase(m.base);
    if (physical !== undefined && physical <= this.#ctx.wholeReadBytes) {
      const data = await this.#smallBody(m, physical);
      if (data !== undefined) {
        const start = Math.min(range?.start ?? 0, data.length);
        const end = Math.min(range?.end ?? data.length, data.length);
        if (end > start) yield start === 0 && end === data.length ? data : data.subarray(start, end);
        return;
      }
      // Not where the index says (renamed or removed by another process), or unreadable: the slow path finds out.
    }
    yield* this.#readOpened(uid, m, range);
  }

  /**
   * readFile without waiting: a small file's whole bytes when they are
   * already in memory — read ahead, or read now by this call in
   * 'sync-batched' mode while this event-loop turn's budget lasts (directly:
   * no read-ahead entry, no promise) — else
   * undefined, and readFile (which finds the read this call started) does
   * the rest: a file being read, a large, renamed, unreadable or expunged
   * one. Schedules the read-ahead as readFile does, so a walk in UID order
   * mixing both stays in order. The bytes are the caller's only until the
   * next readFileNow (of any folder): they may be a view of a buffer that
   * call reuses. Copy them to keep them.
   */
  readFileNow(uid: number): Buffer | undefined {
    const m = this.index.messages.get(uid);
    if (m === undefined) return undefined;
    let entry = this.#bodies.get(uid);
    if (entry !== undefined && entry.base !== m.base) {
      this.#dropBody(uid);
      entry = undefined;
    }
    // Read ahead: the size is known (from the same name) without parsing it again.
    const physical = entry !== undefined ? entry.size : physicalSizeOfBase(m.base);
    if (physical === undefined || physical > this.#ctx.wholeReadBytes) return undefined;
    if (entry === undefined && this.#ctx.readMode === 'sync-batched' && takeSyncRead(physical)) {
      // Not read ahead, and this turn may still read: read it here and now, with no read-ahead
      // entry or promise, into the reused scratch buffer. A failed read (renamed, removed) is
      // left to readFile, which finds out.
      return readSizedSync(this.#pathOf(m), physical, true);
    }
    this.#scheduleBodies(m, physical, entry !== undefined);
    entry = this.#bodies.get(uid);
    // Not read yet, or the read failed (null): left for readFile.
    if (entry?.value === undefined || entry.value === null) return undefined;
    this.#dropBody(uid);
    return entry.value;
  }

  /** A small file's bytes (read ahead, or read now); undefined when that read failed. */
  async #smallBody(m: MaildirMessage, physical: number): Promise<Buffer | undefined> {
    let entry = this.#bodies.get(m.uid);
    if (entry !== undefined && entry.base !== m.base) {
      this.#dropBody(m.uid);
      entry = undefined;
    }
    this.#scheduleBodies(m, physical, entry !== undefined);
    entry = this.#bodies.get(m.uid);
    if (entry === undefined) return undefined;
    this.#dropBody(m.uid);
    return entry.data;
  }

  #dropBody(uid: number): void {
    const entry = this.#bodies.get(uid);
    if (entry === undefined) return;
    this.#bodies.delete(uid);
    this.#bodyBytes -= entry.size;
  }

  /**
   * Ask the read worker for `m`'s file unless it is already on its way, and,
   * when the reads follow the view in UID order (this one was read ahead, or
   * comes right after the last one), for the next small files of the view,
   * up to `readAheadBytes` and BODY_READ_AHEAD_FILES waiting. A read out of
   * order drops what was read ahead for another walk.
   */
  #scheduleBodies(m: MaildirMessage, physical: number, wasAhead: boolean): void {
    const walk = this.#bodyWalk;
    const view = this.#view;
    let k = walk.view === view && walk.last + 1 < view.length && view[walk.last + 1]!.uid === m.uid ? walk.last + 1 : -1;
    const inOrder = k >= 0 || wasAhead;
    if (k < 0) k = this.#viewIndex(m.uid);
    if (!inOrder) {
      for (const uid of [...this.#bodies.keys()]) this.#dropBody(uid);
      walk.next = k + 1;
    }
    if (walk.view !== view) {
      walk.view = view;
      walk.next = k + 1;
    }
    walk.last = k;
    walk.at = Date.now();
    if (!this.#bodies.has(m.uid)) this.#requestBody(m, physical);
    const budget = this.#ctx.readAheadBytes;
    if (!inOrder || budget === 0) return;
    // Topped up when half used, so the worker gets whole batches.
    if (this.#bodies.size > BODY_READ_AHEAD_FILES / 2 || this.#bodyBytes > budget / 2) return;
    if (walk.next <= k) walk.next = k + 1;
    const limit = this.#ctx.wholeReadBytes;
    while (walk.next < view.length && this.#bodies.size < BODY_READ_AHEAD_FILES && this.#bodyBytes < budget) {
      const v = view[walk.next++]!;
      const next = this.index.messages.get(v.uid);
      if (next === undefined || this.#bodies.has(next.uid)) continue;
      const size = parseFilename(next.base).physicalSize;
      if (size === undefined || size > limit) continue;
      this.#requestBody(next, size);
    }
    this.#armBodyIdle();
  }

  /** Add `m`'s file to the batch for the read worker (or for the synchronous reads). */
  #requestBody(m: MaildirMessage, size: number): void {
    let batch = this.#bodyBatch;
    if (batch === undefined) {
      batch = { paths: [], sizes: [], resolves: [] };
      this.#bodyBatch = batch;
      queueMicrotask(() => this.#sendBodies(batch!));
    }
    const k = batch.paths.length;
    batch.paths.push(this.#pathOf(m));
    batch.sizes.push(size);
    const entry: { base: string; size: number; data: Promise<Buffer | undefined>; value?: Buffer | null } = { base: m.base, size, data: Promise.resolve(undefined) };
    // `value` is set the moment the read is done (synchronously in 'sync-batched' mode), for readFileNow.
    entry.data = new Promise<Buffer | undefined>(
      (resolve) =>
        (batch.resolves[k] = (data) => {
          entry.value = data ?? null;
          resolve(data);
        }),
    );
    this.#bodies.set(m.uid, entry);
    this.#bodyBytes += size;
    if (batch.paths.length >= BODY_READ_BATCH) this.#sendBodies(batch);
  }

  #sendBodies(batch: { paths: string[]; sizes: number[]; resolves: ((data: Buffer | undefined) => void)[] }): void {
    if (this.#bodyBatch !== batch) return;
    this.#bodyBatch = undefined;
    if (this.#ctx.readMode === 'sync-batched') {
      batch.paths.forEach((path, k) => syncReads.queue.push({ path, size: batch.sizes[k]!, resolve: batch.resolves[k]! }));
      drainSyncReads();
      return;
    }
    this.#ctx.readWorker.readSized(batch.paths, batch.sizes).then(
      (r) => batch.resolves.forEach((resolve, k) => resolve(r.files[k])),
      // The worker could not run (closed, or failed): each file is read on the slow path.
      () => batch.resolves.forEach((resolve) => resolve(undefined)),
    );
  }

  /** Files read ahead and never asked for are let go after BODY_READ_AHEAD_IDLE_MS. */
  #armBodyIdle(): void {
    if (this.#bodyIdleTimer !== undefined) return;
    const check = (): void => {
      this.#bodyIdleTimer = undefined;
      if (this.#bodies.size === 0) return;
      if (Date.now() - this.#bodyWalk.at >= BODY_READ_AHEAD_IDLE_MS) {
        for (const uid of [...this.#bodies.keys()]) this.#dropBody(uid);
        return;
      }
      this.#bodyIdleTimer = setTimeout(check, BODY_READ_AHEAD_IDLE_MS);
      this.#bodyIdleTimer.unref();
    };
    this.#bodyIdleTimer = setTimeout(check, BODY_READ_AHEAD_IDLE_MS);
    this.#bodyIdleTimer.unref();
  }

  /** The file opened here: read whole into an exact-size buffer when small, else streamed in STREAM_CHUNK_BYTES chunks. */
  async *#readOpened(uid: number, m: MaildirMessage, range: { start: number; end: number } | undefined): AsyncGenerator<Uint8Array> {
    let fh;
    let path = this.#pathOf(m);
    for (let attempt = 0; attempt < 3 && fh === undefined; attempt++) {
      try {
        fh = await open(path, 'r');
      } catch (error) {
        if (errno(error) !== 'ENOENT') throw error;
        const again = await this.#findByBase(m.base);
        if (again === undefined) break;
        const now = this.index.messages.get(uid);
        if (now !== undefined && now.base === m.base) this.#setLocation(now, again);
        path = join(this.path, again.dir, again.name);
      }
    }
    if (fh === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${uid} has been expunged`);
    let streamed = false;
    try {
      const size = (await fh.stat()).size;
      const start = Math.min(range?.start ?? 0, size);
      const end = Math.min(range?.end ?? size, size);
      if (end <= start) return;
      if (end - start <= this.#ctx.wholeReadBytes) {
        const buf = Buffer.allocUnsafe(end - start);
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got > 0) yield got === buf.length ? buf : buf.subarray(0, got);
        return;
      }
      streamed = true;
      const stream = fh.createReadStream({ start, end: end - 1, autoClose: true, highWaterMark: STREAM_CHUNK_BYTES });
      for await (const chunk of stream) yield chunk as Buffer;
    } finally {
      if (!streamed) await fh.close();
    }
  }

  async #findByBase(base: string): Promise<FileLocation | undefined> {
    for (const dir of ['cur', 'new'] as const) {
      for (const name of await this.#listDir(dir)) if (baseOfName(name) === base) return { dir, name };
    }
    return undefined;
  }

  // -------------------------------------------------------------------------
  // Changes (call inside locked())

  /** Register keywords (writing dovecot-keywords when it grows). Returns the flags in canonical spelling. */
  async registerKeywords(flags: readonly string[]): Promise<string[]> {
    const keywords = flags.filter(isKeyword);
    if (this.keywords.add(keywords)) {
      // The table is ahead of the file until it is written: the next sync reads the file whatever happens.
      this.#keywordsRead = undefined;
      await this.#writeKeywords();
      this.#keywordsChanged();
    }
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
  async writeTmp(source: MessageSource, internalDate: number): Promise<PendingTmp> {
    const base = this.#ctx.uniqueNames.next(this.#ctx.clock.now());
    const tmpPath = join(this.path, 'tmp', base);
    const fh = await open(tmpPath, 'wx', 0o600);
    const metered = meterMessageSource(source, this.#ctx.limits);
    // The structure is parsed from the chunks as they are written (the parser copies what it keeps
    // across chunks), not from the file read back: no second open and read per delivery.
    const parser = new MimeParser();
    let structure: MessageStructure;
    try {
      for await (const chunk of metered.chunks) {
        parser.push(chunk);
        await fh.write(chunk);
      }
      structure = parser.end();
      // The mtime (INTERNALDATE) set before the fsync, so it is as durable as the bytes.
      const date = new Date(internalDate);
      await fh.utimes(date, date);
      if (this.#ctx.fsync) await fh.sync();
    } catch (error) {
      await fh.close().catch(() => undefined);
      await unlink(tmpPath).catch(() => undefined);
      throw error;
    }
    await fh.close();
    const { bytes, size } = metered.sizes();
    return { tmpPath, base, bytes, size, structure };
  }

  /**
   * Make a written tmp/ file part of the folder: link it into new/ (no flags)
   * or cur/ (with flags) — link() never replaces an existing name — fsync the
   * directory, give it the next UID in the uidlist (written by temp + rename),
   * then log it in the index. Must run inside locked().
   */
  async commitTmp(tmp: PendingTmp, flags: readonly string[], internalDate: number): Promise<MaildirMessage> {
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
  commitQueued(tmp: PendingTmp, flags: readonly string[], internalDate: number): Promise<MaildirMessage> {
    return new Promise<MaildirMessage>((resolve, reject) => {
      this.#pendingCommits.push({ tmp, flags, internalDate, resolve, reject });
      if (this.#pendingCommits.length === 1) this.#scheduleCommit();
    });
  }

  #scheduleCommit(): void {
    const run = this.locked(
      async () => {
        const batch = this.#pendingCommits.splice(0);
        try {
          const done = await this.#commitBatch(batch);
          batch.forEach((b, k) => b.resolve(done[k]!));
        } catch (error) {
          for (const b of batch) b.reject(error);
        }
      },
      { scan: false },
    );
    run.catch((error: unknown) => {
      // The lock or the sync failed before the batch was taken.
      for (const b of this.#pendingCommits.splice(0)) b.reject(error);
    });
  }

  async #commitBatch(batch: readonly PendingCommit[]): Promise<MaildirMessage[]> {
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
    const added: UidlistRecord[] = files.map((f, k) => ({ uid: first + k, extensions: NO_EXTENSIONS, base: f.base }));
    await this.#appendUidlist({ ...list, nextUid: first + files.length }, added);
    let modSeq = this.index.highestModSeq;
    const records: IndexRecord[] = files.map((f, k) => ({ t: 'A', u: first + k, m: ++modSeq, i: f.info, s: f.tmp.size, d: f.internalDate, b: f.base, st: f.tmp.structure, w: this.#ctx.writerId }));
    await this.#appendIndex(records);
    const out = files.map((f, k) => {
      const m = this.index.messages.get(first + k)!;
      this.#setLocation(m, f);
      return m;
    });
    this.#rebuildView();
    return out;
  }

  async #register(base: string, file: FileLocation, info: string, size: number, internalDate: number, structure: MessageStructure | undefined): Promise<MaildirMessage> {
    const list = this.uidlist!;
    const uid = list.nextUid;
    const added: UidlistRecord = { uid, extensions: NO_EXTENSIONS, base };
    await this.#appendUidlist({ ...list, nextUid: uid + 1 }, [added]);
    const record: IndexRecord = {
      t: 'A',
      u: uid,
      m: this.index.highestModSeq + 1,
      i: info,
      s: size,
      ...(Number.isNaN(internalDate) ? {} : { d: internalDate }),
      b: base,
      ...(structure ? { st: structure } : {}),
      w: this.#ctx.writerId,
    };
    await this.#appendIndex([record]);
    const m = this.index.messages.get(uid)!;
    this.#setLocation(m, file);
    this.#rebuildView();
    return m;
  }

  /**
   * Rename one message's file to `cur/<base>:2,<info>`. When another program
   * renamed it meanwhile (ENOENT), it is found again and, with `retarget`,
   * the change is applied to the flags its name has now. Returns the info
   * letters it got, or undefined when the file is gone.
   */
  async #renameOne(m: MaildirMessage, info: string, retarget?: (current: string) => string): Promise<string | undefined> {
    let loc: FileLocation | undefined = this.locationOf(m);
    let target = curName(m.base, info);
    for (let attempt = 0; ; attempt++) {
      try {
        if (loc.dir !== 'cur' || loc.name !== target) await renameFile(join(this.path, loc.dir, loc.name), join(this.path, 'cur', target));
        return info;
      } catch (error) {
        if (errno(error) !== 'ENOENT' || attempt > 2) throw error;
        this.#renameRaces++;
        loc = await this.#findByBase(m.base);
        if (loc === undefined) return undefined;
        if (retarget !== undefined) {
          info = retarget(sortInfo(infoOfName(loc.name)));
          target = curName(m.base, info);
        }
      }
    }
  }

  /**
   * A STORE, planned and applied on info letters (no flag arrays per
   * message): `flags` normalised, inside locked(). Messages whose MODSEQ is
   * above `unchangedSince` are conflicts; those already in the requested state
   * are left alone (no new MODSEQ).
   */
  async changeFlags(uids: readonly number[], mode: FlagChangeMode, flags: readonly string[], unchangedSince: number | undefined): Promise<{ updated: MaildirMessage[]; conflicts: number[] }> {
    // Keywords get their letters (and the limit is checked) before anything changes.
    const canonical = mode === 'remove' ? this.canonical(flags) : await this.registerKeywords(flags);
    let letters = '';
    for (const f of canonical) {
      const letter = isKeyword(f) ? this.keywords.letterOf(f) : LETTER_OF_FLAG.get(f);
      if (letter !== undefined) letters += letter;
    }
    letters = sortInfo(letters);
    const conflicts: number[] = [];
    // One result per distinct info string (a handful in a folder), shared by the messages that have it.
    const change = mode === 'add' ? infoDelta(letters, '') : mode === 'remove' ? infoDelta('', letters) : (info: string): string => sortInfo(splitInfo(info).other + letters);
    // Planned message by message, in UID order: a big STORE's first files are renamed while the rest is planned.
    const plan = this.#planRenames(uids.length);
    const visit = (m: MaildirMessage): void => {
      if (unchangedSince !== undefined && m.modSeq > unchangedSince) {
        conflicts.push(m.uid);
        return;
      }
      // Those already in the requested state are left alone (no new MODSEQ).
      const info = change(m.info);
      if (info !== m.info) plan.add(m, info);
    };
    let ascending = true;
    for (let k = 1; k < uids.length && ascending; k++) if (uids[k]! <= uids[k - 1]!) ascending = false;
    if (ascending) {
      const messages = this.index.messages;
      await this.#planAll(plan, uids.length, (i) => {
        const m = messages.get(uids[i]!);
        if (m !== undefined) visit(m);
      }, change);
    } else {
      // Once each, in UID order.
      const wanted = new Set(uids);
      const view = this.#view;
      await this.#planAll(plan, view.length, (i) => {
        if (wanted.has(view[i]!.uid)) visit(view[i]!);
      }, change);
    }
    return { updated: await this.#applyInfos(plan, change), conflicts };
  }

  /** Change flags (files renamed atomically). Returns the messages changed. */
  async applyFlags(updates: readonly { uid: number; flags: readonly string[] }[]): Promise<MaildirMessage[]> {
    const all = new Set<string>();
    for (const u of updates) for (const f of u.flags) if (isKeyword(f)) all.add(f);
    await this.registerKeywords([...all]);
    // A UID given twice is renamed once, with its last flags.
    const lastOf = new Map<number, number>();
    updates.forEach((u, k) => lastOf.set(u.uid, k));
    const plan = this.#planRenames(updates.length);
    await this.#planAll(plan, updates.length, (k) => {
      const u = updates[k]!;
      const m = this.index.messages.get(u.uid);
      if (m === undefined || lastOf.get(u.uid) !== k) return;
      plan.add(m, this.infoOf(this.canonical(u.flags), m.info));
    });
    return this.#applyInfos(plan);
  }

  /**
   * Plan a flag change: `visit(i)` for each of `count` items (it adds the
   * renames to `plan`). A plan that renames here first while the file workers
   * boot does not wait for the whole plan: every RENAME_SLICE items, what is
   * planned is renamed here (one event-loop turn each), until the first worker
   * is up and takes over what is left (#applyInfos finishes what is not).
   */
  async #planAll(plan: RenamePlan, count: number, visit: (i: number) => void, retarget?: (current: string) => string): Promise<void> {
    if (!plan.canHandOver) {
      for (let i = 0; i < count; i++) visit(i);
      return;
    }
    // Before this thread's first rename (see #applyInfos).
    plan.before = await this.#scanStillCurrent();
    for (let i = 0; i < count; ) {
      const end = Math.min(count, i + RENAME_SLICE);
      for (; i < end; i++) visit(i);
      if (!plan.canHandOver || i === count) continue;
      if (plan.workersUp() && count - i + plan.messages.length - plan.hereDone >= HAND_OVER_FROM) {
        plan.stream(undefined, plan.hereDone);
        continue;
      }
      await this.#renameHere(plan, plan.messages.length, retarget);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    plan.whilePlanning = plan.hereDone;
  }

  /**
   * Rename the plan's jobs from `plan.hereDone` to `end` here, with synchronous
   * calls (no thread hop per file); one whose file moved is found again
   * through libuv.
   */
  async #renameHere(plan: RenamePlan, end: number, retarget?: (current: string) => string): Promise<void> {
    const { messages, targets, renamed } = plan;
    for (let k = plan.hereDone; k < end; k++) {
      const m = messages[k]!;
      const target = curName(m.base, targets[k]!);
      if (m.file === `cur/${target}` || (m.file === undefined && m.info === targets[k])) {
        renamed[k] = true;
        continue;
      }
      try {
        renameSync(this.#pathOf(m), `${this.path}/cur/${target}`);
        renamed[k] = true;
      } catch (error) {
        if (errno(error) !== 'ENOENT') throw error;
        renamed[k] = await this.#renameJob(plan, k, retarget);
      }
    }
    plan.hereDone = Math.max(plan.hereDone, end);
  }

  /** Rename job `k` through libuv (finding the file again when it moved); the info it got is the job's. */
  async #renameJob(plan: RenamePlan, k: number, retarget?: (current: string) => string): Promise<boolean> {
    const info = await this.#renameOne(plan.messages[k]!, plan.targets[k]!, retarget);
    if (info === undefined) return false;
    plan.targets[k] = info;
    return true;
  }

  /**
   * This thread as the second renamer of a batched plan (readMode
   * 'sync-batched'), once it has planned and prepared the new versions:
   * chunks of RENAME_SLICE jobs claimed from the last batch's end backwards,
   * each renamed with synchronous calls in one event-loop turn, until it
   * meets a chunk the worker claimed (it takes them in order from the start,
   * so all before are its). Two threads renaming overlap Node's side of each
   * call and the path walk with the kernel's serialised part; this one needs
   * no boot, and the worker's renames never wait for its CPU while it plans.
   * A file another program moved (ENOENT) goes to `retry`. Not before the
   * worker has taken the directories' mtimes (`plan.gate`), unless `over()`.
   * Returns how many it renamed.
   */
  async #steal(plan: RenamePlan, retry: number[], over: () => boolean): Promise<number> {
    const { messages, targets, renamed, batches, gate } = plan;
    while (gate !== undefined && Atomics.load(gate, 0) < 1 && !over()) await new Promise<void>((resolve) => setTimeout(resolve, 1));
    let stolen = 0;
    for (let b = batches.length - 1; b >= 0; b--) {
      const { which, claims } = batches[b]!;
      if (claims === undefined) return stolen;
      for (let c = claims.length - 1; c >= 0; c--) {
        if (Atomics.compareExchange(claims, c, 0, CLAIMED_HERE) !== 0) return stolen;
        const end = Math.min(which.length, (c + 1) * RENAME_SLICE);
        for (let i = c * RENAME_SLICE; i < end; i++) {
          const k = which[i]!;
          const m = messages[k]!;
          try {
            renameSync(this.#pathOf(m), `${this.path}/cur/${curName(m.base, targets[k]!)}`);
            renamed[k] = true;
          } catch (error) {
            if (errno(error) !== 'ENOENT') throw error;
            retry.push(k);
          }
          stolen++;
        }
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return stolen;
  }

  /** The workers that rename the files of a flag change of `count` messages. */
  #renamers(count: number): FsWorker[] {
    // With 'sync-batched', this thread is the second (it takes chunks from the end, see #steal).
    if (count < PARALLEL_RENAMES_FROM || this.#ctx.readMode === 'sync-batched') return [this.#ctx.fsWorker];
    // The second: a parse worker (idle but for first-use structures), not the read worker that POP3/IMAP reads wait on.
    return [this.#ctx.fsWorker, this.#ctx.parseWorkers[0] ?? this.#ctx.readWorker];
  }

  /**
   * The renames of a flag change of up to `expected` messages, planned one by
   * one. From WORKER_RENAMES_FROM on they go to the file worker(s) in
   * batches: with the workers running, as they are planned (the first
   * batch's worker first takes the directories' mtimes, see #applyInfos, and
   * a second worker waits for that before its first rename). With them not
   * running yet (they take 50–90 ms to boot), and readMode 'sync-batched',
   * this thread renames from the first file on while they boot, and hands
   * the rest over once the first one is up (#applyInfos). Fewer go through
   * this thread or libuv alone. With 'sync-batched' the batches are claimed
   * by chunks, so that this thread can take the last ones (#steal).
   */
  #planRenames(expected: number): RenamePlan {
    if (expected < WORKER_RENAMES_FROM) return new RenamePlan();
    const renamers = this.#renamers(expected);
    const [first, second] = renamers as [FsWorker, FsWorker | undefined];
    const claimed = this.#ctx.readMode === 'sync-batched';
    for (const worker of renamers) worker.adoptIdle();
    if (!first.online) {
      // A middling STORE is done before a worker would have booted: here or through libuv.
      if (expected < COLD_WORKER_RENAMES_FROM) return new RenamePlan();
      if (claimed) {
        for (const worker of renamers) worker.start();
        // The directories are stat'ed here before this thread's first rename: the workers need not.
        return new RenamePlan(
          (n, batch) => renamers[n % renamers.length]!.renameInfos(this.path, batch),
          () => first.online,
          true,
        );
      }
    }
    const plan = new RenamePlan(undefined, undefined, claimed);
    // The mtimes matter only when there is a last scan they may match (see #applyInfos).
    const stat = this.#lastScan !== undefined;
    if (second === undefined) {
      // This thread, when it takes chunks too, renames nothing before the worker has taken the mtimes.
      const gate = stat && claimed ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
      plan.gate = gate;
      plan.stream((n, batch) => first.renameInfos(this.path, n === 0 ? { ...batch, stat, ...(gate === undefined ? {} : { signal: gate }) } : batch), 0);
      return plan;
    }
    // Two workers, batches in turn: the second renames nothing before the first has taken the mtimes.
    const gate = new Int32Array(new SharedArrayBuffer(4));
    plan.stream((n, batch) => {
      if (n === 0) return first.renameInfos(this.path, { ...batch, stat, signal: gate });
      return renamers[n % 2]!.renameInfos(this.path, n === 1 ? { ...batch, waitFor: { gate, count: 1 } } : batch);
    }, 0);
    return plan;
  }

  /**
   * Rename each planned message's file to `cur/<base>:2,<info>` and log the
   * change as one index record. Many renames go to the file workers in batches
   * (synchronous renames there, the event loop free here); a few go through
   * libuv, several in flight. Returns the messages whose flags changed.
   */
  async #applyInfos(plan: RenamePlan, retarget?: (current: string) => string): Promise<MaildirMessage[]> {
    const { messages, targets, renamed } = plan;
    const count = messages.length;
    // The directories as the last scan left them, just before these renames: then the renames
    // are the only change this folder knows of, and the mtimes they leave are recorded as that
    // scan's (see #ownRenamesDone), so the next sync need not list cur/ again. Taken by the first
    // batch's worker, or here before this thread renames (or libuv does).
    const races = this.#renameRaces;
    const last = this.#lastScan;
    let before = plan.before ?? false;
    let stolen = 0;
    if (!plan.batched && count > 0 && plan.before === undefined) before = await this.#scanStillCurrent();
    if (!plan.batched && (plan.canHandOver || this.#ctx.readMode === 'sync-batched')) {
      // Here, with synchronous calls, RENAME_SLICE per event-loop turn (after those renamed while
      // planning); the rest to the workers once the first one is up, if they were started for it.
      while (plan.hereDone < count) {
        if (plan.canHandOver && plan.workersUp() && count - plan.hereDone >= HAND_OVER_FROM) {
          plan.stream(undefined, plan.hereDone);
          break;
        }
        await this.#renameHere(plan, Math.min(count, plan.hereDone + RENAME_SLICE), retarget);
        if (plan.hereDone < count) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } else if (!plan.batched) {
      let next = 0;
      let failed = false;
      const worker = async (): Promise<void> => {
        while (!failed && next < count) {
          const k = next++;
          try {
            renamed[k] = await this.#renameJob(plan, k, retarget);
          } catch (error) {
            failed = true;
            throw error;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(RENAMES_IN_FLIGHT, count) }, worker));
    }
    let prepared: Prepared | undefined;
    if (plan.batched) {
      plan.finish();
      // While the workers rename: the new versions of the messages (and the view with them), for when the index takes them.
      if (count > 0) prepared = this.#prepareVersions(messages, targets);
      // Each batch's outcome taken as it comes (this thread renames the last chunks meanwhile,
      // see #steal, or is idle); the few files another program renamed meanwhile are found
      // again after all of them.
      const retry: number[] = [];
      let failure: Error | undefined;
      let settled = false;
      const outcomes = Promise.all(
        plan.batches.map((b, n) =>
          b.done.then(
            (r) => {
              if (n === 0 && r.dirs !== undefined && last !== undefined) before = r.dirs.cur === last.cur && r.dirs.new === last.new;
              const failed = new Map<number, string>();
              for (const f of r.failures) failed.set(f.index, f.code);
              const { which, claims } = b;
              for (let i = 0; i < which.length; i++) {
                // A chunk this thread claimed: it said how each of its renames went.
                if (claims !== undefined && claims[(i / RENAME_SLICE) | 0] !== CLAIMED_BY_WORKER) continue;
                const code = failed.size === 0 ? undefined : failed.get(i);
                if (code === undefined) renamed[which[i]!] = true;
                else if (code === 'ENOENT') retry.push(which[i]!);
                else failure ??= Object.assign(new Error(`rename failed: ${code}`), { code });
              }
            },
            // Every batch settles before anything is thrown (none is left running unobserved).
            (error: unknown) => {
              failure ??= error instanceof Error ? error : new Error(String(error));
            },
          ),
        ),
      ).finally(() => {
        settled = true;
      });
      if (plan.claimed) {
        try {
          stolen = await this.#steal(plan, retry, () => settled || failure !== undefined);
        } catch (error) {
          failure ??= error instanceof Error ? error : new Error(String(error));
        }
      }
      await outcomes;
      if (failure !== undefined) throw failure;
      for (const k of retry.sort((a, b) => a - b)) renamed[k] = await this.#renameJob(plan, k, retarget);
    }
    if (count >= WORKER_RENAMES_FROM) {
      // Files renamed on this thread (before the workers took over, if they did, and the chunks it took from the end), for the debug log.
      const here = (plan.batched ? plan.hereDone : count) + stolen;
      this.#ctx.logger.debug({ path: this.path, files: count, here, whilePlanning: plan.whilePlanning, stolen, workers: count - here }, 'flag change: files renamed');
    }
    const allDone = this.#renameRaces === races && renamed.every(Boolean);
    // The directories as these renames left them (see #ownRenamesDone), stat'ed while the index record is written.
    const after = before && allDone ? this.#dirMtimes().catch(() => undefined) : undefined;
    let updated: MaildirMessage[];
    const modSeq = this.index.highestModSeq + 1;
    if (prepared !== undefined && prepared.modSeq === modSeq && allDone) {
      // Every rename done as planned: the record, the versions and the view made meanwhile are the ones.
      for (const m of messages) m.file = undefined;
      updated = prepared.versions;
      if (updated.length > 0) await this.#appendIndex([prepared.record], undefined, prepared.versions);
      if (prepared.view !== undefined && prepared.view.length === this.index.messages.size) this.#view = prepared.view;
      else this.#rebuildView();
    } else {
      const uids: number[] = [];
      const infos: string[] = [];
      const olds: string[] = [];
      const versions: MaildirMessage[] = [];
      for (let k = 0; k < count; k++) {
        if (!renamed[k]) continue;
        const m = messages[k]!;
        const info = targets[k]!;
        // Now `cur/<base>:2,<info>`: the canonical name for its new flags.
        m.file = undefined;
        if (m.info !== info) {
          uids.push(m.uid);
          infos.push(info);
          olds.push(m.info);
          versions.push(m.withFlags(modSeq, info, this.flagsOf(info)));
        }
      }
      if (uids.length > 0) {
        const record = this.#flagsRecord(uids, olds, infos);
        await this.#appendIndex([record], undefined, record.t === 'F' && record.m === modSeq ? versions : undefined);
      }
      updated = uids.map((uid) => this.index.messages.get(uid)!);
      // The view with the new versions (a flag change adds and removes none): a copy, not a rebuild from the index's map.
      if (this.#view.length === this.index.messages.size) {
        let ascending = true;
        for (let k = 1; k < updated.length && ascending; k++) if (updated[k]!.uid <= updated[k - 1]!.uid) ascending = false;
        this.#view = withVersions(this.#view, ascending ? updated : [...updated].sort((a, b) => a.uid - b.uid));
      } else this.#rebuildView();
    }
    if (after !== undefined) this.#ownRenamesDone(await after);
    return updated;
  }

  /**
   * What a STORE logs and installs once every rename is done as planned, made while the
   * workers rename: the flags record (for the MODSEQ the next record gets), the new
   * versions of the messages whose flags change, and (when they are in UID order) the
   * folder's view with them in.
   */
  #prepareVersions(messages: readonly MaildirMessage[], targets: readonly string[]): Prepared {
    const modSeq = this.index.highestModSeq + 1;
    const uids: number[] = [];
    const infos: string[] = [];
    const olds: string[] = [];
    const versions: MaildirMessage[] = [];
    let ascending = true;
    for (let k = 0; k < messages.length; k++) {
      const m = messages[k]!;
      const info = targets[k]!;
      if (m.info === info) continue;
      if (uids.length > 0 && m.uid <= uids[uids.length - 1]!) ascending = false;
      uids.push(m.uid);
      infos.push(info);
      olds.push(m.info);
      versions.push(m.withFlags(modSeq, info, this.flagsOf(info)));
    }
    return { modSeq, versions, view: ascending ? withVersions(this.#view, versions) : undefined, record: this.#flagsRecord(uids, olds, infos) };
  }

  /** True when cur/ and new/ still have the last scan's mtimes (under the lock, after a sync). */
  async #scanStillCurrent(): Promise<boolean> {
    const last = this.#lastScan;
    if (last === undefined) return false;
    const now = await this.#dirMtimes();
    return now !== undefined && now.cur === last.cur && now.new === last.new;
  }

  /**
   * After this store's own renames in cur/ (under the lock, every one done, none racing
   * another program, from a scan that was still current): the directories' new mtimes
   * stand for the index as it is now, as Dovecot takes its own changes into its index
   * header. They are recent, so the state is not trusted (see #scanHolds): the syncs of a
   * burst of changes skip the listing, and the first one after it lists cur/ once, which
   * finds a change another program made in cur/ within the same mtime tick (flags renamed
   * by a client of another server).
   */
  #ownRenamesDone(after: { cur: number; new: number } | undefined): void {
    const last = this.#lastScan;
    if (after === undefined || last === undefined) return;
    const unchanged = after.cur === last.cur && after.new === last.new;
    const now = this.#ctx.clock.now();
    // Unchanged (nothing renamed): the state as it was, checked when it was. Changed: checked now, as
    // Dovecot's sync after its own renames records a check time with the new mtimes in its index header.
    this.#lastScan = unchanged ? last : { cur: after.cur, new: after.new, trusted: this.#trustable(after, now), at: now };
    this.#checkpointDirty = true;
    this.#scheduleRefresh();
  }

  /** One flags record: the delta form when the same letters were added and removed on every message (UID order), explicit otherwise. */
  #flagsRecord(uids: number[], olds: readonly string[], infos: string[]): IndexRecord & { t: 'F' } {
    const m = this.index.highestModSeq + 1;
    const w = this.#ctx.writerId;
    let ascending = true;
    for (let k = 1; k < uids.length && ascending; k++) if (uids[k]! <= uids[k - 1]!) ascending = false;
    if (ascending) {
      const add = new Set<string>();
      const remove = new Set<string>();
      // Once per distinct (old, new) pair of info strings (the same few strings over and over).
      let lastOld = '';
      let lastNew = '';
      olds.forEach((old, k) => {
        const info = infos[k]!;
        if (k > 0 && old === lastOld && info === lastNew) return;
        lastOld = old;
        lastNew = info;
        for (const letter of info) if (!old.includes(letter)) add.add(letter);
        for (const letter of old) if (!info.includes(letter)) remove.add(letter);
      });
      const a = [...add].sort().join('');
      const d = [...remove].sort().join('');
      const delta = infoDelta(a, d);
      if (olds.every((old, k) => delta(old) === infos[k])) return { t: 'F', m, r: uidRanges(uids), a, d, w };
    }
    return { t: 'F', u: uids, m, i: infos, w };
  }

  /** Unlink the files of `uids` and log the expunge. Returns the UIDs removed. */
  async expungeUids(uids: readonly number[]): Promise<number[]> {
    const removed: number[] = [];
    for (const uid of [...uids].sort((a, b) => a - b)) {
      const m = this.index.messages.get(uid);
      if (m === undefined) continue;
      let loc: FileLocation | undefined = this.locationOf(m);
      for (let attempt = 0; loc !== undefined; attempt++) {
        try {
          await unlink(join(this.path, loc.dir, loc.name));
          break;
        } catch (error) {
          if (errno(error) !== 'ENOENT' || attempt > 2) throw error;
          loc = await this.#findByBase(m.base);
        }
      }
      removed.push(uid);
    }
    if (removed.length > 0) {
      if (this.#ctx.fsync) await fsyncPath(join(this.path, 'cur'));
      const gone = new Set(removed);
      await this.#writeUidlist(this.uidlist!, await this.#records([], gone));
      await this.#appendIndex([{ t: 'X', u: removed, m: this.index.highestModSeq + 1, w: this.#ctx.writerId }]);
    }
    this.#rebuildView();
    return removed;
  }

  /**
   * Bring a message of another folder in: a hard link of its file (a copy
   * when the file system refuses links), keeping its base name (so its
   * EMAILID) unless this folder already has it. A hard link shares the
   * file's mtime, so INTERNALDATE comes along; a copy gets it set.
   */
  async importFrom(source: Folder, message: MaildirMessage): Promise<MaildirMessage | undefined> {
    let sourceFile: FileLocation | undefined = source.locationOf(source.message(message.uid) ?? message);
    const flags = await this.registerKeywords(message.flags);
    const info = this.infoOf(flags, message.info);
    let base = message.base;
    if ([...this.index.messages.values()].some((m) => m.base === base)) {
      base = withSizes(this.#ctx.uniqueNames.next(this.#ctx.clock.now()), parseFilename(message.base).physicalSize ?? 0, message.size);
    }
    const name = curName(base, info);
    const target = join(this.path, 'cur', name);
    let date = source.message(message.uid)?.date ?? message.date;
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
          const st = await stat(from);
          await utimes(tmp, st.atime, st.mtime);
          date = Math.floor(st.mtimeMs);
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
    return this.#register(base, { dir: 'cur', name }, info, message.size, date, structure);
  }

}

/** Unseen and deleted messages and the total size of a view. */
export interface ViewCounts {
  readonly unseen: number;
  readonly deleted: number;
  readonly size: number;
}

const countsByView = new WeakMap<readonly MaildirMessage[], ViewCounts>();

/** The counts of a folder's view, made once per view array (never changed in place: a change makes a new one). */
export function viewCounts(view: readonly MaildirMessage[]): ViewCounts {
  let counts = countsByView.get(view);
  if (counts !== undefined) return counts;
  let unseen = 0;
  let deleted = 0;
  let size = 0;
  for (const m of view) {
    // The info letters say it: S is \Seen, T is \Deleted.
    if (!m.info.includes('S')) unseen++;
    if (m.info.includes('T')) deleted++;
    size += m.size;
  }
  counts = { unseen, deleted, size };
  countsByView.set(view, counts);
  return counts;
}

/** A file read ahead for its structure: its bytes, or its structure as JSON (and as the record to log, when the worker encoded it). */
/** A structure's first use: the parse worker's record (the structure's JSON at `at` in it), or a structure computed here. */
interface FirstUse {
  readonly record?: { readonly data: Buffer; readonly at: readonly [number, number] };
  readonly structure?: MessageStructure;
}

/** The structure in a record the parse worker made: its JSON is ASCII-only, so latin1 decodes it exactly. */
function structureOfRecord(record: { readonly data: Buffer; readonly at: readonly [number, number] }): MessageStructure {
  return JSON.parse(record.data.toString('latin1', record.at[0], record.at[0] + record.at[1])) as MessageStructure;
}

interface ReadAhead {
  readonly data?: Buffer;
  readonly record?: { readonly data: Buffer; readonly at: readonly [number, number] };
}

/** One batch of a RenamePlan handed to a file worker: which jobs it holds, and its outcome. */
interface RenameBatch {
  readonly which: readonly number[];
  readonly done: Promise<{ failures: FsFailure[]; dirs?: { cur: number; new: number } }>;
  /** A claimed plan's: per chunk of RENAME_SLICE jobs, who renames it (see #steal). */
  readonly claims?: Int32Array;
}

/** A chunk's claim (RenameJob.claims): the worker's, or this thread's. */
const CLAIMED_BY_WORKER = 1;
const CLAIMED_HERE = 2;

/** Renames in the first batch of a big STORE: small, so the kernel starts renaming at once. */
const FIRST_RENAME_BATCH = 1024;

type PostBatch = (n: number, batch: RenameJob) => RenameBatch['done'];

/**
 * The renames of one flag change, planned message by message (jobs, in
 * order). Once streamed, they are handed to the file workers in batches as
 * they are planned (from a given job on) — the first one small — each as base
 * names and ids into a table of info strings, so the workers make the names.
 */
class RenamePlan {
  /** Per job: the message, and the info letters its file is to get. */
  readonly messages: MaildirMessage[] = [];
  readonly targets: string[] = [];
  /** Per job: its file has its target name (renamed, or had it already). */
  readonly renamed: boolean[] = [];
  readonly batches: RenameBatch[] = [];
  /** Jobs before this one were renamed on the calling thread (a plan that renames here first). */
  hereDone = 0;
  /** Jobs renamed here before the plan was complete (for the debug log). */
  whilePlanning = 0;
  /** A plan renaming here while it is made: whether the last scan was still current before the first rename (see #applyInfos). */
  before: boolean | undefined;
  #post: PostBatch | undefined;
  /** For a hand-over: where the batches go then. */
  readonly #later: PostBatch | undefined;
  readonly #workersUp: (() => boolean) | undefined;
  readonly #infos: string[] = [];
  readonly #infoIds = new Map<string, number>();
  #size = FIRST_RENAME_BATCH;
  #bases: string[] = [];
  #fromInfo = new Uint32Array(FIRST_RENAME_BATCH);
  #toInfo = new Uint32Array(FIRST_RENAME_BATCH);
  #oddAt: number[] = [];
  #oddFrom: string[] = [];
  #which: number[] = [];

  /** The worker signals it here once it has taken the directories' mtimes (see Folder#steal). */
  gate: Int32Array | undefined;

  /**
   * `later`: the file workers are starting, and may take the rest over (see
   * stream()) once `workersUp()`. `claimed`: the batches' chunks are claimed,
   * so that the calling thread can take some (see Folder#steal).
   */
  constructor(
    later?: PostBatch,
    workersUp?: () => boolean,
    readonly claimed = false,
  ) {
    this.#later = later;
    this.#workersUp = workersUp;
  }

  /** The renames (from some job on) go to the file workers. */
  get batched(): boolean {
    return this.#post !== undefined;
  }

  /** The file workers were started for this plan: they may take over what is left. */
  get canHandOver(): boolean {
    return this.#later !== undefined && this.#post === undefined;
  }

  workersUp(): boolean {
    return this.#workersUp?.() ?? false;
  }

  /** Jobs `from` on (and every one added later) go to the workers through `post` (default: the hand-over's). */
  stream(post: PostBatch | undefined, from: number): void {
    this.#post = post ?? this.#later;
    for (let k = from; k < this.messages.length; k++) this.#take(k);
  }

  add(m: MaildirMessage, info: string): void {
    const k = this.messages.length;
    this.messages.push(m);
    this.targets.push(info);
    this.renamed.push(false);
    if (this.#post !== undefined) this.#take(k);
  }

  /** Hand over what is left. */
  finish(): void {
    if (this.#bases.length > 0) this.#send();
  }

  #take(k: number): void {
    const m = this.messages[k]!;
    const info = this.targets[k]!;
    const at = this.#bases.length;
    if (m.file !== undefined) {
      if (m.file === `cur/${curName(m.base, info)}`) {
        this.renamed[k] = true;
        return;
      }
      this.#oddAt.push(at);
      this.#oddFrom.push(m.file);
    } else if (m.info === info) {
      this.renamed[k] = true;
      return;
    }
    this.#bases.push(m.base);
    this.#fromInfo[at] = this.#idOf(m.info);
    this.#toInfo[at] = this.#idOf(info);
    this.#which.push(k);
    if (this.#bases.length === this.#size) this.#send();
  }

  #idOf(info: string): number {
    let id = this.#infoIds.get(info);
    if (id === undefined) {
      id = this.#infos.length;
      this.#infos.push(sortInfo(info));
      this.#infoIds.set(info, id);
    }
    return id;
  }

  #send(): void {
    const n = this.#bases.length;
    const claims = this.claimed ? new Int32Array(new SharedArrayBuffer(4 * Math.ceil(n / RENAME_SLICE))) : undefined;
    const job: RenameJob = { bases: this.#bases, infos: this.#infos.slice(), fromInfo: this.#fromInfo.subarray(0, n), toInfo: this.#toInfo.subarray(0, n), oddAt: this.#oddAt, oddFrom: this.#oddFrom };
    const done = this.#post!(this.batches.length, claims === undefined ? job : { ...job, claims: { cells: claims, size: RENAME_SLICE } });
    this.batches.push({ which: this.#which, done, claims });
    this.#size = RENAME_BATCH;
    this.#bases = [];
    this.#fromInfo = new Uint32Array(RENAME_BATCH);
    this.#toInfo = new Uint32Array(RENAME_BATCH);
    this.#oddAt = [];
    this.#oddFrom = [];
    this.#which = [];
  }
}

/**
 * An order-free digest of a set of file names: per name two 32-bit hashes
 * (FNV-1a, and a second multiply-xorshift one), each summed modulo 2^32, and
 * the count. A sync that must list cur/ compares the listing's digest with
 * the one of the names its index expects: equal, the directory holds what the
 * index says (a change to any name, whose base is unique, moves both sums; the
 * chance that it moves neither is about 2^-64), and the listing needs no map
 * of 100k names nor a look at each message. Different, the full scan runs.
 */
interface NamesDigest {
  a: number;
  b: number;
  n: number;
}

let hash1 = 0;
let hash2 = 0;

function hashStart(): void {
  hash1 = 0x811c9dc5;
  hash2 = 0x9747b28c;
}

function hashFeed(s: string): void {
  let h1 = hash1;
  let h2 = hash2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  hash1 = h1;
  hash2 = h2;
}

function digestAdd(d: NamesDigest): void {
  d.a = (d.a + (hash1 >>> 0)) >>> 0;
  d.b = (d.b + (hash2 >>> 0)) >>> 0;
  d.n++;
}

function namesDigest(names: readonly string[]): NamesDigest {
  const d: NamesDigest = { a: 0, b: 0, n: 0 };
  for (const name of names) {
    hashStart();
    hashFeed(name);
    digestAdd(d);
  }
  return d;
}

function sameDigest(x: NamesDigest, y: NamesDigest): boolean {
  return x.a === y.a && x.b === y.b && x.n === y.n;
}

/** What a sync stat'ed first (see Folder#probe); null: the file is missing. */
interface SyncProbe {
  readonly cur: Stats | null;
  readonly new: Stats | null;
  readonly keywords: Stats | null;
  readonly log: Stats | null;
  readonly uidlist: Stats | null;
}

/** Which version of a file was read: a rewrite (a new inode renamed in) or an append changes it. */
interface FileIdentity {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

function identityOf(st: Stats): FileIdentity {
  return { ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

function sameFile(a: FileIdentity, st: Stats): boolean {
  return a.ino === st.ino && a.size === st.size && a.mtimeMs === st.mtimeMs;
}

/** A STORE's index record and new message versions, made while its files are renamed. */
interface Prepared {
  readonly modSeq: number;
  readonly versions: MaildirMessage[];
  /** The folder's view with the versions in; undefined when they are not in UID order. */
  readonly view: MaildirMessage[] | undefined;
  readonly record: IndexRecord & { t: 'F' };
}

interface SyncRead {
  readonly path: string;
  readonly size: number;
  readonly resolve: (data: Buffer | undefined) => void;
}

/** What loading a structure from the index log gives when it is of another `STRUCTURE_VERSION` than this build's. */
const STALE_STRUCTURE: unique symbol = Symbol('structure of another version');

/**
 * How every structure this build writes to the index log starts: `@pigeonpost/mime`
 * makes `version` its first key, and the log keeps structures as ASCII JSON.
 */
const CURRENT_STRUCTURE_START = Buffer.from(`{"version":${STRUCTURE_VERSION},`, 'latin1');

/** Whether the structure JSON at `at` is of this build's STRUCTURE_VERSION (a byte compare, nothing parsed). */
function isCurrentStructureAt(buf: Buffer, at: number): boolean {
  const end = at + CURRENT_STRUCTURE_START.length;
  return end <= buf.length && buf.compare(CURRENT_STRUCTURE_START, 0, CURRENT_STRUCTURE_START.length, at, end) === 0;
}

/** Bytes of the index log read for structures; `ascii`: all of it is ASCII (checked once, not per structure); `shared`: in `sharedWindow.buf`. */
interface StructureWindow {
  readonly ino: number;
  readonly start: number;
  readonly buf: Buffer;
  readonly ascii: boolean;
  readonly shared: boolean;
}

/**
 * The one buffer structure windows are read into synchronously (readMode
 * 'sync-batched', every folder of the thread: 1 MiB, not one per folder),
 * and the window whose bytes it holds.
 */
const sharedWindow: { buf: Buffer; owner: StructureWindow | undefined } = { buf: Buffer.alloc(0), owner: undefined };

/**
 * Small files waiting to be read on the main thread (readMode
 * 'sync-batched', every folder of the process), and what this event-loop
 * turn has read so far.
 */
const syncReads = { queue: [] as SyncRead[], head: 0, files: 0, bytes: 0, turnArmed: false };

/** Size of the slab small files are read into by readSizedSync (files under an eighth of it). */
const SYNC_SLAB_BYTES = 256 * 1024;
/** The current slab and how much of it is handed out. A slab is dropped once full; its pieces live on. */
const syncSlab = { buf: Buffer.alloc(0), used: 0 };
/** readFileNow's direct reads: one buffer, reused by the next one (its bytes are the caller's only until then). */
let syncScratch = Buffer.alloc(0);

/** Read waiting files here, up to SYNC_READ_FILES / SYNC_READ_BYTES this turn; the next turn (setImmediate) reads on. */
function drainSyncReads(): void {
  const s = syncReads;
  while (s.head < s.queue.length && takeSyncRead(s.queue[s.head]!.size)) {
    const job = s.queue[s.head++]!;
    job.resolve(readSizedSync(job.path, job.size));
  }
  if (s.head === s.queue.length) {
    s.queue.length = 0;
    s.head = 0;
  }
}

/** Count one synchronous read of `size` bytes against this turn's budget; false when it is used up (the next turn resets it). */
function takeSyncRead(size: number): boolean {
  const s = syncReads;
  if (s.files >= SYNC_READ_FILES || s.bytes >= SYNC_READ_BYTES) return false;
  s.files++;
  s.bytes += size;
  if (!s.turnArmed) {
    s.turnArmed = true;
    setImmediate(() => {
      s.turnArmed = false;
      s.files = 0;
      s.bytes = 0;
      drainSyncReads();
    });
  }
  return true;
}

/**
 * A file whose size is known (by `,S=`) read whole into an exact-size
 * buffer; one byte more is asked for to see the end. Undefined when it
 * cannot be read or is longer than `size` (the caller reads it another
 * way); a shorter file is cut.
 */
function readSizedSync(path: string, size: number, scratch = false): Buffer | undefined {
  let fd = -1;
  try {
    fd = openSync(path, 'r');
    if (scratch && syncScratch.length < size + 1) syncScratch = Buffer.allocUnsafeSlow(Math.max(SYNC_SLAB_BYTES, size + 1));
    // Into the shared slab (one allocation for many small files, not one each), else a buffer of its own.
    const inSlab = !scratch && size < SYNC_SLAB_BYTES / 8;
    if (inSlab && syncSlab.buf.length - syncSlab.used < size + 1) {
      syncSlab.buf = Buffer.allocUnsafeSlow(SYNC_SLAB_BYTES);
      syncSlab.used = 0;
    }
    const buf = scratch ? syncScratch : inSlab ? syncSlab.buf : Buffer.allocUnsafe(size + 1);
    const at = inSlab ? syncSlab.used : 0;
    let got = 0;
    while (got < size + 1) {
      const n = readSync(fd, buf, at + got, size + 1 - got, got);
      if (n === 0) break;
      got += n;
      // Exactly the size the name gives, one byte short of what was asked: the end of the
      // file (a regular file reads short only there), without a read to see 0.
      if (got === size) break;
    }
    if (got > size) return undefined;
    // Handed-out bytes are never written again: the slab goes on after them (8-byte aligned).
    if (inSlab) syncSlab.used += (got + 7) & ~7;
    return buf.subarray(at, at + got);
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) {
      try {
        closeSync(fd);
      } catch {
        // Closing a file only read from: nothing to lose.
      }
    }
  }
}
