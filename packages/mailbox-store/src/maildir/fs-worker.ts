/**
 * Bulk file operations off the main thread: a `worker_threads` worker that
 * renames files (a STORE on every message of a big folder) and reads small
 * files (MIME structures computed on first use; whole messages for read()
 * and POP3 RETR, straight into one buffer when their sizes are known) with
 * synchronous calls, in batches. The event loop stays free for every other session meanwhile, and
 * a batch costs one message each way instead of one libuv request, callback
 * and promise per file.
 *
 * The worker's code is plain JavaScript with Node built-ins only, started
 * from a string, so it runs the same from the built package and from the
 * TypeScript sources under test. Each store has one for renames, stats and
 * structure reads, one for message reads, and its parse workers; each started on first
 * use (or taken from the threads closed stores of this process left idle), not keeping
 * the process alive, and given back by `close()`.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The CommonJS entry of @pigeonpost/mime, for the worker to load the parser from; undefined when it cannot be found. */
export function mimeModulePath(): string | undefined {
  try {
    const from = typeof __filename === 'string' ? __filename : import.meta.url;
    return createRequire(from).resolve('@pigeonpost/mime');
  } catch {
    return undefined;
  }
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const zlib = require('node:zlib');
let mime;
let crcTable;
function crc32(bytes) {
  if (zlib.crc32 !== undefined) return zlib.crc32(bytes) >>> 0;
  if (crcTable === undefined) {
    crcTable = new Int32Array(256);
    for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1; crcTable[n] = c; }
  }
  let crc = -1;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}
