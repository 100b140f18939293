/**
 * The Maildir backend: `createMaildirStore({ root })`, each user's mail in
 * `<root>/<user>/Maildir` in the layout Dovecot reads and writes (see
 * layout.ts, folder.ts and the README's "Maildir backend" section).
 */
import { randomBytes } from 'node:crypto';
import { watch as fsWatch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock, Logger } from '@pigeonpost/wire';
import { silentLogger } from '@pigeonpost/wire';
import { systemClock } from '@pigeonpost/wire/node';
import { StoreError } from '../errors.js';
import { normalizeFlags, isDeleted, withSeen, withVersions } from '../flags.js';
import type { StoreLimits } from '../limits.js';
import { resolveStoreLimits } from '../limits.js';
import { parentNames } from '../names.js';
import { ChangeHub } from '../notifications.js';
import { createPop3Maildrop } from '../pop3.js';
import type { MessageStructure } from '../structure.js';
import type {
  AppendOptions,
  AppendResult,
  ByteRange,
  CopyResult,
  CreateMailboxOptions,
  CreateUserOptions,
  DeliveryRequest,
  FlagChange,
  FlagChangeResult,
  MailboxChanges,
  MailboxHandle,
  MailboxListEntry,
  MailboxStatus,
  MailStore,
  MessageMeta,
  MessageSource,
  OpenMailboxOptions,
  Pop3Maildrop,
  QuotaLimits,
  QuotaUsage,
  SpecialUse,
  StoreWatch,
  UserMailStore,
  WatchOptions,
} from '../types.js';
import { HIERARCHY_DELIMITER } from '../types.js';
import { acquireDotlock, writeThroughDotlock } from './dotlock.js';
import { UniqueNames } from './filename.js';
import { DEFAULT_READ_AHEAD_BYTES, DEFAULT_WHOLE_READ_BYTES, Folder, INDEX_LOG, makeFolderDirs, viewCounts } from './folder.js';
import type { FolderContext, ViewCounts } from './folder.js';
import { FsWorker, mimeModulePath } from './fs-worker.js';
import type { IndexRecord } from './index-log.js';
import { decodeRecords, flagRecordUids } from './index-log.js';
import { assertInside, folderDirName, INBOX, mailboxNameOfDir, maildirMailboxName, maildirUserName, parseSubscriptions, serializeSubscriptions } from './layout.js';

export interface MaildirStoreOptions {
  /** Folder holding one directory per user: `<root>/<user>/Maildir`. */
  readonly root: string;
  /** Default `systemClock` from `@pigeonpost/wire/node`. */
  readonly clock?: Clock;
  readonly limits?: Partial<StoreLimits>;
  readonly logger?: Logger;
  /** fsync files and directories before a change is reported done. Default true; false only for tests. */
  readonly fsync?: boolean;
  /** A dot-lock unchanged this long is overridden. Default 120 000 ms (Dovecot's MAILDIR_UIDLIST_LOCK_STALE_TIMEOUT). */
  readonly lockStaleTimeoutMs?: number;
  /** Longest wait for a dot-lock before ERR_STORE_IN_USE. Default 122 000 ms (Dovecot: stale timeout + 2 s). */
  readonly lockTimeoutMs?: number;
  /** watch(): how often to look for changes by other processes when fs.watch says nothing. Default 1000 ms. */
  readonly pollIntervalMs?: number;
  /**
   * Worker threads that read and parse message files when MIME structures
   * are computed on first use (a folder indexed from its files), so a FETCH
   * BODYSTRUCTURE of many messages uses other cores and leaves the event loop
   * free. Started on first use. Default 2; 0 parses on the main thread.
   */
  readonly parseWorkers?: number;
  /**
   * Message files up to this many bytes (by the `,S=` in their names) are
   * read whole by `read()` and POP3 RETR: one exact-size buffer, read in
   * batches (see `readMode`), instead of a stream. Larger ones stream in
   * 256 KiB chunks (memory bounded whatever their size). Default 256 KiB;
   * 0 streams every file.
   */
  readonly wholeReadBytes?: number;
  /**
   * When messages are read in UID order (POP3 RETR of every message, IMAP
   * FETCH 1:*), the next small files of the folder are read ahead, up to
   * this many bytes per folder (and 128 files) not yet asked for. Default
   * 1 MiB; 0 reads only what is asked for.
   */
  readonly readAheadBytes?: number;
  /**
   * How small message files (up to `wholeReadBytes`) are read: `'worker'`
   * reads them on a worker thread, in batches of up to 64 files;
   * `'sync-batched'` reads them on the calling thread with synchronous
   * calls, at most 64 files or 1 MiB per event-loop turn, then yields
   * (setImmediate) — no thread hop per batch, so it is faster when the
   * CPUs are busy, at the cost of the event loop waiting on the disk for
   * those reads (up to the bound). The files of a flag change too small for
   * the file worker (or made while it boots) are renamed the same way (256
   * per turn), or through libuv with `'worker'`. Default `'sync-batched'`.
   */
  readonly readMode?: MaildirReadMode;
}

/** How a Maildir store reads small message files: on a worker thread, or synchronously in bounded batches. */
export type MaildirReadMode = 'worker' | 'sync-batched';

const USER_FILE = 'pigeonpost-user.json';

