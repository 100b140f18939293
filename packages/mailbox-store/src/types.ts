/**
 * The storage interface of Pigeonpost: what IMAP4rev2 (with CONDSTORE,
 * QRESYNC, UIDPLUS, OBJECTID, SPECIAL-USE, QUOTA, STATUS=SIZE), POP3 and the
 * MDA need, without either knowing the backend.
 *
 * It must not assume one machine: a PostgreSQL store shared by several server
 * processes on several hosts will implement it too. So UID/MODSEQ
 * allocation, locks and change notifications are operations of the interface,
 * never side effects a caller infers from the file system.
 *
 * Conventions:
 * - Mailbox names are Unicode strings (NFC), hierarchy levels joined with
 *   `HIERARCHY_DELIMITER` ('/'). `INBOX` is case-insensitive (RFC 9051 §5.1).
 *   Protocol layers convert to modified UTF-7 when a client needs it.
 * - UIDs, UIDVALIDITY are unsigned 32-bit, never 0. MODSEQ values are
 *   positive integers below 2^53 (RFC 7162 allows 63 bits; JavaScript numbers
 *   are exact to 2^53, far beyond any real mailbox).
 * - Times are milliseconds since the epoch.
 * - Flags: the system flags below, or keywords (RFC 9051 `flag-keyword`:
 *   atom characters, no `\`). Flag comparisons are case-insensitive; the
 *   store keeps the case of the first use.
 * - Bodies go in and out as bytes or async iterables of bytes, never as one
 *   string: a 50 MB message never needs 50 MB of heap per step.
 */
import type { MessageStructure } from '@pigeonpost/mime';

export const HIERARCHY_DELIMITER = '/';

export type SystemFlag = '\\Seen' | '\\Answered' | '\\Flagged' | '\\Deleted' | '\\Draft';
export const SYSTEM_FLAGS: readonly SystemFlag[] = ['\\Seen', '\\Answered', '\\Flagged', '\\Deleted', '\\Draft'];

/** RFC 6154 special-use attributes (and RFC 8457 `\Important`). */
export type SpecialUse = '\\All' | '\\Archive' | '\\Drafts' | '\\Flagged' | '\\Junk' | '\\Sent' | '\\Trash' | '\\Important';

/** Body input: whole bytes, or a stream of chunks (Node Readable streams are async iterables). */
export type MessageSource = Uint8Array | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** A half-open byte range `[start, end)` of the stored message. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

// ---------------------------------------------------------------------------
// Mailboxes

export interface MailboxListEntry {
  /** Stable across renames (RFC 8474 MAILBOXID). */
  readonly id: string;
  readonly name: string;
  readonly specialUse: readonly SpecialUse[];
  readonly subscribed: boolean;
  /** False for a hierarchy level that exists only because it has children (IMAP `\NonExistent`/`\Noselect`). */
  readonly selectable: boolean;
  readonly hasChildren: boolean;
}

export interface MailboxStatus {
  readonly id: string;
  readonly name: string;
  /** Changes only when UIDs can no longer be trusted (the mailbox was recreated, or its UID list was lost). */
  readonly uidValidity: number;
  /** The UID the next message will get, at least. */
  readonly uidNext: number;
  /** The highest MODSEQ of any change in the mailbox, expunges included (RFC 7162 §3.1.2.1). At least 1. */
  readonly highestModSeq: number;
  readonly messages: number;
  /** Messages without `\Seen`. */
  readonly unseen: number;
  /** Messages with `\Deleted` (RFC 9051 STATUS DELETED). */
  readonly deleted: number;
  /** Sum of `size` of all messages (RFC 8438 STATUS SIZE). */
  readonly size: number;
}

export interface CreateMailboxOptions {
  readonly specialUse?: readonly SpecialUse[];
  /** Subscribe on creation. Default false. */
  readonly subscribe?: boolean;
}

// ---------------------------------------------------------------------------
// Messages

/**
 * What a view lists per message. INTERNALDATE is not here: a backend may
 * need a file system call per message for it (Maildir keeps it as the
 * file's mtime), so it is fetched on demand with `MailboxHandle.internalDates`.
 */