/** JSON made ASCII-only (non-ASCII as \\u escapes). */
function ascii(json) {
  // ASCII exactly when its UTF-8 length is its length (one native call, no regular expression over it).
  return Buffer.byteLength(json) !== json.length ? json.replace(/[^\\u0000-\\u007f]/g, (c) => '\\\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) : json;
}
/** A file's MIME structure as ASCII-only JSON, and its IMAP BODYSTRUCTURE as a JSON string: what the index log holds. */
let scratch = Buffer.allocUnsafeSlow(64 * 1024);
/** A file's bytes: with its size known (from ,S=), one open, read and close into a reused buffer (no fstat, no read to see the end); else, or when it is longer, read whole. */
function fileBytes(path, size) {
  if (!(size >= 0)) return fs.readFileSync(path);
  if (scratch.length < size + 1) scratch = Buffer.allocUnsafeSlow(size + 1);
  const fd = fs.openSync(path, 'r');
  let got = 0;
  try {
    while (got < size + 1) {
      const n = fs.readSync(fd, scratch, got, size + 1 - got, got);
      if (n === 0) break;
      got += n;
      // The size the name gives: the end (a regular file reads short only there).
      if (got === size) break;
    }
  } finally {
    fs.closeSync(fd);
  }
  return got > size ? fs.readFileSync(path) : scratch.subarray(0, got);
}
function structureJson(path, size) {
  const parser = new mime.MimeParser();
  // The bytes may be the reused buffer: everything made from them is serialised below, before the next file.
  parser.push(fileBytes(path, size));
  const structure = parser.end();
  // The IMAP BODYSTRUCTURE cached after it (as index-log.ts's bodyStructureJson makes it; none if it cannot be formatted).
  let bs;
  try { bs = ascii(JSON.stringify(mime.imapBodyStructure(structure))); } catch { bs = undefined; }
  return { json: ascii(JSON.stringify(structure)), bs };
}
const probe = new Uint8Array(1);
parentPort.on('message', (job) => {
  if (job.op === 'renameInfos') {
    // cur/<base>:2,<info> to cur/<base>:2,<other info>, the names made here from the base names
    // (one NUL-separated string) and info ids into a table; the few files elsewhere come as paths.
    const bases = job.bases === '' ? [] : job.bases.split('\\0');
    const cur = job.dir + '/cur/';
    const errors = [];
    let odd = 0;
    // The first batch of a STORE: the directories' mtimes just before its first rename.
    let dirs;
    if (job.stat) {
      try { dirs = [fs.statSync(job.dir + '/cur').mtimeMs, fs.statSync(job.dir + '/new').mtimeMs]; } catch {}
    }
    // A gate shared with the other threads of the STORE: counted up here (after the stat), waited on there.
    if (job.signal !== undefined) { Atomics.add(job.signal, 0, 1); Atomics.notify(job.signal, 0); }
    if (job.waitFor !== undefined) {
      const deadline = Date.now() + 10000;
      for (;;) {
        const seen = Atomics.load(job.waitFor.gate, 0);
        if (seen >= job.waitFor.count || Date.now() >= deadline) break;
        Atomics.wait(job.waitFor.gate, 0, seen, Math.max(1, deadline - Date.now()));
      }
    }
    // Claimed chunks: one another thread claimed first (it takes them from the end) is left to it.
    const cells = job.claims === undefined ? undefined : job.claims.cells;
    const size = job.claims === undefined ? 0 : job.claims.size;
    for (let k = 0; k < bases.length; k++) {
      if (cells !== undefined && k % size === 0 && Atomics.compareExchange(cells, k / size, 0, 1) !== 0) {
        const end = Math.min(bases.length, k + size);
        while (odd < job.oddAt.length && job.oddAt[odd] < end) odd++;
        k = end - 1;
        continue;
      }
      const stem = cur + bases[k] + ':2,';
      let from;
      if (odd < job.oddAt.length && job.oddAt[odd] === k) from = job.dir + '/' + job.oddFrom[odd++];
      else from = stem + job.infos[job.fromInfo[k]];
      try { fs.renameSync(from, stem + job.infos[job.toInfo[k]]); } catch (e) { errors.push(k, e && e.code ? e.code : String(e)); }
    }
    parentPort.postMessage({ id: job.id, errors, dirs });
  } else if (job.op === 'structureRecords') {
    // Read, parse and encode each as the index log's structure record, \`<crc> {"t":"S","u":…,"b":…,"w":…,"st":…,"bs1":…}\\n\`
    // (as encodeRecordAt writes it), all in one buffer sent back whole; per file its record's
    // offset and length and its structure JSON's (-1: failed).
    if (mime === undefined) mime = require(job.mime);
    const paths = job.paths.split('\\0');
    const bases = job.bases.split('\\0');
    const texts = [];
    const stAt = [];
    const errors = [];
    let total = 0;
    for (let k = 0; k < paths.length; k++) {
      try {
        const { json, bs } = structureJson(paths[k], job.sizes === undefined ? -1 : job.sizes[k]);
        const head = JSON.stringify({ t: 'S', u: job.uids[k], b: bases[k], w: job.w });
        const text = head.slice(0, -1) + ',"st":' + json + (bs === undefined ? '' : ',"bs1":' + bs) + '}';
        texts.push(text);
        stAt.push(Buffer.byteLength(head) - 1 + 6, json.length);
        total += Buffer.byteLength(text) + 10;
      } catch (e) {
        texts.push(undefined);
        stAt.push(-1, -1);
        errors.push(k, e && e.code ? e.code : String(e));
      }
    }
    const out = Buffer.alloc(total);
    const at = new Float64Array(4 * paths.length);
    let pos = 0;
    for (let k = 0; k < texts.length; k++) {
      if (texts[k] === undefined) { at.fill(-1, 4 * k, 4 * k + 4); continue; }
      const length = out.write(texts[k], pos + 9, 'utf8');
      out[pos + 8] = 0x20;
      out[pos + 9 + length] = 0x0a;
      out.write(crc32(out.subarray(pos + 9, pos + 9 + length)).toString(16).padStart(8, '0'), pos, 'latin1');
      at[4 * k] = pos;
      at[4 * k + 1] = length + 10;
      at[4 * k + 2] = 9 + stAt[2 * k];
      at[4 * k + 3] = stAt[2 * k + 1];
      pos += length + 10;
    }
    const data = new Uint8Array(out.buffer, out.byteOffset, out.length);
    parentPort.postMessage({ id: job.id, data, at, errors }, [out.buffer, at.buffer]);
  } else if (job.op === 'mtime') {
    const out = new Float64Array(job.paths.length);
    for (let k = 0; k < job.paths.length; k++) {
      try { out[k] = fs.statSync(job.paths[k]).mtimeMs; } catch (e) { out[k] = NaN; }
    }
    parentPort.postMessage({ id: job.id, mtimes: out, errors: [] }, [out.buffer]);
  } else if (job.op === 'readSized') {
    // Files whose sizes are known (from ,S=): each read straight into its slot of one buffer,
    // no fstat and no buffer per file. One byte more is asked for to see the end: a file longer
    // than its size fails with ESIZE (the caller reads it another way); a shorter one is cut.
    let total = 0;
    for (const size of job.sizes) total += size;
    const out = new Uint8Array(total);
    const lengths = [];
    const errors = [];
    let at = 0;
    for (let k = 0; k < job.paths.length; k++) {
      const size = job.sizes[k];
      let fd = -1;
      try {
        fd = fs.openSync(job.paths[k], 'r');
        let got = 0;
        while (got < size) {
          const n = fs.readSync(fd, out, at + got, size - got, got);
          if (n === 0) break;
          got += n;
        }
        if (got === size && fs.readSync(fd, probe, 0, 1, size) !== 0) { lengths.push(-1); errors.push(k, 'ESIZE'); }
        else lengths.push(got);
      } catch (e) {
        lengths.push(-1);
        errors.push(k, e && e.code ? e.code : String(e));
      } finally {
        if (fd >= 0) try { fs.closeSync(fd); } catch {}
      }
      at += size;
    }
    parentPort.postMessage({ id: job.id, data: out, lengths, errors }, [out.buffer]);
  } else if (job.op === 'read') {
    const parts = [];
    const lengths = [];
    const errors = [];
    let total = 0;
    for (let k = 0; k < job.paths.length; k++) {
      try {
        const data = fs.readFileSync(job.paths[k]);
        parts.push(data);
        lengths.push(data.length);
        total += data.length;
      } catch (e) {
        lengths.push(-1);
        errors.push(k, e && e.code ? e.code : String(e));
      }
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    parentPort.postMessage({ id: job.id, data: out, lengths, errors }, [out.buffer]);
  }
});
`;

/** One batch of renames for {@link FsWorker.renameInfos}. */
export interface RenameJob {
  readonly bases: readonly string[];
  readonly infos: readonly string[];
  readonly fromInfo: Uint32Array;
  readonly toInfo: Uint32Array;
  readonly oddAt: readonly number[];
  readonly oddFrom: readonly string[];
  /** First take the mtimes of `dir/cur` and `dir/new` (returned as `dirs`; none when either could not be stat'ed). */
  readonly stat?: boolean;
  /** Then add 1 to `signal[0]` (a SharedArrayBuffer's), and wake its waiters. */
  readonly signal?: Int32Array;
  /** Then rename nothing before `gate[0]` is at least `count` (at most 10 s). */
  readonly waitFor?: { readonly gate: Int32Array; readonly count: number };
  /**
   * Renames shared with another thread, by chunks of `size` jobs: chunk `c` is
   * renamed here only when `cells[c]` (a SharedArrayBuffer's) goes from 0 to 1
   * here; one the other thread set first (to anything else) is left to it,
   * and nothing is said of its jobs.
   */
  readonly claims?: { readonly cells: Int32Array; readonly size: number };
}

export interface FsFailure {
  readonly index: number;
  readonly code: string;
}

interface Reply {
  at?: Float64Array;
  dirs?: [number, number];
  data?: Uint8Array;
  lengths?: number[];
  mtimes?: Float64Array;
  errors: (number | string)[];
}

interface Pending {
  resolve(value: Reply): void;
  reject(error: unknown): void;
}

function failures(errors: readonly (number | string)[]): FsFailure[] {
  const out: FsFailure[] = [];
  for (let k = 0; k + 1 < errors.length; k += 2) out.push({ index: errors[k] as number, code: errors[k + 1] as string });
  return out;
}

/** What a thread's events go to: the FsWorker using it, if any. */
interface ThreadOwner {
  message(msg: Reply & { id: number }): void;
  fail(error: unknown): void;
}

/** A worker thread, with its listeners installed once: a pooled thread changes owners. */
interface Thread {
  readonly worker: Worker;
  owner: ThreadOwner | undefined;
  online: boolean;
  dead: boolean;
  /** While idle: when it is ended. */
  timer?: NodeJS.Timeout;
}

function newThread(): Thread {
  const worker = new Worker(WORKER_SOURCE, { eval: true });
  worker.unref();
  const thread: Thread = { worker, owner: undefined, online: false, dead: false };
  worker.on('message', (msg: Reply & { id: number }) => thread.owner?.message(msg));
  worker.once('online', () => {
    thread.online = true;
  });
  const gone = (error: unknown): void => {
    thread.dead = true;
    dropIdle(thread);
    thread.owner?.fail(error);
  };
  worker.on('error', gone);
  worker.on('exit', (code) => gone(new Error(`file worker exited (${code})`)));
  return thread;
}

/**
 * Threads that stores of this process closed with nothing left to do: the
 * next store to start a file worker takes one (booted already: no 50–90 ms
 * wait) instead of starting its own. Each is ended after IDLE_THREAD_MS
 * unused; at most IDLE_THREADS_MAX are kept. Unreferenced, they never keep
 * the process alive.
 */
const idleThreads: Thread[] = [];
const IDLE_THREAD_MS = 10_000;
const IDLE_THREADS_MAX = 8;

function dropIdle(thread: Thread): void {
  const at = idleThreads.indexOf(thread);
  if (at >= 0) idleThreads.splice(at, 1);
  if (thread.timer !== undefined) clearTimeout(thread.timer);
  thread.timer = undefined;
}

function takeIdleThread(): Thread | undefined {
  const thread = idleThreads.pop();
  if (thread !== undefined) dropIdle(thread);
  return thread;
}

async function keepIdleThread(thread: Thread): Promise<void> {
  thread.owner = undefined;
  if (thread.dead) return;
  if (idleThreads.length >= IDLE_THREADS_MAX) {
    await thread.worker.terminate();
    return;
  }
  thread.worker.unref();
  thread.timer = setTimeout(() => {
    dropIdle(thread);
    void thread.worker.terminate();
  }, IDLE_THREAD_MS).unref();
  idleThreads.push(thread);
}

export class FsWorker {
  #thread: Thread | undefined;
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  #closed = false;

  #start(): Worker {
    if (this.#thread !== undefined) return this.#thread.worker;
    const thread = takeIdleThread() ?? newThread();
    const worker = thread.worker;
    thread.owner = {
      message: (msg) => {
        const p = this.#pending.get(msg.id);
        this.#pending.delete(msg.id);
        if (this.#pending.size === 0) worker.unref();
        p?.resolve(msg);
      },
      fail: (error) => {
        if (this.#thread === thread) this.#thread = undefined;
        for (const p of this.#pending.values()) p.reject(error);
        this.#pending.clear();
      },
    };
    this.#thread = thread;
    return worker;
  }

  /** Not started yet: take a thread a closed store left idle, if there is one (booted already). */
  adoptIdle(): void {
    if (this.#thread === undefined && !this.#closed && idleThreads.length > 0) this.#start();
  }

  /** The thread is up and running (booted): a job now starts at once. */
  get online(): boolean {
    return this.#thread?.online === true;
  }

  /**
   * Start the thread now, with nothing to do yet (it takes tens of ms to boot): for a job
   * that is likely to come, so that it does not wait for the boot. Nothing once closed.
   */
  start(): void {
    if (!this.#closed) this.#start();
  }

  #run(job: Record<string, unknown>): Promise<Reply> {
    if (this.#closed) return Promise.reject(new Error('file worker closed'));
    const worker = this.#start();
    const id = this.#nextId++;
    worker.ref();
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ ...job, id });
    });
  }

  /**
   * Rename each `dir/cur/<bases[k]>:2,<infos[fromInfo[k]]>` (or `dir/<oddFrom[j]>` for k =
   * oddAt[j], ascending) to `dir/cur/<bases[k]>:2,<infos[toInfo[k]]>`, in order; the failures by
   * index. The names are made in the worker: a STORE on a big folder sends base names and info ids,
   * not two paths per file.
   * `stat`, `signal` and `waitFor` (in that order, before the first rename) let the threads of
   * one STORE order themselves, and `claims` share its renames: see {@link RenameJob}.
   */
  async renameInfos(dir: string, job: RenameJob): Promise<{ failures: FsFailure[]; dirs?: { cur: number; new: number } }> {
    if (job.bases.length === 0 && job.stat !== true) return { failures: [] };
    const r = await this.#run({ op: 'renameInfos', dir, ...job, bases: job.bases.join('\0') });
    return { failures: failures(r.errors), ...(r.dirs === undefined ? {} : { dirs: { cur: r.dirs[0], new: r.dirs[1] } }) };
  }

  /**
   * Read, parse and encode files as the index log's structure records (`encodeRecordAt` of
   * `{ t: 'S', u: uids[k], b: bases[k], st, w }`): per file its record bytes and where the
   * structure's JSON (ASCII only) is in them; undefined for a file that could not be read or parsed.
   * `sizes[k]` (from `,S=`), when given, lets a file be read with no fstat: a file longer than that is read whole.
   */
  async structureRecords(mimePath: string, paths: readonly string[], uids: readonly number[], bases: readonly string[], writerId: string, sizes?: readonly number[]): Promise<({ data: Buffer; at: readonly [number, number] } | undefined)[]> {
    if (paths.length === 0) return [];
    const r = await this.#run({ op: 'structureRecords', mime: mimePath, paths: paths.join('\0'), uids, bases: bases.join('\0'), w: writerId, sizes });
    const data = Buffer.from(r.data!.buffer, r.data!.byteOffset, r.data!.byteLength);
    const at = r.at!;
    return paths.map((_, k) => {
      const start = at[4 * k]!;
      if (start < 0) return undefined;
      // Not decoded here: a BODYSTRUCTURE is served from the bytes, the structure parsed only when asked for.
      return { data: data.subarray(start, start + at[4 * k + 1]!), at: [at[4 * k + 2]!, at[4 * k + 3]!] as const };
    });
  }

  /** mtimes (ms) of files; NaN for one that could not be stat'ed. */
  async mtimes(paths: readonly string[]): Promise<number[]> {
    if (paths.length === 0) return [];
    return [...(await this.#run({ op: 'mtime', paths })).mtimes!];
  }

  /** Read whole files; `undefined` for a file that could not be read (and its code in `failures`). */
  async read(paths: readonly string[]): Promise<{ files: (Buffer | undefined)[]; failures: FsFailure[] }> {
    const r = await this.#run({ op: 'read', paths });
    const data = r.data!;
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const files: (Buffer | undefined)[] = [];
    let at = 0;
    for (const length of r.lengths!) {
      if (length < 0) files.push(undefined);
      else {
        files.push(buf.subarray(at, at + length));
        at += length;
      }
    }
    return { files, failures: failures(r.errors) };
  }

  /**
   * Read whole files whose sizes are known: `undefined` for one that could
   * not be read or is longer than `sizes[k]` (code `ESIZE`); one shorter is
   * returned as it is.
   */
  async readSized(paths: readonly string[], sizes: readonly number[]): Promise<{ files: (Buffer | undefined)[]; failures: FsFailure[] }> {
    if (paths.length === 0) return { files: [], failures: [] };
    const r = await this.#run({ op: 'readSized', paths, sizes });
    const data = r.data!;
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const files: (Buffer | undefined)[] = [];
    let at = 0;
    r.lengths!.forEach((length, k) => {
      files.push(length < 0 ? undefined : buf.subarray(at, at + length));
      at += sizes[k]!;
    });
    return { files, failures: failures(r.errors) };
  }

  /**
   * No more jobs. A thread with nothing in flight is kept for the next
   * store of this process to take (ended after 10 s unused); one with jobs
   * in flight is ended (they fail).
   */
  async close(): Promise<void> {
    this.#closed = true;
    const thread = this.#thread;
    this.#thread = undefined;
    if (thread === undefined) return;
    if (this.#pending.size === 0 && thread.online) {
      await keepIdleThread(thread);
      return;
    }
    // The jobs in flight fail now: a reply that comes while the thread is ended is not taken.
    const error = new Error('file worker closed');
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    await thread.worker.terminate();
  }
}