function nonNegative(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`option ${name} must be a number >= 0, got ${String(value)}`);
  return Math.floor(value);
}
const SUBSCRIPTIONS = 'subscriptions';
const POP3_LOCK = 'pigeonpost-pop3.lock';
const DEFAULT_MAILBOXES: readonly { name: string; specialUse: SpecialUse }[] = [
  { name: 'Drafts', specialUse: '\\Drafts' },
  { name: 'Sent', specialUse: '\\Sent' },
  { name: 'Trash', specialUse: '\\Trash' },
  { name: 'Junk', specialUse: '\\Junk' },
  { name: 'Archive', specialUse: '\\Archive' },
];

interface UserFile {
  /** Special-use attributes by mailbox id (uidlist GUID), so they follow renames. */
  specialUse: Record<string, SpecialUse[]>;
  quota: QuotaLimits;
  lastUidValidity: number;
}

function errno(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}


/** Create the Maildir store. */
export function createMaildirStore(options: MaildirStoreOptions): MailStore {
  return new MaildirStore(options);
}

class MaildirStore implements MailStore {
  readonly root: string;
  readonly clock: Clock;
  readonly limits: StoreLimits;
  readonly logger: Logger;
  readonly fsync: boolean;
  readonly hub = new ChangeHub();
  readonly writerId = randomBytes(6).toString('hex');
  readonly uniqueNames = new UniqueNames();
  readonly lockStaleTimeoutMs: number;
  readonly lockTimeoutMs: number;
  readonly pollIntervalMs: number;
  /** Bulk renames, reads and stats off the main thread (started on first use). */
  readonly fsWorker = new FsWorker();
  /** Reads of whole small message files (read(), POP3 RETR): its own thread, so they never wait behind a bulk rename. */
  readonly readWorker = new FsWorker();
  readonly wholeReadBytes: number;
  readonly readAheadBytes: number;
  readonly readMode: MaildirReadMode;
  /** Read and parse files for structures computed on first use, off the main thread (both started on first use). */
  readonly parseWorkers: readonly FsWorker[];
  readonly mimePath = mimeModulePath();
  readonly #users = new Map<string, MaildirUser>();
  closed = false;

  constructor(options: MaildirStoreOptions) {
    this.root = options.root;
    this.clock = options.clock ?? systemClock;
    this.limits = resolveStoreLimits(options.limits);
    this.logger = options.logger ?? silentLogger;
    this.fsync = options.fsync ?? true;
    this.lockStaleTimeoutMs = options.lockStaleTimeoutMs ?? 120_000;
    this.lockTimeoutMs = options.lockTimeoutMs ?? 122_000;
    this.pollIntervalMs = options.pollIntervalMs ?? 1000;
    this.wholeReadBytes = nonNegative('wholeReadBytes', options.wholeReadBytes, DEFAULT_WHOLE_READ_BYTES);
    this.readAheadBytes = nonNegative('readAheadBytes', options.readAheadBytes, DEFAULT_READ_AHEAD_BYTES);
    const readMode = options.readMode ?? 'sync-batched';
    if (readMode !== 'worker' && readMode !== 'sync-batched') throw new RangeError(`option readMode must be 'worker' or 'sync-batched', got ${String(readMode)}`);
    this.readMode = readMode;
    this.parseWorkers = Array.from({ length: Math.max(0, Math.floor(options.parseWorkers ?? 2)) }, () => new FsWorker());
  }

  checkOpen(): void {
    if (this.closed) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  }

  userDir(user: string): string {
    return assertInside(this.root, join(this.root, maildirUserName(user)));
  }

  async createUser(user: string, options: CreateUserOptions = {}): Promise<void> {
    this.checkOpen();
    const dir = this.userDir(user);
    await mkdir(this.root, { recursive: true });
    try {
      await mkdir(dir);
    } catch (error) {
      if (errno(error) === 'EEXIST') throw new StoreError('ERR_STORE_USER_EXISTS', `user ${user} exists`);
      throw error;
    }
    const maildir = join(dir, 'Maildir');
    await makeFolderDirs(maildir, false);
    const u = await this.user(user);
    if (options.quota) await u.setQuota(options.quota);
    await u.inbox().sync();
    await u.setSubscribed(INBOX, true);
    for (const m of options.mailboxes ?? DEFAULT_MAILBOXES) await u.create(m.name, { specialUse: [m.specialUse], subscribe: true });
  }

  async deleteUser(user: string): Promise<void> {
    this.checkOpen();
    const dir = this.userDir(user);
    if (!(await this.hasUser(user))) throw new StoreError('ERR_STORE_NO_SUCH_USER', `no user ${user}`);
    await this.#users.get(maildirUserName(user))?.close();
    this.#users.delete(maildirUserName(user));
    const trash = join(this.root, `.deleted-${randomBytes(6).toString('hex')}`);
    await rename(dir, trash);
    await rm(trash, { recursive: true, force: true });
  }

  async hasUser(user: string): Promise<boolean> {
    this.checkOpen();
    try {
      return (await stat(join(this.userDir(user), 'Maildir', 'cur'))).isDirectory();
    } catch (error) {
      if (StoreError.isInstance(error)) return false;
      if (errno(error) === 'ENOENT' || errno(error) === 'ENOTDIR') return false;
      throw error;
    }
  }

  async listUsers(): Promise<readonly string[]> {
    this.checkOpen();
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (error) {
      if (errno(error) === 'ENOENT') return [];
      throw error;
    }
    const out: string[] = [];
    for (const name of names.sort()) {
      try {
        maildirUserName(name);
      } catch {
        continue;
      }
      if (await this.hasUser(name)) out.push(name);
    }
    return out;
  }

