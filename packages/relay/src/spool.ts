/**
 * The queue on disk. One file per message, like Postfix's queue files: an
 * envelope line (JSON), the message bytes, then records appended as delivery
 * goes on (JSON lines). Why one file: `enqueue()` costs one file fsync and
 * one directory fsync, and a message can never exist without its envelope or
 * the reverse.
 *
 *   <root>/lock            pid of the owning process (O_EXCL)
 *   <root>/tmp/<id>        being written; removed at start-up
 *   <root>/queue/<id>      committed messages
 *   <root>/corrupt/<id>    files that could not be read back (kept for a human)
 *   <root>/control/*.json  requests from `pigeonpost-queue` to the running relay
 */
import { constants, createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { RelayError } from './errors.js';
import type { QueueBody, ReplySummary } from './types.js';

export interface EnvelopeRecord {
  readonly t: 'env';
  readonly v: 1;
  readonly id: string;
  readonly from: string;
  readonly rcpt: readonly { readonly a: string; readonly o?: string; readonly n?: readonly string[] }[];
  readonly dsn?: { readonly ret?: 'FULL' | 'HDRS'; readonly envid?: string };
  readonly arrival: number;
  readonly smtputf8?: boolean;
  readonly bodyType?: '7BIT' | '8BITMIME';
  readonly requireTls?: boolean;
  /** A notification the queue made (bounce, delay warning): never bounced. */
  readonly notification?: boolean;
  readonly size: number;
}

export type SpoolRecord =
  | {
      readonly t: 'res';
      readonly at: number;
      /** Recipient indexes. */
      readonly r: readonly number[];
      readonly s: 'delivered' | 'deferred' | 'bounced';
      readonly reply: ReplySummary;
      readonly mta?: string;
      /** The next hop offered DSN (so NOTIFY went on with the message). */
      readonly dsn?: boolean;
    }
  | { readonly t: 'next'; readonly at: number }
  | { readonly t: 'hold' }
  | { readonly t: 'release' }
  /** Notifications made for these recipients (so a restart does not make them again). */
  | { readonly t: 'note'; readonly k: 'failure' | 'delay' | 'success'; readonly r: readonly number[] };

export interface LoadedMessage {
  readonly envelope: EnvelopeRecord;
  readonly headerLength: number;
  readonly records: readonly SpoolRecord[];
}

export interface SpoolOptions {
  /** fsync files and directories (default true; tests of logic may turn it off). */
  readonly fsync?: boolean;
}

const SIZE_WIDTH = 16;

function headerBytes(envelope: Omit<EnvelopeRecord, 'size'>, size: number): Buffer {
  // The size is written last, space-padded to a fixed width, so the header can
  // be rewritten in place once the body has streamed through.
  const json = JSON.stringify(envelope);
  return Buffer.from(`${json.slice(0, -1)},"size":${String(size).padEnd(SIZE_WIDTH, ' ')}}\n`, 'utf8');
}

async function fsyncDir(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Coalesces directory fsyncs: callers that arrive while one runs share the next one. */
class DirSyncer {
  readonly #path: string;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;

  constructor(path: string) {
    this.#path = path;
  }

  sync(): Promise<void> {
    if (this.#next !== undefined) return this.#next;
    if (this.#running === undefined) {
      this.#running = fsyncDir(this.#path).finally(() => (this.#running = undefined));
      return this.#running;
    }
    const after = this.#running;
    this.#next = after
      .catch(() => undefined)
      .then(() => {
        this.#next = undefined;
        return this.sync();
      });
    return this.#next;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class Spool {
  readonly root: string;
  readonly queueDir: string;
  readonly tmpDir: string;
  readonly controlDir: string;
  readonly corruptDir: string;
  readonly #fsync: boolean;
  readonly #queueSync: DirSyncer;
  #locked = false;

  private constructor(root: string, options: SpoolOptions) {
    this.root = root;
    this.queueDir = join(root, 'queue');
    this.tmpDir = join(root, 'tmp');
    this.controlDir = join(root, 'control');
    this.corruptDir = join(root, 'corrupt');
    this.#fsync = options.fsync ?? true;
    this.#queueSync = new DirSyncer(this.queueDir);
  }

  /** Creates the folders; with `lock`, takes the spool's lock (breaking one left by a dead process). */
  static async open(root: string, options: SpoolOptions & { readonly lock: boolean }): Promise<Spool> {
    const spool = new Spool(root, options);
    for (const dir of [root, spool.queueDir, spool.tmpDir, spool.controlDir, spool.corruptDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
    if (options.lock) await spool.#lock();
    return spool;
  }

  /** The pid holding the lock, when a live process does. */
  static async owner(root: string): Promise<number | undefined> {
    const text = await readFile(join(root, 'lock'), 'utf8').catch(() => undefined);
    const pid = text === undefined ? Number.NaN : Number.parseInt(text, 10);
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
  }

  async #lock(): Promise<void> {
    const path = join(this.root, 'lock');
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await open(path, 'wx', 0o600);
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        this.#locked = true;
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = await Spool.owner(this.root);
      if (owner !== undefined && owner !== process.pid) {
        throw new RelayError('ERR_RELAY_SPOOL_LOCKED', `the spool ${this.root} is in use by process ${owner}`);
      }
      if (owner === process.pid) throw new RelayError('ERR_RELAY_SPOOL_LOCKED', `the spool ${this.root} is already open in this process`);
      await rm(path, { force: true }); // left by a process that died
    }
    throw new RelayError('ERR_RELAY_SPOOL_LOCKED', `could not lock the spool ${this.root}`);
  }

  async unlock(): Promise<void> {
    if (!this.#locked) return;
    this.#locked = false;
    await rm(join(this.root, 'lock'), { force: true });
  }

  /** Removes what a crash left in `tmp/` (messages whose enqueue never resolved). */
  async cleanTmp(): Promise<number> {
    const names = await readdir(this.tmpDir);
    await Promise.all(names.map((n) => rm(join(this.tmpDir, n), { force: true })));
    return names.length;
  }

  async ids(): Promise<string[]> {
    return (await readdir(this.queueDir)).filter((n) => /^[A-Za-z0-9]+$/.test(n)).sort();
  }

  /**
   * Writes a message durably: tmp file (header placeholder, body, header
   * rewritten with the size), fsync, rename into queue/, fsync queue/. Only
   * then does it resolve. `maxBytes` stops a body that is too big.
   */
  async write(envelope: Omit<EnvelopeRecord, 'size'>, body: QueueBody, maxBytes: number): Promise<{ headerLength: number; size: number }> {
    const tmp = join(this.tmpDir, envelope.id);
    const handle = await open(tmp, 'wx', 0o600);
    let size = 0;
    let ok = false;
    try {
      const placeholder = headerBytes(envelope, 0);
      await handle.write(placeholder, 0, placeholder.length, 0);
      let position = placeholder.length;
      const write = async (chunk: Uint8Array): Promise<void> => {
        size += chunk.length;
        if (size > maxBytes) throw new RelayError('ERR_RELAY_MESSAGE_TOO_BIG', `message larger than ${maxBytes} bytes`);
        await handle.write(chunk, 0, chunk.length, position);
        position += chunk.length;
      };
      if (typeof body === 'string') await write(Buffer.from(body, 'utf8'));
      else if (body instanceof Uint8Array) await write(body);
      else if (Symbol.asyncIterator in body) for await (const chunk of body) await write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      else for (const chunk of body) await write(chunk);
      const header = headerBytes(envelope, size);
      if (header.length !== placeholder.length) throw new RelayError('ERR_RELAY_MESSAGE_TOO_BIG', 'message size does not fit the header');
      await handle.write(header, 0, header.length, 0);
      if (this.#fsync) await handle.sync();
      ok = true;
      await handle.close();
      await rename(tmp, join(this.queueDir, envelope.id));
      if (this.#fsync) await this.#queueSync.sync();
      return { headerLength: header.length, size };
    } finally {
      if (!ok) {
        await handle.close().catch(() => undefined);
        await rm(tmp, { force: true });
      }
    }
  }

  /** Appends records to a message's file; with fsync on, resolves once they are on disk. */
  async append(id: string, records: readonly SpoolRecord[]): Promise<void> {
    if (records.length === 0) return;
    const handle = await open(join(this.queueDir, id), 'a');
    try {
      await handle.write(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      if (this.#fsync) await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /** Reads a message's envelope and records back. A torn last record (a crash mid-append) is cut off. */
  async load(id: string, options: { readonly readOnly?: boolean } = {}): Promise<LoadedMessage> {
    const path = join(this.queueDir, id);
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, options.readOnly === true ? 'r' : 'r+');
      const { size: fileSize } = await handle.stat();
      // The envelope line: read until the first LF (envelopes are small, but a 1000-recipient one is ~60 KB).
      let headerText = '';
      let headerLength = -1;
      for (let offset = 0, chunk = 8192; headerLength < 0 && offset < fileSize; offset += chunk, chunk *= 2) {
        const buf = Buffer.alloc(Math.min(chunk, fileSize - offset));
        const { bytesRead } = await handle.read(buf, 0, buf.length, offset);
        const lf = buf.subarray(0, bytesRead).indexOf(0x0a);
        headerText += buf.subarray(0, lf < 0 ? bytesRead : lf).toString('utf8');
        if (lf >= 0) headerLength = offset + lf + 1;
        if (offset > 16 * 1024 * 1024) break;
      }
      if (headerLength < 0) throw new Error('no envelope line');
      const envelope = JSON.parse(headerText) as EnvelopeRecord;
      if (envelope.t !== 'env' || envelope.v !== 1 || envelope.id !== id || !Array.isArray(envelope.rcpt)) throw new Error('not a version 1 envelope');
      const recordsAt = headerLength + envelope.size;
      if (recordsAt > fileSize) throw new Error(`message body shorter than its ${envelope.size} bytes`);
      const tail = Buffer.alloc(fileSize - recordsAt);
      if (tail.length > 0) await handle.read(tail, 0, tail.length, recordsAt);
      const records: SpoolRecord[] = [];
      let good = 0;
      for (let start = 0; start < tail.length; ) {
        const lf = tail.indexOf(0x0a, start);
        if (lf < 0) break; // torn: no LF
        try {
          records.push(JSON.parse(tail.subarray(start, lf).toString('utf8')) as SpoolRecord);
        } catch {
          break; // torn or damaged: everything from here is dropped
        }
        start = lf + 1;
        good = start;
      }
      if (good < tail.length && options.readOnly !== true) await handle.truncate(recordsAt + good);
      return { envelope, headerLength, records };
    } catch (error) {
      await handle?.close();
      handle = undefined;
      if (RelayError.isInstance(error)) throw error;
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new RelayError('ERR_RELAY_NO_SUCH_MESSAGE', `no queued message ${id}`);
      throw new RelayError('ERR_RELAY_SPOOL_CORRUPT', `queue file ${id} is damaged: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    } finally {
      await handle?.close();
    }
  }

  /** Moves a damaged file out of the queue, keeping it for inspection. */
  async quarantine(id: string): Promise<void> {
    await rename(join(this.queueDir, id), join(this.corruptDir, id)).catch(() => undefined);
  }

  /** The message bytes. */
  body(id: string, headerLength: number, size: number): Readable {
    if (size === 0) return Readable.from([]);
    const stream: ReadStream = createReadStream(join(this.queueDir, id), { start: headerLength, end: headerLength + size - 1, highWaterMark: 64 * 1024 });
    return stream;
  }

  async remove(id: string): Promise<void> {
    await unlink(join(this.queueDir, id)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}