export interface MessageMeta {
  readonly uid: number;
  /** The MODSEQ of the last change to this message (append, flag change). */
  readonly modSeq: number;
  /** System flags and keywords, in no promised order (Maildir keeps them as sorted letters). */
  readonly flags: readonly string[];
  /** RFC822.SIZE: the size of the message with CRLF line ends (what IMAP and POP3 serve). */
  readonly size: number;
  /** RFC 8474 EMAILID: stable for the same stored message across MOVE; a COPY may share it. */
  readonly emailId: string;
}

export interface AppendOptions {
  readonly flags?: readonly string[];
  /** INTERNALDATE. Default: the store's clock at the time of the append. */
  readonly internalDate?: number;
}

export interface AppendResult {
  readonly mailboxId: string;
  readonly uidValidity: number;
  readonly uid: number;
  readonly modSeq: number;
  readonly size: number;
}

export type FlagChangeMode = 'add' | 'remove' | 'replace';

export interface FlagChange {
  readonly mode: FlagChangeMode;
  readonly flags: readonly string[];
  /** RFC 7162 UNCHANGEDSINCE: messages whose MODSEQ is greater are not changed and are reported in `conflicts`. */
  readonly unchangedSince?: number;
}

export interface FlagChangeResult {
  /** Messages whose flags changed, with their new flags and MODSEQ. Messages already in the requested state are left out (no new MODSEQ). */
  readonly updated: readonly MessageMeta[];
  /** UIDs refused by `unchangedSince` (RFC 7162 MODIFIED response code). */
  readonly conflicts: readonly number[];
}

export interface CopyResult {
  /** UIDVALIDITY of the destination (RFC 4315 COPYUID). */
  readonly uidValidity: number;
  /** Pairs of [source UID, destination UID], in source UID order. */
  readonly mapping: readonly (readonly [number, number])[];
}

/** What changed in a mailbox since a handle last synchronised, for IMAP's untagged EXISTS/EXPUNGE/FETCH. */
export interface MailboxChanges {
  /** UIDs expunged since the last sync, ascending. */
  readonly expunged: readonly number[];
  /** Messages added since the last sync, ascending by UID. */
  readonly added: readonly MessageMeta[];
  /** Messages (still present) whose flags changed since the last sync. */
  readonly flagsChanged: readonly MessageMeta[];
  readonly uidNext: number;
  readonly highestModSeq: number;
}

/**
 * A mailbox opened by one session (IMAP SELECT/EXAMINE). It keeps a view
 * that other sessions' changes reach only when this one calls `sync()`, so
 * message sequence numbers stay stable between syncs as IMAP requires
 * (RFC 9051 §7.5.1). The session's own changes are in its view at once: the
 * flags `setFlags()` set, and no longer the messages `expunge()` removed or
 * `move()` moved away (the session reports those itself, from what the
 * calls return); the next `sync()` does not report them again.
 */
export interface MailboxHandle extends AsyncDisposable {
  readonly status: MailboxStatus;
  readonly readOnly: boolean;
  /** The messages of the view, ascending by UID. */
  messages(): readonly MessageMeta[];
  /** Bring the view up to date and say what changed since the last sync (or the open). */
  sync(): Promise<MailboxChanges>;
  /** Raw stored bytes of a message, or a byte range of them. Rejects with `ERR_STORE_NO_SUCH_MESSAGE` once expunged by anyone. */
  read(uid: number, range?: ByteRange): AsyncIterable<Uint8Array>;
  /** The cached MIME structure (byte offsets of every part), computed once (at delivery, or on first use). */
  structure(uid: number): Promise<MessageStructure>;
  /**
   * IMAP BODYSTRUCTURE of a message (`@pigeonpost/mime`'s `imapBodyStructure`
   * of its structure), for FETCH BODYSTRUCTURE. A backend may keep the string
   * with the structure so this neither parses nor formats (Maildir: in the index log).
   */
  bodyStructure(uid: number): Promise<string>;
  /**
   * INTERNALDATE (ms since the epoch) of each UID, in the order given (IMAP
   * FETCH INTERNALDATE, SEARCH BEFORE/SINCE). Asked for in batches: a
   * backend may need a file system call per message the first time. Rejects
   * with `ERR_STORE_NO_SUCH_MESSAGE` when one is expunged.
   */
  internalDates(uids: readonly number[]): Promise<readonly number[]>;
  setFlags(uids: readonly number[], change: FlagChange): Promise<FlagChangeResult>;
  copy(uids: readonly number[], destination: string): Promise<CopyResult>;
  /** COPY then expunge from this mailbox, atomically per message (RFC 6851). */
  move(uids: readonly number[], destination: string): Promise<CopyResult>;
  /** Expunge messages with `\Deleted` — only those among `uids` when given (UID EXPUNGE). Resolves with the UIDs removed. */
  expunge(uids?: readonly number[]): Promise<readonly number[]>;
  /** Messages whose MODSEQ is greater than `modSeq` (CONDSTORE CHANGEDSINCE). */
  changedSince(modSeq: number): Promise<readonly MessageMeta[]>;
  /** UIDs expunged after `modSeq`, from the persistent expunge log (QRESYNC VANISHED). */
  vanishedSince(modSeq: number): Promise<readonly number[]>;
  close(): Promise<void>;
}

