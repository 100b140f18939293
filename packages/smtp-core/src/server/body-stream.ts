/**
 * The message body handed to `onData`: an `AsyncIterable<Uint8Array>` fed by
 * the session, with backpressure. `push` reports whether the consumer keeps
 * up; the session waits on `drained()` (and the Node adapter pauses the
 * socket) while more than `highWaterMark` bytes wait to be read. A consumer
 * that stops iterating (`break`) detaches: later chunks are dropped, so the
 * session can read the body to its end and stay in sync.
 */
export class BodyStream implements AsyncIterable<Uint8Array> {
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private ended = false;
  private error: Error | undefined = undefined;
  private detached = false;
  private iterating = false;
  private wake: (() => void) | undefined;
  private drainWaiters: (() => void)[] = [];

  constructor(private readonly highWaterMark = 256 * 1024) {}

  /** Queue a chunk; false when the consumer lags (wait on `drained()`). */
  push(chunk: Uint8Array): boolean {
    if (this.detached || this.ended || chunk.length === 0) return true;
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    this.notify();
    return this.queuedBytes < this.highWaterMark;
  }

  /** Resolves once the queue is below the high-water mark, or the consumer went away. */
  drained(): Promise<void> {
    if (this.detached || this.queuedBytes < this.highWaterMark) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** The body is complete. */
  end(): void {
    this.ended = true;
    this.notify();
  }

  /** The body failed (too large, bare line ending, timeout, connection lost): the iterator throws `error`. */
  fail(error: Error): void {
    if (this.ended) return;
    this.error = error;
    this.ended = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.notify();
    this.releaseDrain();
  }

  /** Stop delivering: the hook finished or gave up. */
  detach(): void {
    this.detached = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.releaseDrain();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private releaseDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    if (this.iterating) throw new TypeError('The message body can be read only once');
    this.iterating = true;
    return {
      next: async (): Promise<IteratorResult<Uint8Array>> => {
        for (;;) {
          if (this.error !== undefined) throw this.error;
          const chunk = this.queue.shift();
          if (chunk !== undefined) {
            this.queuedBytes -= chunk.length;
            if (this.queuedBytes < this.highWaterMark) this.releaseDrain();
            return { done: false, value: chunk };
          }
          if (this.ended || this.detached) return { done: true, value: undefined };
          await new Promise<void>((resolve) => (this.wake = resolve));
        }
      },
      return: (): Promise<IteratorResult<Uint8Array>> => {
        this.detach();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }
}