  async user(user: string): Promise<MaildirUser> {
    this.checkOpen();
    const name = maildirUserName(user);
    if (!(await this.hasUser(name))) throw new StoreError('ERR_STORE_NO_SUCH_USER', `no user ${user}`);
    let u = this.#users.get(name);
    if (u === undefined) {
      u = new MaildirUser(this, name, join(this.userDir(name), 'Maildir'));
      this.#users.set(name, u);
    }
    return u;
  }

  async deliver(request: DeliveryRequest): Promise<AppendResult> {
    this.checkOpen();
    const u = await this.user(request.user);
    return u.append(request.mailbox ?? INBOX, request.body, {
      ...(request.flags ? { flags: request.flags } : {}),
      ...(request.internalDate !== undefined ? { internalDate: request.internalDate } : {}),
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.#users.values()].map((u) => u.close()));
    this.hub.close();
    // Structures computed on first use and not yet logged: appended now, if the lock is free at once;
    // then a checkpoint of each folder's index that changed since its last one.
    await Promise.all([...this.#users.values()].map((u) => u.flushStructures()));
    await Promise.all([this.fsWorker, this.readWorker, ...this.parseWorkers].map((w) => w.close()));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class MaildirUser implements UserMailStore {
  readonly user: string;
  readonly maildir: string;
  readonly store: MaildirStore;
  readonly ctx: FolderContext;
  readonly #folders = new Map<string, Folder>();
  #poller: Poller | undefined;

  constructor(store: MaildirStore, user: string, maildir: string) {
    this.store = store;
    this.user = user;
    this.maildir = maildir;
    this.ctx = {
      clock: store.clock,
      limits: store.limits,
      logger: store.logger.child({ user }),
      fsync: store.fsync,
      lockStaleTimeoutMs: store.lockStaleTimeoutMs,
      lockTimeoutMs: store.lockTimeoutMs,
      uniqueNames: store.uniqueNames,
      writerId: store.writerId,
      nextUidValidity: () => this.#nextUidValidity(),
      onRecords: (folder, records) => this.#publishRecords(folder, records),
      fsWorker: store.fsWorker,
      readWorker: store.readWorker,
      wholeReadBytes: store.wholeReadBytes,
      readAheadBytes: store.readAheadBytes,
      readMode: store.readMode,
      parseWorkers: store.parseWorkers,
      mimePath: store.mimePath,
    };
  }

  async close(): Promise<void> {
    const poller = this.#poller;
    this.#poller = undefined;
    await poller?.stop();
  }

  async flushStructures(): Promise<void> {
    await Promise.all(
      [...this.#folders.values()].map(async (f) => {
        await f.flushStructuresOnClose();
        await f.checkpointOnClose();
      }),
    );
  }

  // -- files of the user ------------------------------------------------------

  async #userLock<T>(fn: () => Promise<T>): Promise<T> {
    const lock = await acquireDotlock(join(this.maildir, `${USER_FILE}.lock`), {
      clock: this.store.clock,
      staleTimeoutMs: this.store.lockStaleTimeoutMs,
      timeoutMs: this.store.lockTimeoutMs,
    });
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  async readUserFile(): Promise<UserFile> {
    try {
      const parsed = JSON.parse(await readFile(join(this.maildir, USER_FILE), 'utf8')) as Partial<UserFile>;
      return { specialUse: parsed.specialUse ?? {}, quota: parsed.quota ?? {}, lastUidValidity: parsed.lastUidValidity ?? 0 };
    } catch (error) {
      if (errno(error) === 'ENOENT' || error instanceof SyntaxError) return { specialUse: {}, quota: {}, lastUidValidity: 0 };
      throw error;
    }
  }

  async #writeUserFile(data: UserFile): Promise<void> {
    const tmp = join(this.maildir, `${USER_FILE}.tmp`);
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(data));
      if (this.store.fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.maildir, USER_FILE));
  }

  async #updateUserFile(change: (data: UserFile) => void): Promise<UserFile> {
    return this.#userLock(async () => {
      const data = await this.readUserFile();
      change(data);
      await this.#writeUserFile(data);
      return data;
    });
  }

  async #nextUidValidity(): Promise<number> {
    // Dovecot starts from the time in seconds; we also never hand out the same value twice for one user.
    const data = await this.#updateUserFile((d) => {
      d.lastUidValidity = Math.min(0xffffffff, Math.max(Math.floor(this.store.clock.now() / 1000), d.lastUidValidity + 1, 1));
    });
    return data.lastUidValidity;
  }

  async #readSubscriptions(): Promise<string[]> {
    try {
      return parseSubscriptions(await readFile(join(this.maildir, SUBSCRIPTIONS), 'utf8'));
    } catch (error) {
      if (errno(error) === 'ENOENT') return [];
      throw error;
    }
  }

  // -- folders ----------------------------------------------------------------

  name(mailbox: string): string {
    return maildirMailboxName(mailbox, this.store.limits);
  }

  folderPath(name: string): string {
    return assertInside(this.maildir, join(this.maildir, folderDirName(name)));
  }

  folder(name: string): Folder {
    const path = this.folderPath(name);
    let f = this.#folders.get(path);
    if (f === undefined) {
      f = new Folder(path, name, this.ctx);
      this.#folders.set(path, f);
    }
    return f;
  }

  inbox(): Folder {
    return this.folder(INBOX);
  }

  /** Existing folder names on disk (selectable ones). */
  async #folderNames(): Promise<string[]> {
    const out = [INBOX];
    for (const entry of await readdir(this.maildir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const name = mailboxNameOfDir(entry.name, this.store.limits);
      if (name !== undefined && name !== INBOX) out.push(name);
    }
    return out;
  }

  async #exists(name: string): Promise<boolean> {
    if (name === INBOX) return true;
    try {
      return (await stat(join(this.folderPath(name), 'cur'))).isDirectory();
    } catch (error) {
      if (errno(error) === 'ENOENT') return false;
      throw error;
    }
  }

  async #checkUser(): Promise<void> {
    try {
      await stat(join(this.maildir, 'cur'));
    } catch (error) {
      if (errno(error) === 'ENOENT') throw new StoreError('ERR_STORE_NO_SUCH_USER', `no user ${this.user}`);
      throw error;
    }
  }

  async #existing(mailbox: string): Promise<Folder> {
    await this.#checkUser();
    const name = this.name(mailbox);
    if (!(await this.#exists(name))) throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${mailbox} does not exist`);
    return this.folder(name);
  }

  async list(): Promise<readonly MailboxListEntry[]> {
    this.store.checkOpen();
    await this.#checkUser();
    const names = await this.#folderNames();
    const subscribed = new Set(await this.#readSubscriptions());
    const data = await this.readUserFile();
    const all = new Set(names);
    for (const n of names) for (const p of parentNames(n)) all.add(p);
    const out: MailboxListEntry[] = [];
    for (const name of [...all].sort((a, b) => (a === INBOX ? -1 : b === INBOX ? 1 : a < b ? -1 : a > b ? 1 : 0))) {
      const selectable = names.includes(name);
      let id = '';
      if (selectable) {
        const f = this.folder(name);
        if (f.uidlist === undefined) await f.sync();
        id = f.id;
      }
      const prefix = name + HIERARCHY_DELIMITER;
      out.push({
        id,
        name,
        specialUse: (id && data.specialUse[id]) || [],
        subscribed: subscribed.has(name),
        selectable,
        hasChildren: [...all].some((n) => n.startsWith(prefix)),
      });
    }
    return out;
  }

  async create(mailbox: string, options: CreateMailboxOptions = {}): Promise<MailboxListEntry> {
    this.store.checkOpen();
    const name = this.name(mailbox);
    if (await this.#exists(name)) throw new StoreError('ERR_STORE_MAILBOX_EXISTS', `mailbox ${name} exists`);
    const names = await this.#folderNames();
    if (names.length >= this.store.limits.maxMailboxesPerUser) throw new StoreError('ERR_STORE_LIMIT', `at most ${this.store.limits.maxMailboxesPerUser} mailboxes`);
    const path = this.folderPath(name);
    // Built under a temporary name and renamed into place, so nobody sees a half-made folder.
    const tmp = join(this.maildir, `..tmp-${randomBytes(6).toString('hex')}`);
    await makeFolderDirs(tmp, true);
    try {
      await rename(tmp, path);
    } catch (error) {
      await rm(tmp, { recursive: true, force: true });
      if (errno(error) === 'EEXIST' || errno(error) === 'ENOTEMPTY') throw new StoreError('ERR_STORE_MAILBOX_EXISTS', `mailbox ${name} exists`);
      throw error;
    }
    this.#folders.delete(path);
    const f = this.folder(name);
    await f.sync();
    if (options.specialUse && options.specialUse.length > 0) {
      const uses = [...options.specialUse];
      await this.#updateUserFile((d) => {
        d.specialUse[f.id] = uses;
      });
    }
    if (options.subscribe === true) await this.setSubscribed(name, true);
    this.store.hub.publish(this.user, { type: 'mailbox-created', mailboxId: f.id, mailbox: name });
    const entry = (await this.list()).find((e) => e.name === name);
    return entry!;
  }

  async delete(mailbox: string): Promise<void> {
    this.store.checkOpen();
    const name = this.name(mailbox);
    if (name === INBOX) throw new StoreError('ERR_STORE_CANNOT_DELETE', 'INBOX cannot be deleted');
    const f = await this.#existing(name);
    if (f.uidlist === undefined) await f.sync().catch(() => undefined);
    const id = f.id;
    const trash = join(this.maildir, `..deleted-${randomBytes(6).toString('hex')}`);
    try {
      await rename(f.path, trash);
    } catch (error) {
      if (errno(error) === 'ENOENT') throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${mailbox} does not exist`);
      throw error;
    }
    this.#folders.delete(f.path);
    await rm(trash, { recursive: true, force: true });
    if (id) await this.#updateUserFile((d) => void delete d.specialUse[id]);
    this.store.hub.publish(this.user, { type: 'mailbox-deleted', mailboxId: id, mailbox: name });
  }

  async rename(from: string, to: string): Promise<void> {
    this.store.checkOpen();
    const src = this.name(from);
    const dst = this.name(to);
    const f = await this.#existing(src);
    if (await this.#exists(dst)) throw new StoreError('ERR_STORE_MAILBOX_EXISTS', `mailbox ${dst} exists`);
    if (dst === INBOX || dst.startsWith(src + HIERARCHY_DELIMITER)) throw new StoreError('ERR_STORE_INVALID_NAME', `cannot rename ${src} to ${dst}`);
    if (src === INBOX) {
      // RFC 9051 §6.3.5: the messages move to a new mailbox, INBOX stays (empty).
      await this.create(dst);
      const target = this.folder(dst);
      await f.locked(async () => {
        const all = f.messages();
        await target.locked(async () => {
          for (const m of all) await target.importFrom(f, m);
        });
        await f.expungeUids(all.map((m) => m.uid));
      });
      return;
    }
    const subscribed = await this.#readSubscriptions();
    const prefix = src + HIERARCHY_DELIMITER;
    const moves = (await this.#folderNames()).filter((n) => n === src || n.startsWith(prefix));
    for (const n of moves.sort((a, b) => a.length - b.length)) {
      const newName = dst + n.slice(src.length);
      const oldPath = this.folderPath(n);
      await rename(oldPath, this.folderPath(newName));
      const folder = this.#folders.get(oldPath);
      this.#folders.delete(oldPath);
      if (folder) {
        folder.name = newName;
      }
      const moved = this.folder(newName);
      if (moved.uidlist === undefined) await moved.sync();
      this.store.hub.publish(this.user, { type: 'mailbox-renamed', mailboxId: moved.id, mailbox: newName, oldName: n });
    }
    // Subscriptions follow the rename (as Dovecot does).
    const renamed = subscribed.map((s) => (s === src || s.startsWith(prefix) ? dst + s.slice(src.length) : s));
    if (renamed.some((s, i) => s !== subscribed[i])) await this.#writeSubscriptions(renamed);
  }

  async #writeSubscriptions(names: readonly string[]): Promise<void> {
    await writeThroughDotlock(
      join(this.maildir, SUBSCRIPTIONS),
      serializeSubscriptions(names),
      { clock: this.store.clock, staleTimeoutMs: this.store.lockStaleTimeoutMs, timeoutMs: this.store.lockTimeoutMs },
      this.store.fsync,
    );
  }

  async setSubscribed(mailbox: string, subscribed: boolean): Promise<void> {
    this.store.checkOpen();
    const name = this.name(mailbox);
    if (subscribed && !(await this.#exists(name))) throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${mailbox} does not exist`);
    const current = await this.#readSubscriptions();
    const has = current.includes(name);
    if (has === subscribed) return;
    const next = subscribed ? [...current, name] : current.filter((n) => n !== name);
    await this.#writeSubscriptions(next);
    const id = (await this.#exists(name)) ? this.folder(name).id : '';
    this.store.hub.publish(this.user, { type: 'subscription', mailboxId: id, mailbox: name, subscribed });
  }

  async status(mailbox: string): Promise<MailboxStatus> {
    this.store.checkOpen();
    await this.#checkUser();
    const f = await this.#existing(mailbox);
    await f.sync();
    return folderStatus(f);
  }

  async open(mailbox: string, options: OpenMailboxOptions = {}): Promise<MailboxHandle> {
    this.store.checkOpen();
    const f = await this.#existing(mailbox);
    await f.sync();
    return new MaildirHandle(this, f, options.readOnly === true);
  }

  async append(mailbox: string, body: MessageSource, options: AppendOptions = {}): Promise<AppendResult> {
    this.store.checkOpen();
    const f = await this.#existing(mailbox);
    const flags = normalizeFlags(options.flags ?? [], this.store.limits);
    const internalDate = options.internalDate ?? this.store.clock.now();
    const quota = await this.#quotaLimits();
    const tmp = await f.writeTmp(body, internalDate);
    try {
      // Without a quota, concurrent deliveries to one folder share a commit (one lock, one fsync each).
      const unlimited = quota.storage === undefined && quota.messages === undefined;
      const m = unlimited ? await f.commitQueued(tmp, flags, internalDate) : await f.locked(async () => {
        if (quota.storage !== undefined || quota.messages !== undefined) {
          const usage = await this.#usage();
          if (quota.messages !== undefined && usage.messages + 1 > quota.messages) throw new StoreError('ERR_STORE_OVER_QUOTA', 'message count quota exceeded');
          if (quota.storage !== undefined && usage.storage + tmp.size > quota.storage) throw new StoreError('ERR_STORE_OVER_QUOTA', 'storage quota exceeded');
        }
        return f.commitTmp(tmp, flags, internalDate);
      });
      return { mailboxId: f.id, uidValidity: f.uidValidity, uid: m.uid, modSeq: m.modSeq, size: m.size };
    } finally {
      // On success the tmp file was already unlinked; on failure it must not linger.
      await unlink(tmp.tmpPath).catch(() => undefined);
    }
  }

  /** ERR_STORE_OVER_QUOTA when adding `messages` messages of `bytes` bytes would pass the user's quota. */
  async checkQuota(messages: number, bytes: number): Promise<void> {
    const quota = await this.#quotaLimits();
    if (quota.storage === undefined && quota.messages === undefined) return;
    const usage = await this.#usage();
    if (quota.messages !== undefined && usage.messages + messages > quota.messages) throw new StoreError('ERR_STORE_OVER_QUOTA', 'message count quota exceeded');
    if (quota.storage !== undefined && usage.storage + bytes > quota.storage) throw new StoreError('ERR_STORE_OVER_QUOTA', 'storage quota exceeded');
  }

  async #quotaLimits(): Promise<QuotaLimits> {
    return (await this.readUserFile()).quota;
  }

  async #usage(): Promise<{ storage: number; messages: number }> {
    let storage = 0;
    let messages = 0;
    for (const name of await this.#folderNames()) {
      const f = this.folder(name);
      if (f.uidlist === undefined) await f.sync();
      for (const m of f.index.messages.values()) {
        storage += m.size;
        messages++;
      }
    }
    return { storage, messages };
  }

  async quota(): Promise<QuotaUsage> {
    this.store.checkOpen();
    for (const name of await this.#folderNames()) await this.folder(name).sync();
    const usage = await this.#usage();
    return { ...usage, limits: await this.#quotaLimits() };
  }

  async setQuota(limits: QuotaLimits): Promise<void> {
    this.store.checkOpen();
    for (const v of [limits.storage, limits.messages]) {
      if (v !== undefined && (typeof v !== 'number' || !(v >= 0))) throw new RangeError('quota limits must be numbers >= 0');
    }
    await this.#updateUserFile((d) => {
      d.quota = { ...(limits.storage !== undefined ? { storage: limits.storage } : {}), ...(limits.messages !== undefined ? { messages: limits.messages } : {}) };
    });
  }

  watch(options: WatchOptions = {}): StoreWatch {
    this.store.checkOpen();
    const mailbox = options.mailbox === undefined ? undefined : this.name(options.mailbox);
    const iterator = this.store.hub.watch(this.user, { ...options, ...(mailbox !== undefined ? { mailbox } : {}) });
    if (this.#poller === undefined) {
      this.#poller = new Poller(this);
      this.#poller.start();
    }
    // Other processes' changes are seen once the poller's first scan has taken its starting point.
    return Object.assign(iterator, { ready: this.#poller.ready });
  }

  async openPop3(): Promise<Pop3Maildrop> {
    this.store.checkOpen();
    // RFC 1939 §8: an exclusive lock on the maildrop, across processes (a lock file, stale when its PID is gone).
    const lock = await acquireDotlock(join(this.maildir, POP3_LOCK), { clock: this.store.clock, staleTimeoutMs: Infinity, timeoutMs: 0 }).catch((error: unknown) => {
      if (StoreError.isInstance(error) && error.code === 'ERR_STORE_IN_USE') throw new StoreError('ERR_STORE_IN_USE', 'the maildrop is locked by another POP3 session');
      throw error;
    });
    try {
      const f = this.inbox();
      await f.sync();
      const snapshot = f.messages();
      return createPop3Maildrop(
        {
          uidValidity: f.uidValidity,
          messages: snapshot.map((m) => ({ uid: m.uid, size: m.size })),
          read: (uid) => f.readFile(uid),
          readNow: (uid) => f.readFileNow(uid),
          commit: async ({ expunge, seen }) =>
            f.locked(async () => {
              const current = new Map(f.messages().map((m) => [m.uid, m]));
              const updates = seen.filter((uid) => current.has(uid) && !expunge.includes(uid)).map((uid) => ({ uid, flags: withSeen(current.get(uid)!.flags) }));
              await f.applyFlags(updates);
              return (await f.expungeUids(expunge.filter((uid) => current.has(uid)))).length;
            }),
        },
        { release: () => lock.release() },
      );
    } catch (error) {
      await lock.release();
      throw error;
    }
  }

  // -- notifications ------------------------------------------------------------

  #publishRecords(folder: Folder, records: readonly IndexRecord[] | (() => readonly IndexRecord[])): void {
    publishRecords(this.store.hub, this.user, folder.id, folder.name, records);
  }

  foldersForPoll(): Promise<string[]> {
    return this.#folderNames();
  }
}

