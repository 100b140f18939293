/**
 * Maildir file names (https://cr.yp.to/proto/maildir.html, Dovecot's
 * maildir-filename*.c): `<base>[:2,<info>]`, where the base is unique
 * (`<sec>.M<usec>P<pid>Q<n>R<rand>.<host>`) and may carry Dovecot's size
 * fields `,S=<physical size>` and `,W=<RFC822.SIZE>`, and the info letters
 * are flags in ASCII order: upper case system flags, lower case keywords
 * (indexes into dovecot-keywords).
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';

export const INFO_SEPARATOR = ':';
export const INFO_PREFIX = ':2,';

/** System flag letters of Maildir, and the IMAP flag each stands for. `P` (passed) has no IMAP flag and is kept as is. */
export const FLAG_LETTERS: ReadonlyMap<string, string> = new Map([
  ['D', '\\Draft'],
  ['F', '\\Flagged'],
  ['R', '\\Answered'],
  ['S', '\\Seen'],
  ['T', '\\Deleted'],
]);
export const LETTER_OF_FLAG: ReadonlyMap<string, string> = new Map([...FLAG_LETTERS].map(([letter, flag]) => [flag, letter]));

export interface ParsedFilename {
  /** The unique part, everything before `:` (what dovecot-uidlist records). */
  readonly base: string;
  /** The info letters after `:2,` (empty when there is no info), in the order found. */
  readonly info: string;
  /** True when the name had a `:2,` part. */
  readonly hasInfo: boolean;
  /** `,S=` physical size, when present. */
  readonly physicalSize?: number;
  /** `,W=` virtual size (RFC822.SIZE, CRLF line ends), when present. */
  readonly virtualSize?: number;
}

function sizeField(base: string, key: 'S' | 'W'): number | undefined {
  // Dovecot's maildir_filename_get_size(): `,<key>=<digits>` ended by `,` or the end of the base.
  // A character scan, not a regular expression: a sync looks at every name of a folder.
  const field = key === 'S' ? ',S=' : ',W=';
  for (let at = base.indexOf(field); at >= 0; at = base.indexOf(field, at + 1)) {
    let k = at + 3;
    let value = 0;
    while (k < base.length) {
      const c = base.charCodeAt(k);
      if (c < 48 || c > 57) break;
      value = value * 10 + (c - 48);
      k++;
    }
    if (k > at + 3 && (k === base.length || base.charCodeAt(k) === 44)) return Number.isSafeInteger(value) ? value : undefined;
  }
  return undefined;
}

/** `parseFilename(name).physicalSize` for a base name (`,S=`), without the object. */
export function physicalSizeOfBase(base: string): number | undefined {
  return sizeField(base, 'S');
}

/** `parseFilename(name).virtualSize` for a base name (`,W=`), without the object. */
export function virtualSizeOfBase(base: string): number | undefined {
  return sizeField(base, 'W');
}

export function parseFilename(name: string): ParsedFilename {
  const colon = name.indexOf(INFO_SEPARATOR);
  const base = colon < 0 ? name : name.slice(0, colon);
  const rest = colon < 0 ? '' : name.slice(colon);
  const hasInfo = rest.startsWith(INFO_PREFIX);
  // Dovecot stops at a further ',' (extra info after the flags).
  const info = hasInfo ? rest.slice(INFO_PREFIX.length).split(',')[0]! : '';
  const physicalSize = sizeField(base, 'S');
  const virtualSize = sizeField(base, 'W');
  return {
    base,
    info,
    hasInfo,
    ...(physicalSize !== undefined ? { physicalSize } : {}),
    ...(virtualSize !== undefined ? { virtualSize } : {}),
  };
}

/** `parseFilename(name).base`, without the size fields' regular expressions (a sync looks at every name). */
export function baseOfName(name: string): string {
  const colon = name.indexOf(INFO_SEPARATOR);
  return colon < 0 ? name : name.slice(0, colon);
}

/** `parseFilename(name).info`, cheaply. */
export function infoOfName(name: string): string {
  const colon = name.indexOf(INFO_SEPARATOR);
  if (colon < 0 || !name.startsWith(INFO_PREFIX, colon)) return '';
  const start = colon + INFO_PREFIX.length;
  const comma = name.indexOf(',', start);
  return comma < 0 ? name.slice(start) : name.slice(start, comma);
}

/** Info letters sorted in ASCII order, duplicates removed (Dovecot writes them so, and so do mutt and Courier). */
export function sortInfo(letters: string): string {
  // Fast path: already in strictly ascending order (what every sync sees for files it named itself).
  let sorted = true;
  for (let i = 1; i < letters.length && sorted; i++) if (letters.charCodeAt(i) <= letters.charCodeAt(i - 1)) sorted = false;
  if (sorted) return letters;
  return [...new Set(letters)].sort().join('');
}

/** The file name in cur/ for a base and info letters. */
export function curName(base: string, info: string): string {
  return `${base}${INFO_PREFIX}${sortInfo(info)}`;
}

