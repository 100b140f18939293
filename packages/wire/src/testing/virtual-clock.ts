import type { Clock, TimerHandle } from '../clock.js';

interface PendingTimer extends TimerHandle {
  readonly id: number;
  readonly due: number;
  readonly callback: () => void;
}

/**
 * A deterministic clock for tests: time moves only when `advance()` is called,
 * and timers fire in due order (ties in creation order).
 */
export class VirtualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers = new Map<number, PendingTimer>();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { id: this.#nextId++, due: this.#now + Math.max(0, ms), callback, unref: () => timer };
    this.#timers.set(timer.id, timer);
    return timer;
  }

  clearTimeout(handle: TimerHandle): void {
    const id = (handle as Partial<PendingTimer>).id;
    if (id !== undefined) this.#timers.delete(id);
  }

  /** Number of timers not yet fired or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Move time forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: PendingTimer | undefined;
      for (const t of this.#timers.values()) {
        if (t.due <= target && (next === undefined || t.due < next.due || (t.due === next.due && t.id < next.id))) next = t;
      }
      if (next === undefined) break;
      this.#timers.delete(next.id);
      this.#now = next.due;
      next.callback();
    }
    this.#now = target;
  }
}
