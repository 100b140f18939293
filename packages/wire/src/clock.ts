/**
 * Time is passed in (STYLE habit 8): state machines and the listener runtime
 * take a Clock, so tests drive them on a virtual clock (`VirtualClock` from
 * `@pigeonpost/wire/testing`) and production uses `systemClock` from
 * `@pigeonpost/wire/node`.
 */
export interface TimerHandle {
  /** Let the process exit while this timer is pending (Node's `unref`). */
  unref?(): unknown;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Run `callback` once after `ms` milliseconds. Implementations `unref` their timers. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}
