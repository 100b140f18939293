/**
 * dovecot-keywords (Dovecot maildir-keywords.c): one line per keyword,
 * `<index> <name>\n`, index 0 is the letter `a` in file names, 25 is `z`.
 * Lines that do not parse, indexes out of range and duplicate names are
 * skipped, as Dovecot skips them. Pure: no I/O here.
 */
import { StoreError } from '../errors.js';
import { flagKey } from '../flags.js';

export const MAILDIR_MAX_KEYWORDS = 26;

export function parseKeywordsFile(text: string): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  const seen = new Set<string>();
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ');
    if (space <= 0) continue;
    const idxText = line.slice(0, space);
    const name = line.slice(space + 1);
    if (!/^\d+$/.test(idxText) || name === '') continue;
    const idx = Number(idxText);
    if (idx >= MAILDIR_MAX_KEYWORDS || seen.has(name) || out[idx] !== undefined) continue;
    seen.add(name);
    out[idx] = name;
  }
  return out;
}

export function serializeKeywordsFile(keywords: readonly (string | undefined)[]): string {
  let out = '';
  keywords.forEach((name, idx) => {
    if (name !== undefined) out += `${idx} ${name}\n`;
  });
  return out;
}

/** A mailbox's keyword ↔ letter table. Comparisons are case-insensitive; the first spelling is kept. */
export class KeywordTable {
  readonly #slots: (string | undefined)[];
  readonly #byKey = new Map<string, number>();
  readonly #max: number;

  constructor(slots: readonly (string | undefined)[], maxKeywords: number) {
    this.#slots = [...slots];
    this.#max = Math.min(MAILDIR_MAX_KEYWORDS, maxKeywords);
    this.#slots.forEach((name, idx) => {
      if (name !== undefined && !this.#byKey.has(flagKey(name))) this.#byKey.set(flagKey(name), idx);
    });
  }

  get slots(): readonly (string | undefined)[] {
    return this.#slots;
  }

  nameAt(idx: number): string | undefined {
    return this.#slots[idx];
  }

  letterOf(keyword: string): string | undefined {
    const idx = this.#byKey.get(flagKey(keyword));
    return idx === undefined ? undefined : String.fromCharCode(97 + idx);
  }

  canonical(keyword: string): string {
    const idx = this.#byKey.get(flagKey(keyword));
    return idx === undefined ? keyword : this.#slots[idx]!;
  }

  /** Add the keywords not yet known; returns true when the table changed. Throws ERR_STORE_LIMIT, adding nothing, past the limit. */
  add(keywords: readonly string[]): boolean {
    const fresh = new Map<string, string>();
    for (const k of keywords) if (!this.#byKey.has(flagKey(k)) && !fresh.has(flagKey(k))) fresh.set(flagKey(k), k);
    if (fresh.size === 0) return false;
    if (this.#byKey.size + fresh.size > this.#max) {
      throw new StoreError('ERR_STORE_LIMIT', `a mailbox can hold at most ${this.#max} distinct keywords`);
    }
    for (const [key, name] of fresh) {
      let idx = 0;
      while (this.#slots[idx] !== undefined) idx++;
      if (idx >= MAILDIR_MAX_KEYWORDS) throw new StoreError('ERR_STORE_LIMIT', `a mailbox can hold at most ${MAILDIR_MAX_KEYWORDS} distinct keywords`);
      this.#slots[idx] = name;
      this.#byKey.set(key, idx);
    }
    return true;
  }
}