/** Turn index records (or a function making them, called only when someone watches) into StoreChange hints. */
function publishRecords(hub: ChangeHub, user: string, mailboxId: string, mailbox: string, given: readonly IndexRecord[] | (() => readonly IndexRecord[])): void {
  // Nobody watching: no UID lists to build (a STORE on 100k messages would make one of 100k).
  if (hub.watcherCount === 0) return;
  const records = typeof given === 'function' ? given() : given;
  const adds = records.filter((r) => r.t === 'A');
  if (adds.length > 0) {
    // A loop, not Math.max(...): a folder indexed from its files adds 100k messages at once.
    let modSeq = 0;
    for (const r of adds) modSeq = Math.max(modSeq, r.m);
    hub.publish(user, { type: 'append', mailboxId, mailbox, uids: adds.map((r) => r.u), modSeq });
  }
  for (const r of records) {
    if (r.t === 'F') hub.publish(user, { type: 'flags', mailboxId, mailbox, uids: flagRecordUids(r), modSeq: r.m });
    if (r.t === 'X') hub.publish(user, { type: 'expunge', mailboxId, mailbox, uids: [...r.u], modSeq: r.m });
  }
}

/**
 * A folder's status as of now; `messages`: the handle's count, when it is
 * not the folder's. Unseen, deleted and size are counted from the folder's
 * view of this moment when first read (a loop over every message, not made
 * for each flag change of a big mailbox that nobody asks the status of).
 */
