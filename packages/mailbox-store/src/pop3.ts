/**
 * POP3's view of INBOX, the same for every backend: a snapshot taken when
 * the maildrop is opened, numbers fixed for the session, deletion marks that
 * become real only on `commit()` (RFC 1939 §6 UPDATE state), and the
 * exclusive maildrop lock (RFC 1939 §8: "the POP3 server acquires an
 * exclusive-access lock on the maildrop").
 *
 * A backend provides a `Pop3Source` (its INBOX snapshot, reads, and one
 * atomic commit) and a held `MaildropLock`; `createPop3Maildrop` does the
 * rest. The lock is an interface because it must work across machines: the
 * memory and Maildir backends use `InProcessMaildropLocks` (plus, for
 * Maildir, a lock file), a PostgreSQL backend would use an advisory lock.
 */
import { StoreError } from './errors.js';
import { failedSource } from './source.js';
import type { Pop3Maildrop, Pop3Message } from './types.js';

/** A held maildrop lock. `release()` is idempotent. */
export interface MaildropLock {
  release(): Promise<void>;
}

/** Hands out maildrop locks: a second `acquire` of one user fails with `ERR_STORE_IN_USE` until the first is released. */
export interface MaildropLocker {
  acquire(user: string): Promise<MaildropLock>;
}

/** Maildrop locks within one process. */
export class InProcessMaildropLocks implements MaildropLocker {
  readonly #held = new Map<string, symbol>();

