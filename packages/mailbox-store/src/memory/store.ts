/**
 * The memory backend: the whole `MailStore` interface, held in this
 * process's heap and gone when the store closes. For tests, and for
 * embedding a mail system in a test suite; production uses Maildir.
 */
import { randomUUID } from 'node:crypto';
import type { Clock, Logger } from '@pigeonpost/wire';
import { silentLogger } from '@pigeonpost/wire';
import { systemClock } from '@pigeonpost/wire/node';
import { StoreError } from '../errors.js';
import { MailboxKeywords, isDeleted, isSeen, normalizeFlags, planFlagChange, withSeen, withVersions } from '../flags.js';
import { resolveStoreLimits } from '../limits.js';
import type { StoreLimits } from '../limits.js';
import { normalizeMailboxName, parentNames } from '../names.js';
import { ChangeHub } from '../notifications.js';
import { InProcessMaildropLocks, createPop3Maildrop } from '../pop3.js';
import { failedSource, readMessageSource } from '../source.js';
import { imapBodyStructure } from '@pigeonpost/mime';
import { computeStructure } from '../structure.js';
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
  StoreChange,
  StoreWatch,
  UserMailStore,
  WatchOptions,
} from '../types.js';
import { normalizeUserName } from '../users.js';
import type { MemMailbox, MemMessage, MemUser } from './state.js';

export interface MemoryStoreOptions {
  /** Source of INTERNALDATE defaults and UIDVALIDITY seeds. Default `systemClock`. */
  readonly clock?: Clock;
  readonly limits?: Partial<StoreLimits>;
  readonly logger?: Logger;
  /** Changes queued per `watch()` before they collapse into one `resync`. Default 1000. */
  readonly maxQueuedChanges?: number;
}

const INBOX = 'INBOX';
const READ_CHUNK = 64 * 1024;
const DEFAULT_MAILBOXES: readonly { readonly name: string; readonly specialUse: SpecialUse }[] = [
  { name: 'Drafts', specialUse: '\\Drafts' },
  { name: 'Sent', specialUse: '\\Sent' },
  { name: 'Trash', specialUse: '\\Trash' },
  { name: 'Junk', specialUse: '\\Junk' },
  { name: 'Archive', specialUse: '\\Archive' },
];

/** Create an empty in-memory store. */
export function createMemoryStore(options: MemoryStoreOptions = {}): MailStore {
  return new MemoryStore(options);
}


function ascending(uids: Iterable<number>): number[] {
  return [...new Set(uids)].filter((u) => Number.isInteger(u) && u > 0).sort((a, b) => a - b);
}

/** A message about to be added to a mailbox. */
interface Incoming {
  readonly data: Buffer;
  readonly size: number;
  readonly flags: readonly string[];
  readonly internalDate: number;
  readonly emailId: string;
  readonly structure: MessageStructure;
}

class MemoryStore implements MailStore {
  readonly clock: Clock;
  readonly limits: StoreLimits;
  readonly logger: Logger;
  readonly hub: ChangeHub;
  readonly locks = new InProcessMaildropLocks();
  readonly users = new Map<string, MemUser>();
  #closed = false;
  #lastUidValidity = 0;

  constructor(options: MemoryStoreOptions) {
    this.clock = options.clock ?? systemClock;
    this.limits = resolveStoreLimits(options.limits);
    this.logger = (options.logger ?? silentLogger).child({ component: 'mailbox-store', backend: 'memory' });
    this.hub = new ChangeHub(options.maxQueuedChanges === undefined ? {} : { maxQueuedChanges: options.maxQueuedChanges });
  }

  // -- plumbing --------------------------------------------------------------

