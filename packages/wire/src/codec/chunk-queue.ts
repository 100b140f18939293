/**
 * The receive buffer shared by the line framer and the DATA decoder: a FIFO of
 * the chunks pushed by the caller, read in place.
 *
 * Why not one growing Buffer (as h11's ReceiveBuffer does with a bytearray):
 * appending to a Buffer means copying it, and a framer that copies its backlog
 * on every push is O(n²) on a slow trickle of bytes. Here a pushed chunk is
 * kept by reference and never copied until a frame actually spans two chunks,
 * and frames that sit inside one chunk are handed out as zero-copy subarrays.
 *
 * Internal to the codec: not exported from the package.
 */
import { Buffer } from 'node:buffer';

/** A Buffer view of `chunk` without copying it. */
export function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

export const EMPTY: Buffer = Buffer.alloc(0);

export class ChunkQueue {
  /** Chunks not fully read; entries before `#head` are spent. Invariant: every live chunk is non-empty. */
  #chunks: (Buffer | undefined)[] = [];
  #head = 0;
  /** Bytes of `#chunks[#head]` already read. Invariant: less than its length. */
  #offset = 0;
  #size = 0;

  /** Bytes pushed and not yet consumed. */
  get size(): number {
    return this.#size;
  }

  /** Read position inside `peek()`. */
  get offset(): number {
    return this.#offset;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /** The chunk being read (from `offset`), or undefined when the queue is empty. */
  peek(): Buffer | undefined {
    return this.#chunks[this.#head];
  }

  /** Mark the current chunk read up to `pos` (an index into `peek()`, at least `offset`). */
  consumeTo(pos: number): void {
    const chunk = this.#chunks[this.#head];
    if (chunk === undefined) return;
    this.#size -= pos - this.#offset;
    if (pos < chunk.length) {
      this.#offset = pos;
      return;
    }
    // Drop the spent chunk so it can be collected; compact the array now and
    // then rather than shift() on every chunk (shift is O(n) on long queues).
    this.#chunks[this.#head] = undefined;
    this.#head++;
    this.#offset = 0;
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Everything not yet consumed, as one Buffer (one copy at most), and empty the queue. */
  takeAll(): Buffer {
    const first = this.#chunks[this.#head];
    if (first === undefined) return EMPTY;
    let out: Buffer;
    if (this.#head === this.#chunks.length - 1) {
      out = first.subarray(this.#offset);
    } else {
      const parts: Buffer[] = [first.subarray(this.#offset)];
      for (let i = this.#head + 1; i < this.#chunks.length; i++) {
        const c = this.#chunks[i];
        if (c !== undefined) parts.push(c);
      }
      out = Buffer.concat(parts, this.#size);
    }
    this.clear();
    return out;
  }

  /** Drop everything not yet consumed; returns how many bytes were dropped. */
  clear(): number {
    const dropped = this.#size;
    this.#chunks = [];
    this.#head = 0;
    this.#offset = 0;
    this.#size = 0;
    return dropped;
  }
}
