/**
 * Reading a `MessageSource` (bytes, an async iterable or an iterable of
 * chunks) under `maxMessageBytes`, measuring RFC822.SIZE on the way.
 *
 * The cap applies to the bytes as stored (what the client sent), and is
 * checked before each chunk is kept: a source that goes over it fails with
 * `ERR_STORE_TOO_LARGE` as soon as the chunk that crosses the limit arrives,
 * and nothing past the limit is ever buffered.
 *
 * RFC822.SIZE is the size a client sees over IMAP and POP3, where lines end
 * in CRLF (RFC 9051 §2.3.4): every LF without a CR before it counts two bytes,
 * as Dovecot counts it. A CR at the end of one chunk and an LF at the start of
 * the next are one CRLF.
 */
import { StoreError } from './errors.js';
import type { StoreLimits } from './limits.js';
import type { MessageSource } from './types.js';

/** Sizes of a message: stored bytes and RFC822.SIZE. */
export interface MessageSizes {
  /** Bytes as received and stored. */
  readonly bytes: number;
  /** RFC822.SIZE: `bytes` plus one for every bare LF. */
  readonly size: number;
}

const LF = 0x0a;
const CR = 0x0d;

/** Incremental RFC822.SIZE counter; feed it every chunk in order. */
export class MessageSizeCounter {
  #bytes = 0;
  #bareLf = 0;
  #lastWasCr = false;

  push(chunk: Uint8Array): void {
    let from = 0;
    for (;;) {
      const at = chunk.indexOf(LF, from);
      if (at < 0) break;
      const before = at === 0 ? this.#lastWasCr : chunk[at - 1] === CR;
      if (!before) this.#bareLf++;
      from = at + 1;
    }
    if (chunk.length > 0) this.#lastWasCr = chunk[chunk.length - 1] === CR;
    this.#bytes += chunk.length;
  }

  get sizes(): MessageSizes {
    return { bytes: this.#bytes, size: this.#bytes + this.#bareLf };
  }
}

/** RFC822.SIZE of bytes held in memory. */
export function rfc822Size(bytes: Uint8Array): number {
  const counter = new MessageSizeCounter();
  counter.push(bytes);
  return counter.sizes.size;
}

function tooLarge(max: number): StoreError {
  return new StoreError('ERR_STORE_TOO_LARGE', `message larger than ${max} bytes`);
}

function asChunk(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  // A Readable with setEncoding() yields strings: bytes would be lost or re-encoded.
  throw new TypeError('a MessageSource must yield Uint8Array chunks (do not set an encoding on the stream)');
}

/** The chunks of any `MessageSource`, as one async iterable. */
export async function* sourceChunks(source: MessageSource): AsyncGenerator<Uint8Array, void, undefined> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  if (typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function') {
    for await (const chunk of source as AsyncIterable<unknown>) yield asChunk(chunk);
    return;
  }
  if (typeof (source as Iterable<Uint8Array>)[Symbol.iterator] === 'function') {
    for (const chunk of source as Iterable<unknown>) yield asChunk(chunk);
    return;
  }
  throw new TypeError('a MessageSource is a Uint8Array or an (async) iterable of Uint8Array');
}

/** A metered stream of a message: iterate `chunks` once, then read `sizes()`. */
export interface MeteredSource {
  /** The source's chunks, unchanged (not copied), failing with `ERR_STORE_TOO_LARGE` before yielding one that crosses the cap. */
  readonly chunks: AsyncIterable<Uint8Array>;
  /** The sizes so far; final once `chunks` is exhausted. */
  sizes(): MessageSizes;
}

/**
 * Stream a source under `maxMessageBytes`, for a backend that writes to a
 * file as it reads (Maildir `tmp/`). Chunks are passed through without a
 * copy: write each before asking for the next if the source may reuse its
 * buffers. On `ERR_STORE_TOO_LARGE` the source's iterator is closed
 * (`return()`), which destroys a Node stream.
 */
export function meterMessageSource(source: MessageSource, limits: Pick<StoreLimits, 'maxMessageBytes'>): MeteredSource {
  const counter = new MessageSizeCounter();
  const max = limits.maxMessageBytes;
  async function* run(): AsyncGenerator<Uint8Array, void, undefined> {
    for await (const chunk of sourceChunks(source)) {
      if (counter.sizes.bytes + chunk.length > max) throw tooLarge(max);
      counter.push(chunk);
      if (chunk.length > 0) yield chunk;
    }
  }
  return { chunks: run(), sizes: () => counter.sizes };
}

/**
 * Read a whole source into one Buffer under `maxMessageBytes` (the memory
 * backend; small messages). Chunks are copied, so the source may reuse its
 * buffers.
 */
export async function readMessageSource(
  source: MessageSource,
  limits: Pick<StoreLimits, 'maxMessageBytes'>,
): Promise<MessageSizes & { readonly data: Buffer }> {
  const metered = meterMessageSource(source, limits);
  const parts: Buffer[] = [];
  for await (const chunk of metered.chunks) parts.push(Buffer.from(chunk));
  const sizes = metered.sizes();
  return { ...sizes, data: parts.length === 1 ? parts[0]! : Buffer.concat(parts, sizes.bytes) };
}

/**
 * A body stream that fails on the first `next()`: for methods that return an
 * AsyncIterable and must report a synchronous failure as a rejection.
 */
export function failedSource<T = Uint8Array>(error: unknown): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => Promise.reject(error instanceof Error ? error : new Error(String(error))),
    }),
  };
}