/** Split info letters into system flags (as IMAP flags), keyword indexes (0 = 'a') and letters we keep but do not interpret. */
export function splitInfo(info: string): { flags: string[]; keywordIndexes: number[]; other: string } {
  const flags: string[] = [];
  const keywordIndexes: number[] = [];
  let other = '';
  for (const letter of info) {
    const flag = FLAG_LETTERS.get(letter);
    if (flag !== undefined) flags.push(flag);
    else if (letter >= 'a' && letter <= 'z') keywordIndexes.push(letter.charCodeAt(0) - 97);
    else other += letter;
  }
  return { flags, keywordIndexes, other };
}

/**
 * The host part of a unique name: Dovecot and qmail replace `/` and `:` (the
 * path and info separators) by `\057` and `\072`; we also drop `,` which
 * would start a field.
 */
export function safeHostname(host: string = hostname()): string {
  return host.replace(/\//g, '\\057').replace(/:/g, '\\072').replace(/,/g, '\\054') || 'localhost';
}

/** Generates unique base names: `<sec>.M<usec>P<pid>Q<n>R<rand>.<host>` (the qmail/Dovecot form with Q and R for uniqueness within a process). */
export class UniqueNames {
  #count = 0;
  readonly #host = safeHostname();

  next(nowMs: number): string {
    const sec = Math.floor(nowMs / 1000);
    const usec = (nowMs % 1000) * 1000 + (this.#count % 1000);
    this.#count++;
    return `${sec}.M${usec}P${process.pid}Q${this.#count}R${randomBytes(8).toString('hex')}.${this.#host}`;
  }
}

/** The base with Dovecot's size fields: `,S=<physical>,W=<virtual>`. */
export function withSizes(base: string, physicalSize: number, virtualSize: number): string {
  return `${base},S=${physicalSize},W=${virtualSize}`;
}

/**
 * The order in which new files get their UIDs, as Dovecot's
 * maildir_filename_sort_cmp (maildir-filename.c) sorts them: by the leading
 * seconds (as a number, so `999999999.` comes before `1000000000.`), then by
 * the microseconds of an `M<usec>` in the uniqueness part when both names
 * have one (ours do, and Postfix's `<sec>.V<dev>I<ino>M<usec>.<host>`),
 * then by the rest of the base name. Plain string order would number files
 * delivered within one second by device and inode (Postfix) instead of by
 * time, and differently from Dovecot. Names without a `:` compare whole.
 */
export function compareForUids(a: string, b: string): number {
  let i = 0;
  let j = 0;
  let secsA = 0;
  let secsB = 0;
  for (let c = a.charCodeAt(i); c >= 48 && c <= 57; c = a.charCodeAt(++i)) secsA = secsA * 10 + (c - 48);
  for (let c = b.charCodeAt(j); c >= 48 && c <= 57; c = b.charCodeAt(++j)) secsB = secsB * 10 + (c - 48);
  if (secsA !== secsB) return secsA < secsB ? -1 : 1;
  const usecsA = usecsAt(a, i);
  const usecsB = usecsAt(b, j);
  if (usecsA >= 0 && usecsB >= 0 && usecsA !== usecsB) return usecsA < usecsB ? -1 : 1;
  // The rest of the bases, up to the info separator.
  for (;; i++, j++) {
    const endA = i >= a.length || a.charCodeAt(i) === 58;
    const endB = j >= b.length || b.charCodeAt(j) === 58;
    if (endA || endB) return endA && endB ? 0 : endA ? -1 : 1;
    const d = a.charCodeAt(i) - b.charCodeAt(j);
    if (d !== 0) return d;
  }
}

/** The digits after the first `M` of the uniqueness part (`.<uniqueness>.` right after the seconds at `at`); -1 when there is none. */
function usecsAt(name: string, at: number): number {
  if (name.charCodeAt(at) !== 46) return -1;
  for (let k = at + 1; k < name.length; k++) {
    const c = name.charCodeAt(k);
    if (c === 46 || c === 58) return -1;
    if (c === 77) {
      let usecs = 0;
      for (let d = name.charCodeAt(++k); d >= 48 && d <= 57; d = name.charCodeAt(++k)) usecs = usecs * 10 + (d - 48);
      return usecs;
    }
  }
  return -1;
}

/**
 * `names` sorted by {@link compareForUids}, with each name's seconds and
 * microseconds read once (100k names here: ~70 ms, against ~145 ms comparing
 * the strings each time, and ~60 ms for a plain string sort).
 */
export function sortForUids(names: readonly string[]): string[] {
  const n = names.length;
  const secs = new Float64Array(n);
  const usecs = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const name = names[k]!;
    let i = 0;
    let s = 0;
    for (let c = name.charCodeAt(i); c >= 48 && c <= 57; c = name.charCodeAt(++i)) s = s * 10 + (c - 48);
    secs[k] = s;
    usecs[k] = usecsAt(name, i);
  }
  const order = Array.from({ length: n }, (_, k) => k);
  order.sort((x, y) => {
    if (secs[x] !== secs[y]) return secs[x]! < secs[y]! ? -1 : 1;
    const ux = usecs[x]!;
    const uy = usecs[y]!;
    if (ux >= 0 && uy >= 0 && ux !== uy) return ux < uy ? -1 : 1;
    return compareForUids(names[x]!, names[y]!);
  });
  return order.map((k) => names[k]!);
}