  live(): void {
    if (this.#closed) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  }

  getUser(name: string): MemUser {
    this.live();
    const user = this.users.get(normalizeUserName(name));
    if (user === undefined) throw new StoreError('ERR_STORE_NO_SUCH_USER', `no user ${JSON.stringify(name.slice(0, 100))}`);
    return user;
  }

  mailboxName(name: string): string {
    return normalizeMailboxName(name, this.limits);
  }

  getMailbox(user: MemUser, name: string): MemMailbox {
    const box = user.mailboxes.get(this.mailboxName(name));
    if (box === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `no mailbox ${JSON.stringify(name.slice(0, 100))}`);
    return box;
  }

  /** UIDVALIDITY: the clock's seconds, as Dovecot does, but strictly increasing so a recreated mailbox never repeats one. */
  nextUidValidity(): number {
    let next = Math.max(this.#lastUidValidity + 1, Math.floor(this.clock.now() / 1000));
    if (next > 0xffffffff || next < 1) next = 1;
    this.#lastUidValidity = next;
    return next;
  }

  newMailbox(name: string, specialUse: readonly SpecialUse[], subscribed: boolean): MemMailbox {
    return {
      id: randomUUID(),
      name,
      specialUse: [...specialUse],
      subscribed,
      uidValidity: this.nextUidValidity(),
      uidNext: 1,
      highestModSeq: 1,
      messages: new Map(),
      keywords: new MailboxKeywords(this.limits),
      expungeLog: [],
      deleted: false,
    };
  }

  publish(user: MemUser, change: StoreChange): void {
    this.hub.publish(user.name, change);
  }

  usage(user: MemUser): { storage: number; messages: number } {
    let storage = 0;
    let messages = 0;
    for (const box of user.mailboxes.values()) {
      for (const m of box.messages.values()) storage += m.meta.size;
      messages += box.messages.size;
    }
    return { storage, messages };
  }

  /** RFC 9208 §5.1: refuse what would take the user over a limit. */
  checkQuota(user: MemUser, bytes: number, count: number): void {
    const { storage, messages } = this.usage(user);
    const { quota } = user;
    if (quota.storage !== undefined && storage + bytes > quota.storage) {
      throw new StoreError('ERR_STORE_OVER_QUOTA', `storage quota of ${quota.storage} bytes exceeded`);
    }
    if (quota.messages !== undefined && messages + count > quota.messages) {
      throw new StoreError('ERR_STORE_OVER_QUOTA', `message quota of ${quota.messages} messages exceeded`);
    }
  }

  /** Add messages under one new MODSEQ. Keywords and quota must have been checked. */
  addMessages(user: MemUser, box: MemMailbox, items: readonly Incoming[]): number[] {
    if (items.length === 0) return [];
    const modSeq = ++box.highestModSeq;
    const uids: number[] = [];
    for (const item of items) {
      const uid = box.uidNext++;
      const meta: MessageMeta = {
        uid,
        modSeq,
        flags: item.flags,
        size: item.size,
        emailId: item.emailId,
      };
      box.messages.set(uid, { meta, data: item.data, structure: item.structure, internalDate: item.internalDate });
      uids.push(uid);
    }
    this.publish(user, { type: 'append', mailboxId: box.id, mailbox: box.name, uids, modSeq });
    return uids;
  }

  /** Remove messages under one new MODSEQ and log them for VANISHED. */
  removeMessages(user: MemUser, box: MemMailbox, uids: readonly number[]): number[] {
    const gone = ascending(uids).filter((u) => box.messages.has(u));
    if (gone.length === 0) return [];
    const modSeq = ++box.highestModSeq;
    for (const uid of gone) {
      box.messages.delete(uid);
      box.expungeLog.push({ uid, modSeq });
    }
    this.publish(user, { type: 'expunge', mailboxId: box.id, mailbox: box.name, uids: gone, modSeq });
    return gone;
  }

  status(box: MemMailbox): MailboxStatus {
    return statusOf(box, [...box.messages.values()].map((m) => m.meta));
  }

  /** APPEND and deliver(): validate, read the body under the cap, then add. */
  async append(userName: string, mailbox: string, body: MessageSource, options: AppendOptions): Promise<AppendResult> {
    const user = this.getUser(userName);
    const box = this.getMailbox(user, mailbox);
    const flags = normalizeFlags(options.flags ?? [], this.limits);
    const { data, size } = await readMessageSource(body, this.limits);
    const structure = await computeStructure(data);
    // The body took time to arrive: the store, user or mailbox may be gone.
    this.live();
    if (box.deleted || this.users.get(user.name) !== user) throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', 'the mailbox was deleted during the append');
    this.checkQuota(user, size, 1);
    const canonical = box.keywords.register(flags);
    const internalDate = options.internalDate ?? this.clock.now();
    const [uid] = this.addMessages(user, box, [{ data, size, flags: canonical, internalDate, emailId: randomUUID(), structure }]);
    return { mailboxId: box.id, uidValidity: box.uidValidity, uid: uid!, modSeq: box.highestModSeq, size };
  }

  // -- MailStore -----------------------------------------------------------

  createUser(userName: string, options: CreateUserOptions = {}): Promise<void> {
    return run(() => {
      this.live();
      const name = normalizeUserName(userName);
      if (this.users.has(name)) throw new StoreError('ERR_STORE_USER_EXISTS', `user ${JSON.stringify(name)} exists`);
      const user: MemUser = { name, mailboxes: new Map(), quota: { ...options.quota } };
      user.mailboxes.set(INBOX, this.newMailbox(INBOX, [], true));
      for (const spec of options.mailboxes ?? DEFAULT_MAILBOXES) {
        const boxName = this.mailboxName(spec.name);
        if (user.mailboxes.has(boxName)) throw new StoreError('ERR_STORE_MAILBOX_EXISTS', `mailbox ${boxName} given twice`);
        user.mailboxes.set(boxName, this.newMailbox(boxName, [spec.specialUse], true));
      }
      this.users.set(name, user);
      this.logger.debug({ user: name }, 'user created');
    });
  }

  deleteUser(userName: string): Promise<void> {
    return run(() => {
      const user = this.getUser(userName);
      for (const box of user.mailboxes.values()) box.deleted = true;
      this.users.delete(user.name);
    });
  }

  hasUser(userName: string): Promise<boolean> {
    return run(() => {
      this.live();
      return this.users.has(normalizeUserName(userName));
    });
  }

  listUsers(): Promise<readonly string[]> {
    return run(() => {
      this.live();
      return [...this.users.keys()].sort();
    });
  }

  user(userName: string): Promise<UserMailStore> {
    return run(() => new MemoryUserStore(this, this.getUser(userName).name));
  }

  async deliver(request: DeliveryRequest): Promise<AppendResult> {
    const options: { flags?: readonly string[]; internalDate?: number } = {};
    if (request.flags !== undefined) options.flags = request.flags;
    if (request.internalDate !== undefined) options.internalDate = request.internalDate;
    const result = await this.append(request.user, request.mailbox ?? INBOX, request.body, options);
    this.logger.debug({ user: request.user, mailboxId: result.mailboxId, uid: result.uid, size: result.size }, 'delivered');
    return result;
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.hub.close();
      this.locks.releaseAll();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Run synchronous work as a promise, so a throw becomes a rejection. */
function run<T>(work: () => T): Promise<T> {
  try {
    return Promise.resolve(work());
  } catch (error) {
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }
}

function statusOf(box: MemMailbox, metas: readonly MessageMeta[]): MailboxStatus {
  let unseen = 0;
  let deleted = 0;
  let size = 0;
  for (const m of metas) {
    if (!isSeen(m.flags)) unseen++;
    if (isDeleted(m.flags)) deleted++;
    size += m.size;
  }
  return {
    id: box.id,
    name: box.name,
    uidValidity: box.uidValidity,
    uidNext: box.uidNext,
    highestModSeq: box.highestModSeq,
    messages: metas.length,
    unseen,
    deleted,
    size,
  };
}

class MemoryUserStore implements UserMailStore {
  readonly #store: MemoryStore;
  readonly user: string;

  constructor(store: MemoryStore, user: string) {
    this.#store = store;
    this.user = user;
  }

  #user(): MemUser {
    return this.#store.getUser(this.user);
  }

  list(): Promise<readonly MailboxListEntry[]> {
    return run(() => {
      const user = this.#user();
      const names = new Set(user.mailboxes.keys());
      const all = new Set(names);
      for (const name of names) for (const parent of parentNames(name)) all.add(parent);
      const sorted = [...all].sort((a, b) => (a === INBOX ? -1 : b === INBOX ? 1 : a < b ? -1 : a > b ? 1 : 0));
      return sorted.map((name): MailboxListEntry => {
        const box = user.mailboxes.get(name);
        const prefix = name + '/';
        const hasChildren = [...all].some((n) => n.startsWith(prefix));
        if (box === undefined) {
          // A level that exists only because it has children: an id stable while it stays so.
          return { id: `noselect:${Buffer.from(name).toString('base64url')}`, name, specialUse: [], subscribed: false, selectable: false, hasChildren };
        }
        return { id: box.id, name, specialUse: [...box.specialUse], subscribed: box.subscribed, selectable: true, hasChildren };
      });
    });
  }

  create(name: string, options: CreateMailboxOptions = {}): Promise<MailboxListEntry> {
    return run(() => {
      const store = this.#store;
      const user = this.#user();
      const normal = store.mailboxName(name);
      if (user.mailboxes.has(normal)) throw new StoreError('ERR_STORE_MAILBOX_EXISTS', `mailbox ${normal} exists`);
      if (user.mailboxes.size >= store.limits.maxMailboxesPerUser) {
        throw new StoreError('ERR_STORE_LIMIT', `a user can have at most ${store.limits.maxMailboxesPerUser} mailboxes`);
      }
      const box = store.newMailbox(normal, options.specialUse ?? [], options.subscribe === true);
      user.mailboxes.set(normal, box);
      store.publish(user, { type: 'mailbox-created', mailboxId: box.id, mailbox: normal });
      const prefix = normal + '/';
      const hasChildren = [...user.mailboxes.keys()].some((n) => n.startsWith(prefix));
      return { id: box.id, name: normal, specialUse: [...box.specialUse], subscribed: box.subscribed, selectable: true, hasChildren };
    });
  }

  delete(name: string): Promise<void> {
    return run(() => {
      const store = this.#store;
      const user = this.#user();
      const normal = store.mailboxName(name);
      if (normal === INBOX) throw new StoreError('ERR_STORE_CANNOT_DELETE', 'INBOX cannot be deleted');
      const box = store.getMailbox(user, normal);
      user.mailboxes.delete(normal);
      box.deleted = true;
      store.publish(user, { type: 'mailbox-deleted', mailboxId: box.id, mailbox: normal });
    });
  }

  rename(from: string, to: string): Promise<void> {
    return run(() => {
      const store = this.#store;
      const user = this.#user();
      const source = store.mailboxName(from);
      const target = store.mailboxName(to);
      if (target === INBOX || user.mailboxes.has(target)) throw new StoreError('ERR_STORE_MAILBOX_EXISTS', `mailbox ${target} exists`);
      if (source === INBOX) return this.#renameInbox(user, target);
      const prefix = source + '/';
      if (target.startsWith(prefix)) throw new StoreError('ERR_STORE_INVALID_NAME', `cannot rename ${source} under itself`);
      const moving = [...user.mailboxes.keys()].filter((n) => n === source || n.startsWith(prefix));
      if (moving.length === 0) throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `no mailbox ${source}`);
      const renames = moving.map((old) => [old, store.mailboxName(target + old.slice(source.length))] as const);
      for (const [, next] of renames) {
        if (user.mailboxes.has(next)) throw new StoreError('ERR_STORE_MAILBOX_EXISTS', `mailbox ${next} exists`);
      }
      const boxes = renames.map(([old, next]) => [user.mailboxes.get(old)!, old, next] as const);
      for (const [, old] of boxes) user.mailboxes.delete(old);
      for (const [box, old, next] of boxes) {
        box.name = next;
        user.mailboxes.set(next, box);
        store.publish(user, { type: 'mailbox-renamed', mailboxId: box.id, mailbox: next, oldName: old });
      }
    });
  }

  /** RFC 9051 §6.3.5: renaming INBOX moves its messages to a new mailbox; INBOX stays, empty, and its children stay. */
  #renameInbox(user: MemUser, target: string): void {
    const store = this.#store;
    if (user.mailboxes.size >= store.limits.maxMailboxesPerUser) {
      throw new StoreError('ERR_STORE_LIMIT', `a user can have at most ${store.limits.maxMailboxesPerUser} mailboxes`);
    }
    const inbox = store.getMailbox(user, INBOX);
    const box = store.newMailbox(target, [], inbox.subscribed);
    user.mailboxes.set(target, box);
    store.publish(user, { type: 'mailbox-created', mailboxId: box.id, mailbox: target });
    const messages = [...inbox.messages.values()];
    box.keywords.register(inbox.keywords.list());
    store.addMessages(
      user,
      box,
      messages.map((m) => ({ data: m.data, size: m.meta.size, flags: m.meta.flags, internalDate: m.internalDate, emailId: m.meta.emailId, structure: m.structure })),
    );
    store.removeMessages(user, inbox, messages.map((m) => m.meta.uid));
  }

  setSubscribed(name: string, subscribed: boolean): Promise<void> {
    return run(() => {
      const store = this.#store;
      const user = this.#user();
      const box = store.getMailbox(user, name);
      if (box.subscribed === subscribed) return;
      box.subscribed = subscribed;
      store.publish(user, { type: 'subscription', mailboxId: box.id, mailbox: box.name, subscribed });
    });
  }

  status(name: string): Promise<MailboxStatus> {
    return run(() => this.#store.status(this.#store.getMailbox(this.#user(), name)));
  }

  open(name: string, options: OpenMailboxOptions = {}): Promise<MailboxHandle> {
    return run(() => new MemoryHandle(this.#store, this.#user(), this.#store.getMailbox(this.#user(), name), options.readOnly === true));
  }

  append(name: string, body: MessageSource, options: AppendOptions = {}): Promise<AppendResult> {
    return this.#store.append(this.user, name, body, options);
  }

  quota(): Promise<QuotaUsage> {
    return run(() => {
      const user = this.#user();
      return { ...this.#store.usage(user), limits: { ...user.quota } };
    });
  }

  setQuota(limits: QuotaLimits): Promise<void> {
    return run(() => {
      for (const [key, value] of Object.entries(limits)) {
        if (value !== undefined && (typeof value !== 'number' || !(value >= 0))) throw new RangeError(`quota ${key} must be a number >= 0`);
      }
      this.#user().quota = { ...limits };
    });
  }

  watch(options: WatchOptions = {}): StoreWatch {
    // Every change goes through this process's hub: seen from the call on.
    const ready = Promise.resolve();
    try {
      this.#store.live();
      const mailbox = options.mailbox === undefined ? undefined : this.#store.mailboxName(options.mailbox);
      return Object.assign(this.#store.hub.watch(this.user, { ...options, mailbox }), { ready });
    } catch (error) {
      return Object.assign(failedSource<StoreChange>(error), { ready });
    }
  }

  async openPop3(): Promise<Pop3Maildrop> {
    const store = this.#store;
    const user = this.#user();
    const lock = await store.locks.acquire(user.name);
    const inbox = user.mailboxes.get(INBOX)!;
    const messages = [...inbox.messages.values()].map((m) => ({ uid: m.meta.uid, size: m.meta.size }));
    return createPop3Maildrop(
      {
        uidValidity: inbox.uidValidity,
        messages,
        read: (uid) => readMessage(store, inbox, uid),
        commit: ({ expunge, seen }) =>
          run(() => {
            store.live();
            setFlagsOn(store, user, inbox, seen, (flags) => withSeen(flags));
            return store.removeMessages(user, inbox, expunge).length;
          }),
      },
      lock,
    );
  }
}

/** Apply a per-message flag function under one new MODSEQ (POP3's `\Seen`). */
function setFlagsOn(store: MemoryStore, user: MemUser, box: MemMailbox, uids: readonly number[], change: (flags: readonly string[]) => readonly string[]): void {
  const targets = ascending(uids)
    .map((u) => box.messages.get(u))
    .filter((m): m is MemMessage => m !== undefined)
    .filter((m) => change(m.meta.flags) !== m.meta.flags);
  if (targets.length === 0) return;
  const modSeq = ++box.highestModSeq;
  for (const m of targets) m.meta = { ...m.meta, flags: change(m.meta.flags), modSeq };
  store.publish(user, { type: 'flags', mailboxId: box.id, mailbox: box.name, uids: targets.map((m) => m.meta.uid), modSeq });
}

// An async generator, so every failure (closed store, expunged message) surfaces from the first next(), as with an I/O backend.
// eslint-disable-next-line @typescript-eslint/require-await
async function* readMessage(store: MemoryStore, box: MemMailbox, uid: number, range?: ByteRange): AsyncGenerator<Uint8Array, void, undefined> {
  store.live();
  const message = box.deleted ? undefined : box.messages.get(uid);
  if (message === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message UID ${uid} does not exist (expunged?)`);
  const data = message.data;
  const start = Math.min(data.length, Math.max(0, Math.floor(range?.start ?? 0)));
  const end = Math.max(start, Math.min(data.length, Math.floor(range?.end ?? data.length)));
  for (let at = start; at < end; at += READ_CHUNK) {
    // A copy: the caller may write into what it is given, the store's bytes must not change.
    yield Buffer.from(data.subarray(at, Math.min(end, at + READ_CHUNK)));
  }
}

class MemoryHandle implements MailboxHandle {
  readonly #store: MemoryStore;
  readonly #user: MemUser;
  readonly #box: MemMailbox;
  readonly readOnly: boolean;
  #view: MessageMeta[];
  #status: MailboxStatus;
  #closed = false;

  constructor(store: MemoryStore, user: MemUser, box: MemMailbox, readOnly: boolean) {
    this.#store = store;
    this.#user = user;
    this.#box = box;
    this.readOnly = readOnly;
    this.#view = [...box.messages.values()].map((m) => m.meta);
    this.#status = statusOf(box, this.#view);
  }

  get status(): MailboxStatus {
    return this.#status;
  }

  #live(): void {
    this.#store.live();
    if (this.#closed) throw new StoreError('ERR_STORE_CLOSED', 'the mailbox handle is closed');
    if (this.#box.deleted) throw new StoreError('ERR_STORE_NO_SUCH_MAILBOX', `mailbox ${this.#box.name} was deleted`);
  }

  #writable(): void {
    this.#live();
    if (this.readOnly) throw new StoreError('ERR_STORE_READ_ONLY', `mailbox ${this.#box.name} is open read-only`);
  }

  messages(): readonly MessageMeta[] {
    return this.#view;
  }

  sync(): Promise<MailboxChanges> {
    return run(() => {
      this.#live();
      const current = [...this.#box.messages.values()].map((m) => m.meta);
      const before = new Map(this.#view.map((m) => [m.uid, m]));
      const now = new Set(current.map((m) => m.uid));
      const expunged = this.#view.filter((m) => !now.has(m.uid)).map((m) => m.uid);
      const added: MessageMeta[] = [];
      const flagsChanged: MessageMeta[] = [];
      for (const meta of current) {
        const old = before.get(meta.uid);
        if (old === undefined) added.push(meta);
        else if (old.modSeq !== meta.modSeq) flagsChanged.push(meta);
      }
      this.#view = current;
      this.#status = statusOf(this.#box, current);
      return { expunged, added, flagsChanged, uidNext: this.#status.uidNext, highestModSeq: this.#status.highestModSeq };
    });
  }

  read(uid: number, range?: ByteRange): AsyncIterable<Uint8Array> {
    try {
      this.#live();
    } catch (error) {
      return failedSource(error);
    }
    return readMessage(this.#store, this.#box, uid, range);
  }

  structure(uid: number): Promise<MessageStructure> {
    return run(() => {
      this.#live();
      const message = this.#box.messages.get(uid);
      if (message === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message UID ${uid} does not exist (expunged?)`);
      return message.structure;
    });
  }

  async bodyStructure(uid: number): Promise<string> {
    return imapBodyStructure(await this.structure(uid));
  }

  internalDates(uids: readonly number[]): Promise<readonly number[]> {
    return run(() => {
      this.#live();
      return uids.map((uid) => {
        const message = this.#box.messages.get(uid);
        if (message === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message UID ${uid} does not exist (expunged?)`);
        return message.internalDate;
      });
    });
  }

  setFlags(uids: readonly number[], change: FlagChange): Promise<FlagChangeResult> {
    return run(() => {
      this.#writable();
      const store = this.#store;
      const box = this.#box;
      const flags = normalizeFlags(change.flags, store.limits);
      // A removal must not use up keyword slots; anything else registers its keywords (ERR_STORE_LIMIT before any change).
      const canonical = change.mode === 'remove' ? box.keywords.canonicalize(flags) : box.keywords.register(flags);
      const messages = ascending(uids)
        .map((u) => box.messages.get(u))
        .filter((m): m is MemMessage => m !== undefined);
      const plan = planFlagChange(
        messages.map((m) => m.meta),
        { mode: change.mode, flags: canonical, unchangedSince: change.unchangedSince },
      );
      const updated: MessageMeta[] = [];
      if (plan.updates.length > 0) {
        const modSeq = ++box.highestModSeq;
        for (const update of plan.updates) {
          const message = box.messages.get(update.uid)!;
          message.meta = { ...message.meta, flags: update.flags, modSeq };
          updated.push(message.meta);
        }
        store.publish(this.#user, { type: 'flags', mailboxId: box.id, mailbox: box.name, uids: updated.map((m) => m.uid), modSeq });
        // This session's own change is in its view at once.
        this.#view = withVersions(this.#view, updated);
      }
      this.#status = statusOf(box, this.#view);
      return { updated, conflicts: plan.conflicts };
    });
  }

  #copy(uids: readonly number[], destination: string, move: boolean): CopyResult {
    const store = this.#store;
    const user = this.#user;
    const target = store.getMailbox(user, destination);
    const sources = ascending(uids)
      .map((u) => this.#box.messages.get(u))
      .filter((m): m is MemMessage => m !== undefined);
    if (!move) store.checkQuota(user, sources.reduce((sum, m) => sum + m.meta.size, 0), sources.length);
    // All keywords first: either every message gets its flags, or ERR_STORE_LIMIT and nothing happens.
    target.keywords.register(sources.flatMap((m) => m.meta.flags));
    const items = sources.map((m) => ({
      data: m.data,
      size: m.meta.size,
      flags: target.keywords.register(m.meta.flags),
      internalDate: m.internalDate,
      // RFC 8474 §5.1: MOVE keeps the EMAILID; a COPY may share it, and shares it here (same bytes).
      emailId: m.meta.emailId,
      structure: m.structure,
    }));
    const created = store.addMessages(user, target, items);
    if (move) this.#forget(store.removeMessages(user, this.#box, sources.map((m) => m.meta.uid)));
    return { uidValidity: target.uidValidity, mapping: sources.map((m, i) => [m.meta.uid, created[i]!] as const) };
  }

  copy(uids: readonly number[], destination: string): Promise<CopyResult> {
    return run(() => {
      this.#live();
      return this.#copy(uids, destination, false);
    });
  }

  move(uids: readonly number[], destination: string): Promise<CopyResult> {
    return run(() => {
      this.#writable();
      return this.#copy(uids, destination, true);
    });
  }

  expunge(uids?: readonly number[]): Promise<readonly number[]> {
    return run(() => {
      this.#writable();
      const only = uids === undefined ? undefined : new Set(uids);
      const doomed = [...this.#box.messages.values()]
        .filter((m) => isDeleted(m.meta.flags) && (only === undefined || only.has(m.meta.uid)))
        .map((m) => m.meta.uid);
      const removed = this.#store.removeMessages(this.#user, this.#box, doomed);
      this.#forget(removed);
      return removed;
    });
  }

  /** Messages this session expunged (or moved away) leave its view at once. */
  #forget(uids: readonly number[]): void {
    if (uids.length === 0) return;
    const gone = new Set(uids);
    this.#view = this.#view.filter((m) => !gone.has(m.uid));
    this.#status = statusOf(this.#box, this.#view);
  }

  changedSince(modSeq: number): Promise<readonly MessageMeta[]> {
    return run(() => {
      this.#live();
      const out: MessageMeta[] = [];
      for (const seen of this.#view) {
        const meta = this.#box.messages.get(seen.uid)?.meta;
        if (meta !== undefined && meta.modSeq > modSeq) out.push(meta);
      }
      return out;
    });
  }

  vanishedSince(modSeq: number): Promise<readonly number[]> {
    return run(() => {
      this.#live();
      return ascending(this.#box.expungeLog.filter((e) => e.modSeq > modSeq).map((e) => e.uid));
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
