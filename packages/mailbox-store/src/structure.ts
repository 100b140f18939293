/**
 * The MIME structure of a stored message, computed once (at delivery) and
 * cached, so FETCH BODYSTRUCTURE and section reads never re-parse.
 *
 * TODO(mime): @pigeonpost/mime has no `src/index.ts` yet. `MessageStructure`
 * and `computeStructure` below are a minimal local stand-in (the header/body
 * split of the top-level part). When the mime package lands:
 *   1. replace the stand-in interface with
 *      `export type { MessageStructure } from '@pigeonpost/mime';`
 *   2. make `computeStructure` feed the chunks to mime's parser;
 *   3. restore `import type { MessageStructure } from '@pigeonpost/mime'` in types.ts.
 * Nothing else in the package depends on the fields of the stand-in.
 */
import { sourceChunks } from './source.js';
import type { MessageSource } from './types.js';

/** STAND-IN (see the TODO above): the header/body split of the message. */
export interface MessageStructure {
  /** Marks the stand-in; the real type has its own version field. */
  readonly version: 0;
  /** Stored bytes of the message. */
  readonly bytes: number;
  /** Bytes of the header block, including the empty line that ends it. */
  readonly headerBytes: number;
  /** Lines of the body (IMAP BODYSTRUCTURE `body-fld-lines`). */
  readonly bodyLines: number;
}

const LF = 0x0a;
const CR = 0x0d;

/** Compute the structure of a whole message (bytes or chunks). */
export async function computeStructure(source: MessageSource): Promise<MessageStructure> {
  let bytes = 0;
  let headerBytes = -1;
  let bodyLines = 0;
  let lastBodyByte = -1;
  // Header end: an LF followed by LF or CRLF. `state`: 1 after an LF, 2 after LF CR.
  let state = 1;
  for await (const chunk of sourceChunks(source)) {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (headerBytes < 0) {
        if (b === LF) {
          if (state >= 1) headerBytes = bytes + i + 1;
          state = 1;
        } else if (b === CR && state === 1) state = 2;
        else state = 0;
      } else {
        if (b === LF) bodyLines++;
        lastBodyByte = b;
      }
    }
    bytes += chunk.length;
  }
  if (headerBytes < 0) headerBytes = bytes;
  if (lastBodyByte !== -1 && lastBodyByte !== LF) bodyLines++;
  return { version: 0, bytes, headerBytes, bodyLines };
}

export interface StructureCacheOptions {
  /** Structures kept, least recently used dropped first. Default 1000. */
  readonly maxEntries?: number;
}

/**
 * A bounded LRU cache of structures by key (for example the emailId or the
 * Maildir file name), for a backend that computes them lazily or keeps only
 * some in memory. Concurrent requests for one key share one computation.
 */
export class StructureCache {
  readonly #max: number;
  readonly #entries = new Map<string, Promise<MessageStructure>>();

  constructor(options: StructureCacheOptions = {}) {
    this.#max = Math.max(0, options.maxEntries ?? 1000);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: string, compute: () => Promise<MessageStructure>): Promise<MessageStructure> {
    const hit = this.#entries.get(key);
    if (hit !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return hit;
    }
    const pending = compute();
    if (this.#max === 0) return pending;
    this.#entries.set(key, pending);
    // A failed computation is not cached: the next request tries again.
    pending.catch(() => {
      if (this.#entries.get(key) === pending) this.#entries.delete(key);
    });
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
    return pending;
  }

  set(key: string, structure: MessageStructure): void {
    this.#entries.delete(key);
    this.#entries.set(key, Promise.resolve(structure));
    while (this.#entries.size > this.#max) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}
