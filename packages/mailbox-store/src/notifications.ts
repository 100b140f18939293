/**
 * An in-process change hub: backends `publish()` every change, and each
 * `watch()` gets its own queue. A backend shared by several processes (the
 * PostgreSQL one) feeds `publish()` from its own channel (LISTEN/NOTIFY);
 * the hub only fans out within this process.
 *
 * Memory is bounded per watcher. A watcher that does not read keeps at most
 * `maxQueuedChanges` changes. When one more arrives, the whole queue is
 * replaced by a single `{ type: 'resync', dropped }` hint (with the count
 * of every change it stands for, earlier hints included), and queueing
 * resumes behind it. Changes are hints in any case (types.ts: "call `sync()`
 * for exact data"), so a slow IDLE session loses nothing but precision.
 */
import type { StoreChange, WatchOptions } from './types.js';

export interface ChangeHubOptions {
  /** Changes queued per watcher before they collapse into one `resync`. Default 1000. */
  readonly maxQueuedChanges?: number;
}

interface Watcher {
  readonly user: string;
  readonly mailbox: string | undefined;
  queue: StoreChange[];
  wake: (() => void) | undefined;
  ended: boolean;
  end: () => void;
}

function concerns(change: StoreChange, mailbox: string | undefined): boolean {
  if (mailbox === undefined || change.type === 'resync') return true;
  if (change.mailbox === mailbox) return true;
  return change.type === 'mailbox-renamed' && change.oldName === mailbox;
}

export class ChangeHub {
  readonly #max: number;
  readonly #watchers = new Map<string, Set<Watcher>>();
  #closed = false;

  constructor(options: ChangeHubOptions = {}) {
    this.#max = Math.max(1, options.maxQueuedChanges ?? 1000);
  }

  /** Number of live watchers (all users). */
  get watcherCount(): number {
    let n = 0;
    for (const set of this.#watchers.values()) n += set.size;
    return n;
  }

  /** Deliver a change to every watcher of `user` that it concerns. Never blocks. */
  publish(user: string, change: StoreChange): void {
    const set = this.#watchers.get(user);
    if (set === undefined) return;
    for (const w of set) {
      if (w.ended || !concerns(change, w.mailbox)) continue;
      if (w.queue.length >= this.#max) {
        const hint = w.queue[0];
        const already = hint !== undefined && hint.type === 'resync' ? hint.dropped - 1 : 0;
        const dropped = w.queue.length + already + 1;
        w.queue = [{ type: 'resync', dropped }];
      } else {
        w.queue.push(change);
      }
      this.#wake(w);
    }
  }

  /**
   * The changes of `user` from now on, until `signal` aborts, the iteration
   * is ended (`break`), or the hub closes. Registration happens at the call,
   * so nothing published after `watch()` returns is missed. Iterate once.
   * `options.mailbox` is compared as given: pass the normalised name.
   */
  watch(user: string, options: WatchOptions = {}): AsyncIterableIterator<StoreChange> {
    const signal = options.signal;
    const w: Watcher = { user, mailbox: options.mailbox, queue: [], wake: undefined, ended: false, end: () => end() };
    const end = (): void => {
      if (w.ended) return;
      w.ended = true;
      w.queue = [];
      this.#watchers.get(user)?.delete(w);
      if (this.#watchers.get(user)?.size === 0) this.#watchers.delete(user);
      signal?.removeEventListener('abort', end);
      this.#wake(w);
    };
    if (this.#closed || signal?.aborted === true) {
      w.ended = true;
    } else {
      let set = this.#watchers.get(user);
      if (set === undefined) this.#watchers.set(user, (set = new Set()));
      set.add(w);
      signal?.addEventListener('abort', end, { once: true });
    }
    const iterator: AsyncIterableIterator<StoreChange> = {
      // One pending next() at a time, as for-await does; a second concurrent call would replace the first's wake-up.
      next: async (): Promise<IteratorResult<StoreChange>> => {
        for (;;) {
          const change = w.queue.shift();
          if (change !== undefined) return { value: change, done: false };
          if (w.ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => (w.wake = resolve));
        }
      },
      return: (): Promise<IteratorResult<StoreChange>> => {
        end();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** End every watcher (store closed). */
  close(): void {
    this.#closed = true;
    for (const set of [...this.#watchers.values()]) {
      for (const w of [...set]) w.end();
    }
    this.#watchers.clear();
  }

  #wake(w: Watcher): void {
    const wake = w.wake;
    w.wake = undefined;
    wake?.();
  }
}
