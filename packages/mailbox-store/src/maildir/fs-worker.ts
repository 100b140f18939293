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
 * use, not keeping the process alive, ended by `close()`.
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
let mime;
const probe = new Uint8Array(1);
parentPort.on('message', (job) => {
  if (job.op === 'rename') {
    const errors = [];
    for (let k = 0; k < job.from.length; k++) {
      try { fs.renameSync(job.dir + '/' + job.from[k], job.dir + '/' + job.to[k]); } catch (e) { errors.push(k, e && e.code ? e.code : String(e)); }
    }
    parentPort.postMessage({ id: job.id, errors });
  } else if (job.op === 'structures') {
    // Read and parse (the MIME parser of @pigeonpost/mime, required from the path the store resolved),
    // and send back each structure as ASCII-only JSON (what the index log holds).
    if (mime === undefined) mime = require(job.mime);
    const jsons = [];
    const errors = [];
    for (let k = 0; k < job.paths.length; k++) {
      try {
        const parser = new mime.MimeParser();
        parser.push(fs.readFileSync(job.paths[k]));
        const json = JSON.stringify(parser.end());
        jsons.push(/[^\\u0000-\\u007f]/.test(json) ? json.replace(/[^\\u0000-\\u007f]/g, (c) => '\\\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')) : json);
      } catch (e) {
        jsons.push(null);
        errors.push(k, e && e.code ? e.code : String(e));
      }
    }
    parentPort.postMessage({ id: job.id, jsons, errors });
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

export interface FsFailure {
  readonly index: number;
  readonly code: string;
}

interface Reply {
  jsons?: (string | null)[];
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

export class FsWorker {
  #worker: Worker | undefined;
  #nextId = 0;
  readonly #pending = new Map<number, Pending>();
  #closed = false;

  #start(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(WORKER_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (msg: Reply & { id: number }) => {
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (this.#pending.size === 0) worker.unref();
      p?.resolve(msg);
    });
    const fail = (error: unknown): void => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const p of this.#pending.values()) p.reject(error);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`file worker exited (${code})`)));
    this.#worker = worker;
    return worker;
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

  /** Rename `dir/from[k]` to `dir/to[k]`, in order; the failures by index (with their errno code). */
  async rename(dir: string, from: readonly string[], to: readonly string[]): Promise<FsFailure[]> {
    if (from.length === 0) return [];
    return failures((await this.#run({ op: 'rename', dir, from, to })).errors);
  }

  /**
   * Read and parse files with `@pigeonpost/mime` (loaded in the worker from
   * `mimePath`, its CommonJS entry): each structure as ASCII-only JSON, or
   * undefined for a file that could not be read or parsed.
   */
  async structures(mimePath: string, paths: readonly string[]): Promise<(string | undefined)[]> {
    if (paths.length === 0) return [];
    const r = await this.#run({ op: 'structures', mime: mimePath, paths });
    return r.jsons!.map((j) => j ?? undefined);
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

  async close(): Promise<void> {
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }
}
