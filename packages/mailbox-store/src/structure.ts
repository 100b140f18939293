/**
 * The MIME structure of a stored message, computed once (at delivery) and
 * cached, so FETCH BODYSTRUCTURE and section reads never re-parse. The
 * structure is @pigeonpost/mime's: byte offsets of every part in the stored
 * bytes, versioned and JSON-serialisable so backends can keep it in an index.
 */
import { MimeParser } from '@pigeonpost/mime';
import type { MessageStructure } from '@pigeonpost/mime';
import { sourceChunks } from './source.js';
import type { MessageSource } from './types.js';

export type { MessageStructure };

/** Compute the structure of a whole message (bytes or chunks), in bounded memory. */
export async function computeStructure(source: MessageSource): Promise<MessageStructure> {
  const parser = new MimeParser();
  for await (const chunk of sourceChunks(source)) parser.push(chunk);
  return parser.end();
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