function folderStatus(f: Folder, messages?: number): MailboxStatus {
  const view = f.messages();
  const status = { id: f.id, name: f.name, uidValidity: f.uidValidity, uidNext: f.uidNext, highestModSeq: Math.max(1, f.index.highestModSeq), messages: messages ?? view.length };
  const counted = (key: keyof ViewCounts): PropertyDescriptor => ({ enumerable: true, get: () => viewCounts(view)[key] });
  return Object.defineProperties(status, { unseen: counted('unseen'), deleted: counted('deleted'), size: counted('size') }) as MailboxStatus;
}

/**
 * Changes made by other processes: tails every folder's index log and
 * publishes records written by other stores; looks at new/ for mail dropped
 * there by other programs (Postfix, procmail) and syncs the folder, which
 * gives those messages UIDs and publishes them. Woken by fs.watch on the
 * Maildir and each folder; a poll every `pollIntervalMs` (through the
 * store's Clock) covers what fs.watch misses (NFS, some container file
 * systems). Latency: fs.watch events within milliseconds, otherwise at most
 * one poll interval.
 */
class Poller {
  readonly #user: MaildirUser;
  readonly #offsets = new Map<string, { ino: number; offset: number }>();
  readonly #newMtimes = new Map<string, number>();
  #timer: ReturnType<Clock['setTimeout']> | undefined;
  #watchers: FSWatcher[] = [];
  #running = false;
  #again = false;
  #stopped = false;
  /** The scan in flight, so `stop()` can wait for it: nothing may touch the Maildir after the store closed. */
  #inflight: Promise<void> = Promise.resolve();
  #folders = new Map<string, string>();

