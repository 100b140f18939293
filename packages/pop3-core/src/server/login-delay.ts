/**
 * RFC 2449 §6.8 LOGIN-DELAY: the least time between two logins of one user.
 * One tracker is shared by every session of a server (the Node adapter makes
 * one); time comes from the caller, so it runs on a virtual clock in tests.
 */
export class LoginDelayTracker {
  readonly #last = new Map<string, number>();
  readonly #maxEntries: number;

  /** `maxEntries` bounds memory: the oldest logins are forgotten first. Default 100000. */
  constructor(options: { readonly maxEntries?: number } = {}) {
    this.#maxEntries = options.maxEntries ?? 100_000;
  }

  /** Seconds `user` must still wait at `now` (ms) with a delay of `seconds`; 0 when a login is allowed. */
  remaining(user: string, now: number, seconds: number): number {
    const last = this.#last.get(user);
    if (last === undefined || seconds <= 0) return 0;
    const wait = last + seconds * 1000 - now;
    return wait > 0 ? Math.ceil(wait / 1000) : 0;
  }

  /** A login of `user` happened at `now`. */
  record(user: string, now: number): void {
    this.#last.delete(user);
    this.#last.set(user, now);
    if (this.#last.size > this.#maxEntries) {
      const oldest = this.#last.keys().next().value;
      if (oldest !== undefined) this.#last.delete(oldest);
    }
  }
}