export interface OpenMailboxOptions {
  /** EXAMINE: no flag changes, no expunges through this handle. */
  readonly readOnly?: boolean;
}

// ---------------------------------------------------------------------------
// Notifications

export type StoreChange =
  | { readonly type: 'append'; readonly mailboxId: string; readonly mailbox: string; readonly uids: readonly number[]; readonly modSeq: number }
  | { readonly type: 'expunge'; readonly mailboxId: string; readonly mailbox: string; readonly uids: readonly number[]; readonly modSeq: number }
  | { readonly type: 'flags'; readonly mailboxId: string; readonly mailbox: string; readonly uids: readonly number[]; readonly modSeq: number }
  | { readonly type: 'mailbox-created' | 'mailbox-deleted'; readonly mailboxId: string; readonly mailbox: string }
  | { readonly type: 'mailbox-renamed'; readonly mailboxId: string; readonly mailbox: string; readonly oldName: string }
  | { readonly type: 'subscription'; readonly mailboxId: string; readonly mailbox: string; readonly subscribed: boolean }
  /**
   * The watcher fell behind and `dropped` changes were discarded to bound its
   * memory (see notifications.ts): re-read everything it cares about
   * (`list()`, `sync()` of open handles).
   */
  | { readonly type: 'resync'; readonly dropped: number };

/** What `watch()` returns: the changes, as an async iterable, and when those of other processes start being seen. */
export interface StoreWatch extends AsyncIterable<StoreChange> {
  /**
   * Resolves once changes made by other processes and programs are reported
   * from then on (another store on the same Maildir, Postfix or Dovecot
   * writing into `new/`): the Maildir store takes its starting point in the
   * background, looking at every folder of the user. Changes made through
   * this store object are reported from the moment `watch()` returns (the
   * memory store's `ready` is resolved at once). Never rejects. An IMAP IDLE
   * session awaits it and then syncs, so nothing that arrives in between is
   * missed.
   */
  readonly ready: Promise<void>;
}

export interface WatchOptions {
  /** Ends the iteration. */
  readonly signal?: AbortSignal;
  /** Only changes of this mailbox (by name). Default all of the user's mailboxes. */
  readonly mailbox?: string;
}

// ---------------------------------------------------------------------------
// Quota

export interface QuotaLimits {
  /** Bytes of all messages (sum of `size`); undefined: no limit. */
  readonly storage?: number;
  /** Number of messages in all mailboxes; undefined: no limit. */
  readonly messages?: number;
}

export interface QuotaUsage {
  readonly storage: number;
  readonly messages: number;
  readonly limits: QuotaLimits;
}

// ---------------------------------------------------------------------------
// POP3

export interface Pop3Message {
  /** 1-based message number, fixed for the session (RFC 1939 §5). */
  readonly number: number;
  readonly uid: number;
  /** UIDL: unique per message for ever in this maildrop (RFC 1939 §7): UID then UIDVALIDITY, 8 lower-case hex digits each, as Dovecot's default `pop3_uidl_format = %08Xu%08Xv` prints them, so a maildrop moved between Dovecot and Pigeonpost keeps its UIDLs and POP3 clients download nothing twice. */
  readonly uidl: string;
  readonly size: number;
  readonly deleted: boolean;
}