  constructor(user: MaildirUser) {
    this.#user = user;
  }

  /** Resolved once the first scan has taken each folder's starting point (the index log's end, `new/`'s mtime); never rejects. */
  ready: Promise<void> = Promise.resolve();

  start(): void {
    this.ready = this.#tick(true);
  }

  /** Stop polling; resolves once a scan in flight has finished. */
  stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#user.store.clock.clearTimeout(this.#timer);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    return this.#inflight;
  }

  #watch(path: string): void {
    try {
      const w = fsWatch(path, { persistent: false }, () => void this.#tick(false));
      w.on('error', () => undefined);
      this.#watchers.push(w);
    } catch {
      // fs.watch is an optimisation; the poll covers its absence.
    }
  }

  async #tick(first: boolean): Promise<void> {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    let done!: () => void;
    this.#inflight = new Promise<void>((resolve) => (done = resolve));
    try {
      do {
        this.#again = false;
        await this.#scan(first);
        first = false;
      } while (this.#again && !this.#stopped);
    } catch (error) {
      this.#user.ctx.logger.debug({ error: String(error) }, 'watch poll failed');
    } finally {
      this.#running = false;
      done();
    }
    if (this.#stopped) return;
    if (this.#timer !== undefined) this.#user.store.clock.clearTimeout(this.#timer);
    this.#timer = this.#user.store.clock.setTimeout(() => void this.#tick(false), this.#user.store.pollIntervalMs);
  }

  async #scan(first: boolean): Promise<void> {
    const user = this.#user;
    const hub = user.store.hub;
    const names = await user.foldersForPoll();
    const current = new Map<string, string>();
    for (const name of names) {
      const f = user.folder(name);
      if (f.uidlist === undefined) await f.sync().catch(() => undefined);
      current.set(f.id, name);
      if (first) {
        this.#watch(f.path);
        this.#watch(join(f.path, 'new'));
      }
    }
    if (first) this.#watch(user.maildir);
    if (!first) {
      for (const [id, name] of current) {
        const old = this.#folders.get(id);
        if (old === undefined) hub.publish(user.user, { type: 'mailbox-created', mailboxId: id, mailbox: name });
        else if (old !== name) hub.publish(user.user, { type: 'mailbox-renamed', mailboxId: id, mailbox: name, oldName: old });
      }
      for (const [id, name] of this.#folders) if (!current.has(id)) hub.publish(user.user, { type: 'mailbox-deleted', mailboxId: id, mailbox: name });
    }
    this.#folders = current;
    for (const name of names) {
      const f = user.folder(name);
      // Mail dropped into new/ by another program: sync gives it UIDs (and publishes).
      try {
        const st = await stat(join(f.path, 'new'));
        const seen = this.#newMtimes.get(f.path);
        this.#newMtimes.set(f.path, st.mtimeMs);
        if (seen !== undefined && seen !== st.mtimeMs) {
          const entries = await readdir(join(f.path, 'new'));
          if (entries.length > 0) await f.sync();
        }
      } catch {
        continue;
      }
      await this.#tail(f.path, f.id, name, first);
    }
  }

  async #tail(path: string, id: string, name: string, first: boolean): Promise<void> {
    const file = join(path, INDEX_LOG);
    let fh;
    try {
      fh = await open(file, 'r');
    } catch {
      return;
    }
    try {
      const st = await fh.stat();
      const known = this.#offsets.get(path);
      if (first || known === undefined || known.ino !== st.ino || st.size < known.offset) {
        // Start from the end (or after a compaction, which changes nothing visible).
        this.#offsets.set(path, { ino: st.ino, offset: st.size });
        return;
      }
      if (st.size === known.offset) return;
      const buf = Buffer.alloc(st.size - known.offset);
      await fh.read(buf, 0, buf.length, known.offset);
      const decoded = decodeRecords(buf);
      known.offset += decoded.consumed;
      const foreign = decoded.records.filter((r) => r.t !== 'H' && r.w !== this.#user.store.writerId);
      if (foreign.length > 0) publishRecords(this.#user.store.hub, this.#user.user, id, name, foreign);
    } finally {
      await fh.close();
    }
  }
}

class MaildirHandle implements MailboxHandle {
  readonly readOnly: boolean;
  readonly #user: MaildirUser;
  readonly #folder: Folder;
  /** Ascending by UID (as the folder's messages), so a sync compares it with the folder's by a merge, without a map per handle. */
  #view: readonly MessageMeta[];
  #status: MailboxStatus;
  #closed = false;

  constructor(user: MaildirUser, folder: Folder, readOnly: boolean) {
    this.#user = user;
    this.#folder = folder;
    this.readOnly = readOnly;
    // The folder's array itself: it is never changed in place (a change makes a new one).
    this.#view = folder.messages();
    this.#status = folderStatus(folder);
  }

  #check(write = false): void {
    if (this.#closed) throw new StoreError('ERR_STORE_CLOSED', 'the mailbox handle is closed');
    this.#user.store.checkOpen();
    if (write && this.readOnly) throw new StoreError('ERR_STORE_READ_ONLY', 'the mailbox is open read-only');
  }

  get status(): MailboxStatus {
    return this.#status;
  }

  messages(): readonly MessageMeta[] {
    return this.#view;
  }

  async sync(): Promise<MailboxChanges> {
    this.#check();
    await this.#folder.sync();
    const now = this.#folder.messages();
    const old = this.#view;
    const expunged: number[] = [];
    const added: MessageMeta[] = [];
    const flagsChanged: MessageMeta[] = [];
    let i = 0;
    for (const m of now) {
      while (i < old.length && old[i]!.uid < m.uid) expunged.push(old[i++]!.uid);
      if (i < old.length && old[i]!.uid === m.uid) {
        if (old[i]!.modSeq !== m.modSeq) flagsChanged.push(m);
        i++;
      } else added.push(m);
    }
    while (i < old.length) expunged.push(old[i++]!.uid);
    this.#view = now;
    this.#status = folderStatus(this.#folder);
    return { expunged, added, flagsChanged, uidNext: this.#status.uidNext, highestModSeq: this.#status.highestModSeq };
  }

  async *read(uid: number, range?: ByteRange): AsyncGenerator<Uint8Array> {
    // Checked when iteration starts, so a closed store fails the iteration (not the call).
    this.#check();
    yield* this.#folder.readFile(uid, range);
  }

  structure(uid: number): Promise<MessageStructure> {
    this.#check();
    return this.#folder.structure(uid);
  }

  bodyStructure(uid: number): Promise<string> {
    this.#check();
    return this.#folder.bodyStructure(uid);
  }

  internalDates(uids: readonly number[]): Promise<readonly number[]> {
    this.#check();
    return this.#folder.internalDates(uids);
  }

  async setFlags(uids: readonly number[], change: FlagChange): Promise<FlagChangeResult> {
    this.#check(true);
    const flags = normalizeFlags(change.flags, this.#user.store.limits);
    const f = this.#folder;
    let seen: readonly MessageMeta[] | undefined;
    const result = await f.locked(() => {
      seen = f.messages();
      return f.changeFlags(uids, change.mode, flags, change.unchangedSince);
    });
    if (result.updated.length > 0 && this.#view === seen) {
      // This handle showed the folder as it was: it shows it as it is now.
      this.#view = f.messages();
    } else if (result.updated.length > 0) {
      this.#view = withVersions(this.#view, result.updated);
    }
    this.#status = folderStatus(f, this.#view.length);
    return result;
  }

  async copy(uids: readonly number[], destination: string): Promise<CopyResult> {
    this.#check();
    return this.#transfer(uids, destination, false);
  }

  async move(uids: readonly number[], destination: string): Promise<CopyResult> {
    this.#check(true);
    return this.#transfer(uids, destination, true);
  }

  async #transfer(uids: readonly number[], destination: string, move: boolean): Promise<CopyResult> {
    const user = this.#user;
    const dest = await user.open(destination, { readOnly: true }).then(async (h) => {
      await h.close();
      return user.folder(user.name(destination));
    });
    const src = this.#folder;
    const wanted = new Set(uids);
    const messages = src.messages().filter((m) => wanted.has(m.uid));
    const mapping: [number, number][] = [];
    await user.checkQuota(move ? 0 : messages.length, move ? 0 : messages.reduce((n, m) => n + m.size, 0));
    await dest.locked(async () => {
      for (const m of messages) {
        const added = await dest.importFrom(src, m);
        if (added !== undefined) mapping.push([m.uid, added.uid]);
      }
    });
    if (move && mapping.length > 0) {
      const removed = await src.locked(() => src.expungeUids(mapping.map(([s]) => s)));
      const gone = new Set(removed);
      this.#view = this.#view.filter((m) => !gone.has(m.uid));
      this.#status = folderStatus(src, this.#view.length);
    }
    return { uidValidity: dest.uidValidity, mapping };
  }

  async expunge(uids?: readonly number[]): Promise<readonly number[]> {
    this.#check(true);
    const f = this.#folder;
    const only = uids === undefined ? undefined : new Set(uids);
    const removed = await f.locked(() => f.expungeUids(f.messages().filter((m) => isDeleted(m.flags) && (only === undefined || only.has(m.uid))).map((m) => m.uid)));
    const gone = new Set(removed);
    this.#view = this.#view.filter((m) => !gone.has(m.uid));
    this.#status = folderStatus(f, this.#view.length);
    return removed;
  }

  changedSince(modSeq: number): Promise<readonly MessageMeta[]> {
    this.#check();
    return Promise.resolve(this.#view.filter((m) => m.modSeq > modSeq));
  }

  vanishedSince(modSeq: number): Promise<readonly number[]> {
    this.#check();
    const index = this.#folder.index;
    if (modSeq < index.floor - 1) {
      // The expunge log before a rebuild is lost: report every UID below UIDNEXT that is not here (RFC 7162 §3.2.5.2 allows extra UIDs).
      const present = new Set(this.#folder.messages().map((m) => m.uid));
      const out: number[] = [];
      for (let uid = 1; uid < this.#folder.uidNext; uid++) if (!present.has(uid)) out.push(uid);
      return Promise.resolve(out);
    }
    return Promise.resolve([...new Set(index.expunged.filter(([, m]) => m > modSeq).map(([uid]) => uid))].sort((a, b) => a - b));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

