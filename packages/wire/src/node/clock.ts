import type { Clock, TimerHandle } from '../clock.js';

/** The real clock: `Date.now()` and Node timers, every timer `unref`'d so a pending timeout never keeps the process alive. */
export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout(callback: () => void, ms: number): TimerHandle {
    const timer = setTimeout(callback, ms);
    timer.unref();
    return timer;
  },
  clearTimeout(handle: TimerHandle): void {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
});
