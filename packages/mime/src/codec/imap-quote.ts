/**
 * IMAP string syntax (RFC 3501 §4.3, RFC 9051 §4.3) for byte strings (one
 * char per byte), with the exact choices Dovecot makes, so that our ENVELOPE
 * and BODYSTRUCTURE are byte-identical to its: a quoted string when the value
 * is 7-bit without CR/LF and has at most 4 quoted-specials, otherwise a
 * literal; NIL for an absent value.
 */

/** After this many `"` or `\`, a literal is shorter than escaping (Dovecot's QUOTED_MAX_ESCAPE_CHARS). */
const MAX_ESCAPES = 4;

function literal(s: string): string {
  return `{${s.length}}\r\n${s}`;
}

/** `"..."` with `"` and `\` escaped; CR, LF and 8-bit bytes dropped (they cannot be quoted). */
export function imapQuoted(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c >= 0x80) continue;
    if (c === 0x22 || c === 0x5c) out += '\\';
    out += s[i];
  }
  return out + '"';
}

/** string / nstring: quoted when it can be, else a literal; null → NIL. */
export function imapString(s: string | null | undefined): string {
  if (s === null || s === undefined) return 'NIL';
  let escapes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) {
      if (escapes++ < MAX_ESCAPES) continue;
      return literal(s);
    }
    if (c === 0x0d || c === 0x0a || c >= 0x80) return literal(s);
  }
  // Nothing for imapQuoted to drop here; only '"' and '\\' to escape, if any.
  return escapes === 0 ? `"${s}"` : `"${s.replace(/["\\]/g, '\\$&')}"`;
}

/** nstring with folding removed: CR/LF dropped, a space put where a line did not start with one. */
export function imapStringNoLf(s: string | null | undefined): string {
  if (s === null || s === undefined || (!s.includes('\n') && !s.includes('\r'))) return imapString(s);
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\r' && c !== '\n') {
      out += c;
      continue;
    }
    const next = s[i + 1];
    if (next !== undefined && next !== ' ' && next !== '\t' && next !== '\r' && next !== '\n') out += ' ';
  }
  return imapString(out);
}

/**
 * A value for people (a subject, a display name): whitespace runs become one
 * space and leading/trailing whitespace goes; written as a literal whenever
 * anything had to change or it has 8-bit bytes or quoted-specials, `""` when
 * nothing but whitespace was there. This is Dovecot's
 * imap_append_string_for_humans, byte for byte.
 */
export function imapStringForHumans(s: string): string {
  let modify = false;
  let lastLwsp = true;
  let wsPrefix = true;
  let remove = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) {
      lastLwsp = false;
      modify = true;
    } else if (c === 0x0d || c === 0x0a || c === 0x09 || c === 0x20) {
      if (c !== 0x20) modify = true;
      if (lastLwsp) {
        modify = true;
        remove++;
      }
      lastLwsp = true;
    } else if (c === 0x22 || c === 0x5c) {
      modify = true;
      lastLwsp = false;
    } else {
      if (c >= 0x80) modify = true;
      lastLwsp = false;
    }
    if (!lastLwsp) wsPrefix = false;
  }
  if (lastLwsp && s.length > 0 && !wsPrefix) {
    modify = true;
    remove++;
  }
  if (!modify) return `"${s}"`;
  if (s.length === remove) return '""';
  let out = '';
  lastLwsp = true;
  wsPrefix = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0) {
      out += '\x80';
      lastLwsp = false;
    } else if (c === 0x0d || c === 0x0a || c === 0x09 || c === 0x20) {
      if (!lastLwsp) out += ' ';
      lastLwsp = true;
    } else {
      lastLwsp = false;
      out += s[i];
    }
    if (!lastLwsp) wsPrefix = false;
  }
  if (lastLwsp && s.length > 0 && !wsPrefix) out = out.slice(0, -1);
  return literal(out);
}