/**
 * A POP3 session's view of INBOX: a stable snapshot, an exclusive lock (a
 * second `openPop3` fails with `ERR_STORE_IN_USE` until this one ends), marks
 * that become real only on `commit()` (the UPDATE state, RFC 1939 §6).
 */
export interface Pop3Maildrop extends AsyncDisposable {
  messages(): readonly Pop3Message[];
  /** The message's bytes; `lines` limits the body to that many lines after the header (TOP). */
  read(number: number, options?: { readonly lines?: number }): AsyncIterable<Uint8Array>;
  markDeleted(number: number): void;
  /** RSET: unmark all. */
  reset(): void;
  /** QUIT in TRANSACTION state: expunge the marked messages atomically, set `\Seen` on `seen` ones (as Dovecot does for RETR), release the lock. */
  commit(options?: { readonly seen?: readonly number[] }): Promise<{ readonly expunged: number }>;
  /** Release the lock without applying anything (connection lost). */
  release(): Promise<void>;
}

// ---------------------------------------------------------------------------
// Users and the store

export interface CreateUserOptions {
  readonly quota?: QuotaLimits;
  /**
   * Special-use mailboxes to create with INBOX. Default: Drafts, Sent,
   * Trash, Junk, Archive (RFC 6154), subscribed.
   */
  readonly mailboxes?: readonly { readonly name: string; readonly specialUse: SpecialUse }[];
}

export interface UserMailStore {
  readonly user: string;
  list(): Promise<readonly MailboxListEntry[]>;
  create(name: string, options?: CreateMailboxOptions): Promise<MailboxListEntry>;
  /** Delete a mailbox and its messages. INBOX cannot be deleted. Children stay (RFC 9051 §6.3.4). */
  delete(name: string): Promise<void>;
  /** Rename a mailbox and its children. Renaming INBOX moves its messages to a new mailbox and leaves INBOX empty (RFC 9051 §6.3.5). */
  rename(from: string, to: string): Promise<void>;
  setSubscribed(name: string, subscribed: boolean): Promise<void>;
  status(name: string): Promise<MailboxStatus>;
  open(name: string, options?: OpenMailboxOptions): Promise<MailboxHandle>;
  /** APPEND without selecting. */
  append(name: string, body: MessageSource, options?: AppendOptions): Promise<AppendResult>;
  quota(): Promise<QuotaUsage>;
  setQuota(limits: QuotaLimits): Promise<void>;
  /** Change notifications for this user's mailboxes, from this process and others sharing the store. Hints: call `sync()` for exact data. */
  watch(options?: WatchOptions): StoreWatch;
  /** POP3's view of INBOX, with the maildrop lock held. */
  openPop3(): Promise<Pop3Maildrop>;
}

export interface DeliveryRequest {
  readonly user: string;
  /** Default INBOX. A missing mailbox is an error (`ERR_STORE_NO_SUCH_MAILBOX`), never created silently. */
  readonly mailbox?: string;
  readonly body: MessageSource;
  readonly flags?: readonly string[];
  readonly internalDate?: number;
}

export interface MailStore extends AsyncDisposable {
  /** Create a user with INBOX and the special-use mailboxes. Fails with `ERR_STORE_USER_EXISTS` if present. */
  createUser(user: string, options?: CreateUserOptions): Promise<void>;
  deleteUser(user: string): Promise<void>;
  hasUser(user: string): Promise<boolean>;
  listUsers(): Promise<readonly string[]>;
  /** The user's mailboxes. Rejects with `ERR_STORE_NO_SUCH_USER`. */
  user(user: string): Promise<UserMailStore>;
  /**
   * The MDA. Resolves only once the message is durable (on disk: file and
   * directory fsynced) and indexed; a crash at any point leaves it wholly
   * visible or not at all, never with a duplicate UID.
   */
  deliver(request: DeliveryRequest): Promise<AppendResult>;
  close(): Promise<void>;
}
