import type { Lexer} from './rfc822-lexer.js';
import { NUL_REPLACEMENT } from './rfc822-lexer.js';
import { newList, pair } from './alloc.js';

/** One MIME parameter, `[name, value]`, both byte strings, as they stand in the header (RFC 2231 continuations merged). */
export type MimeParam = readonly [name: string, value: string];

/**
 * Parse the `; name=value` list after a Content-Type or Content-Disposition
 * value, merging RFC 2231 §3 continuations (`name*0`, `name*1*`, …) into one
 * `name` or `name*` parameter, still encoded: IMAP BODYSTRUCTURE carries the
 * parameters this way (Dovecot does the same), and `decodeParams` decodes them.
 * Continuations with a missing index are kept as they are, as Dovecot does.
 */
export function parseParams(lexer: Lexer): { params: MimeParam[]; broken: boolean } {
  const saved = lexer.nulReplacement;
  lexer.nulReplacement = NUL_REPLACEMENT;
  const result = newList<[string, string]>();
  const sections: { key: string; value: string; idx: number; extended: boolean }[] = [];
  let broken = false;
  // Dovecot keeps the index of the previous section for a bare `name*` (it
  // never resets it); kept so that even odd input merges the same way.
  let idx = 0;
  for (;;) {
    const { ret, key, value } = lexer.contentParam();
    if (ret === 0) break;
    if (ret < 0 || key === undefined) {
      // Skip one byte and try again, as Dovecot's rfc2231_parse does.
      broken = true;
      if (lexer.atEnd) break;
      lexer.pos++;
      continue;
    }
    const star = key.indexOf('*');
    if (star < 0) {
      result.push(pair(key, value));
      continue;
    }
    let p = star;
    if (p + 1 < key.length) {
      p++;
      idx = 0;
      while (p < key.length && key.charCodeAt(p) >= 0x30 && key.charCodeAt(p) <= 0x39) {
        idx = idx * 10 + key.charCodeAt(p) - 0x30;
        p++;
      }
    }
    let extended = false;
    if (key[p] === '*') {
      extended = true;
      p++;
    }
    if (p !== key.length) {
      result.push(pair(key, value));
    } else {
      sections.push({ key: key.slice(0, star), value, idx, extended });
    }
  }
  lexer.nulReplacement = saved;
  if (sections.length === 0) return { params: result, broken };
  // Sorted by name (byte order, as strcmp) then index, so out-of-order sections still merge.
  sections.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.idx - b.idx));
  for (let i = 0; i < sections.length; ) {
    const first = sections[i]!;
    let j = i;
    let ok = true;
    let haveExtended = false;
    let next = 0;
    for (; j < sections.length && sections[j]!.key.toLowerCase() === first.key.toLowerCase(); j++) {
      if (sections[j]!.idx !== next) ok = false;
      if (sections[j]!.extended) haveExtended = true;
      next++;
    }
    if (!ok) {
      for (let k = i; k < j; k++) {
        const s = sections[k]!;
        result.push(pair(`${s.key}*${s.idx}${s.extended ? '*' : ''}`, s.value));
      }
    } else {
      let value = !first.extended && haveExtended ? "''" : '';
      for (let k = i; k < j; k++) {
        const s = sections[k]!;
        // A plain section inside an extended value is literal text: escape its '%'.
        value += !s.extended && haveExtended ? s.value.replaceAll('%', '%25') : s.value;
      }
      result.push(pair(haveExtended ? `${first.key}*` : first.key, value));
    }
    i = j;
  }
  return { params: result, broken };
}