  acquire(user: string): Promise<MaildropLock> {
    if (this.#held.has(user)) return Promise.reject(new StoreError('ERR_STORE_IN_USE', 'the maildrop is locked by another POP3 session'));
    const token = Symbol(user);
    this.#held.set(user, token);
    return Promise.resolve({
      release: () => {
        if (this.#held.get(user) === token) this.#held.delete(user);
        return Promise.resolve();
      },
    });
  }

  isLocked(user: string): boolean {
    return this.#held.has(user);
  }

  /** Drop every lock (store closed). */
  releaseAll(): void {
    this.#held.clear();
  }
}

/** What a backend gives `createPop3Maildrop`. */
export interface Pop3Source {
  readonly uidValidity: number;
  /** INBOX when the maildrop was opened, ascending by UID. `size` is RFC822.SIZE. */
  readonly messages: readonly { readonly uid: number; readonly size: number }[];
  /** The stored bytes; rejects with `ERR_STORE_NO_SUCH_MESSAGE` when the message is gone. */
  read(uid: number): AsyncIterable<Uint8Array>;
  /**
   * Optional: the whole stored bytes when the backend has them at hand now
   * (read ahead, or a small file read synchronously), else undefined — then
   * `read` is used. Never throws. The bytes are valid only until the next
   * `readNow` call (they may be a view of a buffer the backend reuses):
   * consume or copy them at once.
   */
  readNow?(uid: number): Uint8Array | undefined;
  /**
   * Atomically expunge `expunge` and add `\Seen` to `seen` (UIDs; either
   * may name messages already gone, which are skipped). Resolves with the
   * number of messages actually expunged.
   */
  commit(changes: { readonly expunge: readonly number[]; readonly seen: readonly number[] }): Promise<number>;
}

/**
 * The POP3 UIDL of a message: UID then UIDVALIDITY, each as 8 lower-case
 * hex digits — what Dovecot's default `pop3_uidl_format = %08Xu%08Xv`
 * produces (its `X` modifier prints lower-case hex despite the capital;
 * checked against a running Dovecot 2.3 by the POP3 interop test), so
 * clients see the same UIDLs from either server and download nothing twice.
 * Unique for ever in the maildrop, because a UID is never reused within one
 * UIDVALIDITY.
 */
export function pop3Uidl(uidValidity: number, uid: number): string {
  const hex = (n: number): string => (n >>> 0).toString(16).padStart(8, '0');
  return `${hex(uid)}${hex(uidValidity)}`;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * RFC 1939 §7 TOP: the header, the empty line, and the first `lines` lines
 * of the body. Stops reading the source once they are out (the rest of a
 * large message is never read).
 */
export async function* topOfMessage(chunks: AsyncIterable<Uint8Array>, lines: number): AsyncGenerator<Uint8Array, void, undefined> {
  let inBody = false;
  let state = 1; // header: 1 after an LF (or at start), 2 after LF CR, 0 otherwise
  let remaining = Math.max(0, Math.floor(lines));
  for await (const chunk of chunks) {
    let i = 0;
    if (!inBody) {
      for (; i < chunk.length; i++) {
        const b = chunk[i]!;
        if (b === LF) {
          if (state >= 1) {
            inBody = true;
            i++;
            break;
          }
          state = 1;
        } else if (b === CR && state === 1) state = 2;
        else state = 0;
      }
      if (!inBody || remaining === 0) {
        if (i > 0) yield chunk.subarray(0, i);
        if (inBody) return;
        continue;
      }
    }
    let end = i;
    for (; end < chunk.length && remaining > 0; end++) if (chunk[end] === LF) remaining--;
    if (end > 0) yield chunk.subarray(0, end);
    if (remaining === 0) return;
  }
}

/**
 * What `createPop3Maildrop` returns: a `Pop3Maildrop`, plus `readNow` when
 * the source has it — structural, for POP3 servers that feature-detect it
 * (pop3-core's `storeMaildrop`): RETR of a message whose bytes are already
 * in memory is then answered without a promise or an async iterator. The
 * bytes are valid until the next `readNow` call (see `Pop3Source.readNow`).
 */
type Pop3MaildropWithReadNow = Pop3Maildrop & { readNow?(number: number): Uint8Array | undefined };

/** Build the POP3 maildrop over a backend's snapshot and a held lock. */
export function createPop3Maildrop(source: Pop3Source, lock: MaildropLock): Pop3Maildrop {
  const list: Pop3Message[] = source.messages.map((m, i) => ({
    number: i + 1,
    uid: m.uid,
    uidl: pop3Uidl(source.uidValidity, m.uid),
    size: m.size,
    deleted: false,
  }));
  const marked = new Set<number>();
  let ended = false;

  const live = (): void => {
    if (ended) throw new StoreError('ERR_STORE_CLOSED', 'the POP3 maildrop was committed or released');
  };
  const message = (number: number): Pop3Message => {
    live();
    const m = Number.isInteger(number) ? list[number - 1] : undefined;
    if (m === undefined) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `no message ${number}`);
    if (marked.has(number)) throw new StoreError('ERR_STORE_NO_SUCH_MESSAGE', `message ${number} is deleted`);
    return m;
  };
  const release = async (): Promise<void> => {
    if (ended) return;
    ended = true;
    await lock.release();
  };

  const drop: Pop3MaildropWithReadNow = {
    messages: () => list.map((m) => (marked.has(m.number) ? { ...m, deleted: true } : m)),
    read(number, options) {
      let m: Pop3Message;
      try {
        m = message(number);
      } catch (error) {
        return failedSource(error);
      }
      const body = source.read(m.uid);
      return options?.lines === undefined ? body : topOfMessage(body, options.lines);
    },
    markDeleted(number) {
      message(number);
      marked.add(number);
    },
    reset() {
      live();
      marked.clear();
    },
    async commit(options) {
      live();
      const uidOf = (n: number): number | undefined => list[n - 1]?.uid;
      const expunge = [...marked].sort((a, b) => a - b).map((n) => uidOf(n)!);
      const seen = (options?.seen ?? []).filter((n) => !marked.has(n)).map(uidOf).filter((u): u is number => u !== undefined);
      try {
        const expunged = await source.commit({ expunge, seen });
        return { expunged };
      } finally {
        await release();
      }
    },
    release,
    [Symbol.asyncDispose]: release,
  };
  const readNow = source.readNow?.bind(source);
  if (readNow !== undefined) {
    // The whole message only (RETR); undefined for anything unusual (a deleted mark, a bad number), which `read` reports.
    drop.readNow = (number) => {
      if (ended || !Number.isInteger(number) || marked.has(number)) return undefined;
      const m = list[number - 1];
      return m === undefined ? undefined : readNow(m.uid);
    };
  }
  return drop;
}
