/**
 * The RFC 5322 §3.2 lexical tokens (CFWS, atom, dot-atom, quoted-string,
 * phrase, domain) and the RFC 2045 §5.1 MIME token, over a *byte string*: a
 * JS string with one char per byte (latin1), so 8-bit header bytes pass
 * through untouched and come out byte for byte.
 *
 * The lenient rules follow Dovecot's lib-mail rfc822-parser, because IMAP
 * ENVELOPE and BODYSTRUCTURE must come out as Dovecot's do: whitespace is
 * allowed around the dots of a dot-atom (RFC 822 compatibility), `obs-phrase`
 * dots are kept, folding (CR)LF inside quoted strings and comments is dropped,
 * and a NUL byte becomes U+FFFD (as UTF-8 bytes). Every function returns what
 * Dovecot's does: -1 for a syntax error, 0 at the end of the input, 1 when
 * more input follows.
 */

/** U+FFFD in UTF-8, as a byte string: what a NUL byte inside a token becomes. */
export const NUL_REPLACEMENT = '\xEF\xBF\xBD';

/**
 * 1: atext; 2: atext and MIME token char (letters, digits, 8-bit);
 * 4: atext but a MIME tspecial ('/', '=', '?').
 */
const ATEXT = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c >= 0x80) ATEXT[c] = 2;
}
for (const ch of "!#$%&'*+-^_`{|}~") ATEXT[ch.charCodeAt(0)] = 1;
for (const ch of '/=?') ATEXT[ch.charCodeAt(0)] = 4;

/** `run` masks: any atext (isAtext), MIME token chars (isTokenChar). */
const ATEXT_MASK = 7;
const TOKEN_MASK = 3;

export function isAtext(c: number): boolean {
  return ATEXT[c & 0xff] !== 0;
}
/** A MIME token char (RFC 2045 §5.1): atext less the tspecials. */
export function isTokenChar(c: number): boolean {
  return ((ATEXT[c & 0xff] ?? 0) & 3) !== 0;
}

export class Lexer {
  pos = 0;
  /** Text of the last comment skipped, when `trackComments`; the address parser uses it as a display name. */
  lastComment = '';
  nulReplacement: string | undefined;

  constructor(
    readonly data: string,
    readonly trackComments = false,
  ) {}

  get atEnd(): boolean {
    return this.pos >= this.data.length;
  }
  /** The current byte, or -1 at the end. */
  peek(): number {
    return this.pos < this.data.length ? this.data.charCodeAt(this.pos) : -1;
  }
  /** 1 if input remains, 0 at the end. */
  more(): 0 | 1 {
    return this.pos < this.data.length ? 1 : 0;
  }

  /** RFC 5322 §3.2.2 comment, nested; the current byte is '('. */
  skipComment(): -1 | 0 | 1 {
    const d = this.data;
    if (this.trackComments) this.lastComment = '';
    let level = 1;
    let start = ++this.pos;
    let text = '';
    for (; this.pos < d.length; this.pos++) {
      const c = d.charCodeAt(this.pos);
      if (c === 0) {
        if (this.nulReplacement !== undefined) {
          text += d.slice(start, this.pos) + this.nulReplacement;
          start = this.pos + 1;
        }
      } else if (c === 0x28) {
        level++;
      } else if (c === 0x29) {
        if (--level === 0) {
          if (this.trackComments) this.lastComment = text + d.slice(start, this.pos);
          this.pos++;
          return this.more();
        }
      } else if (c === 0x0a) {
        // Folding inside a comment: the (CR)LF goes, the whitespace stays.
        let end = this.pos;
        if (end > start && d.charCodeAt(end - 1) === 0x0d) end--;
        text += d.slice(start, end);
        start = this.pos + 1;
      } else if (c === 0x5c) {
        this.pos++;
        if (this.pos >= d.length) return -1;
        const n = d.charCodeAt(this.pos);
        if (n === 0x0d || n === 0x0a || n === 0) {
          // Not a quoted-pair (obs-qp): keep the backslash, look at the byte again.
          this.pos--;
          continue;
        }
        text += d.slice(start, this.pos - 1);
        start = this.pos;
      }
    }
    return -1;
  }

  /** Skip CFWS (RFC 5322 §3.2.2). */
  skipLwsp(): -1 | 0 | 1 {
    const d = this.data;
    while (this.pos < d.length) {
      const c = d.charCodeAt(this.pos);
      if (c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) {
        this.pos++;
        continue;
      }
      if (c !== 0x28) break;
      if (this.skipComment() < 0) return -1;
    }
    return this.more();
  }

  /** atom = [CFWS] 1*atext [CFWS] */
  atom(out: string[]): -1 | 0 | 1 {
    const d = this.data;
    if (this.pos >= d.length || !isAtext(d.charCodeAt(this.pos))) return -1;
    const start = this.pos++;
    while (this.pos < d.length && isAtext(d.charCodeAt(this.pos))) this.pos++;
    out.push(d.slice(start, this.pos));
    return this.pos < d.length ? this.skipLwsp() : 0;
  }

  /** dot-atom, with CFWS allowed around the dots (RFC 822). */
  dotAtom(out: string[]): -1 | 0 | 1 {
    const d = this.data;
    if (this.pos >= d.length || !isAtext(d.charCodeAt(this.pos))) return -1;
    let start = this.pos++;
    while (this.pos < d.length) {
      if (isAtext(d.charCodeAt(this.pos))) {
        this.pos++;
        continue;
      }
      if (start === this.pos) return -1;
      out.push(d.slice(start, this.pos));
      const ret = this.skipLwsp();
      if (ret <= 0) return ret;
      if (d.charCodeAt(this.pos) !== 0x2e) return 1;
      this.pos++;
      out.push('.');
      if (this.skipLwsp() <= 0) return -1;
      start = this.pos;
    }
    out.push(d.slice(start, this.pos));
    return 0;
  }

  /** RFC 2045 token (dots allowed too, as Dovecot does); may be empty. */
  mimeToken(out: string[]): -1 | 0 | 1 {
    return this.run(out, TOKEN_MASK);
  }

  /** quoted-string; the current byte is '"'. Quoted-pairs are unescaped, folding (CR)LF dropped. */
  quotedString(out: string[]): -1 | 0 | 1 {
    const d = this.data;
    this.pos++;
    let start = this.pos;
    for (; this.pos < d.length; this.pos++) {
      const c = d.charCodeAt(this.pos);
      if (c === 0) {
        if (this.nulReplacement !== undefined) {
          out.push(d.slice(start, this.pos), this.nulReplacement);
          start = this.pos + 1;
        }
      } else if (c === 0x22) {
        out.push(d.slice(start, this.pos));
        this.pos++;
        return this.skipLwsp();
      } else if (c === 0x0a) {
        let end = this.pos;
        if (end > start && d.charCodeAt(end - 1) === 0x0d) end--;
        out.push(d.slice(start, end));
        start = this.pos + 1;
      } else if (c === 0x5c) {
        this.pos++;
        if (this.pos >= d.length) return -1;
        const n = d.charCodeAt(this.pos);
        if (n === 0x0d || n === 0x0a || n === 0) {
          this.pos--;
          continue;
        }
        out.push(d.slice(start, this.pos - 1));
        start = this.pos;
      }
    }
    return -1;
  }

  private atomOrDot(out: string[]): -1 | 0 | 1 {
    return this.run(out, ATEXT_MASK);
  }

  /** The longest run of bytes whose ATEXT class is in `mask` (or '.'), pushed to `out`, then any white space after it. */
  private run(out: string[], mask: number): -1 | 0 | 1 {
    const d = this.data;
    const start = this.pos;
    while (this.pos < d.length) {
      const c = d.charCodeAt(this.pos);
      if ((ATEXT[c & 0xff]! & mask) !== 0 || c === 0x2e) this.pos++;
      else break;
    }
    out.push(d.slice(start, this.pos));
    return this.pos < d.length ? this.skipLwsp() : 0;
  }

  /** phrase = 1*word / obs-phrase; words are joined with one space. */
  phrase(out: string[]): -1 | 0 | 1 {
    const d = this.data;
    if (this.pos >= d.length) return 0;
    if (d.charCodeAt(this.pos) === 0x2e) return -1;
    for (;;) {
      const ret = d.charCodeAt(this.pos) === 0x22 ? this.quotedString(out) : this.atomOrDot(out);
      if (ret <= 0) return ret;
      const c = d.charCodeAt(this.pos);
      if (!isAtext(c) && c !== 0x22 && c !== 0x2e) break;
      out.push(' ');
    }
    return this.skipLwsp();
  }

  private domainLiteral(out: string[]): -1 | 0 | 1 {
    const d = this.data;
    let start = this.pos++;
    for (; this.pos < d.length; this.pos++) {
      const c = d.charCodeAt(this.pos);
      if (c === 0) {
        if (this.nulReplacement !== undefined) {
          out.push(d.slice(start, this.pos), this.nulReplacement);
          start = this.pos + 1;
        }
      } else if (c === 0x5b) {
        return -1;
      } else if (c === 0x5d) {
        out.push(d.slice(start, this.pos + 1));
        this.pos++;
        return this.skipLwsp();
      } else if (c === 0x0a) {
        let end = this.pos;
        if (end > start && d.charCodeAt(end - 1) === 0x0d) end--;
        out.push(d.slice(start, end));
        start = this.pos + 1;
      } else if (c === 0x5c) {
        // The backslash of a quoted-pair is kept in a domain literal.
        this.pos++;
        if (this.pos >= d.length) return -1;
        const n = d.charCodeAt(this.pos);
        if (n === 0x0d || n === 0x0a || n === 0) {
          out.push(d.slice(start, this.pos));
          start = this.pos;
          this.pos--;
        }
      }
    }
    return -1;
  }

  /** domain after '@' (the current byte): dot-atom or domain-literal. */
  domain(out: string[]): -1 | 0 | 1 {
    this.pos++;
    if (this.skipLwsp() <= 0) return -1;
    return this.peek() === 0x5b ? this.domainLiteral(out) : this.dotAtom(out);
  }

  /** `type/subtype`, as RFC 2045 §5.1 (lenient like Dovecot). On error the output is empty. */
  contentType(): { ret: -1 | 0 | 1; value: string } {
    if (this.skipLwsp() <= 0) return { ret: -1, value: '' };
    const type: string[] = [];
    // A type alone ("text") is kept, as Dovecot keeps it: only the subtype is missing.
    if (this.mimeToken(type) <= 0 || type[0] === '') return { ret: -1, value: type[0] ?? '' };
    if (this.peek() !== 0x2f) return { ret: -1, value: '' };
    this.pos++;
    if (this.skipLwsp() <= 0) return { ret: -1, value: '' };
    const sub: string[] = [];
    const ret = this.mimeToken(sub);
    if (ret < 0 || sub[0] === '' || (!this.atEnd && this.peek() !== 0x3b)) return { ret: -1, value: '' };
    return { ret, value: `${type[0]}/${sub[0]}` };
  }

  /** One `; attribute=value`; key undefined at the end of input. */
  contentParam(): { ret: -1 | 0 | 1; key?: string; value: string } {
    if (this.atEnd) return { ret: 0, value: '' };
    if (this.peek() !== 0x3b) return { ret: -1, value: '' };
    this.pos++;
    if (this.skipLwsp() <= 0) return { ret: -1, value: '' };
    const key: string[] = [];
    if (this.mimeToken(key) <= 0) return { ret: -1, value: '' };
    if (this.peek() !== 0x3d) return { ret: -1, value: '' };
    this.pos++;
    const value: string[] = [];
    let ret = this.skipLwsp();
    if (ret <= 0) {
      // no value
    } else if (this.peek() === 0x22) {
      ret = this.quotedString(value);
    } else if (this.peek() === 0x3d) {
      // Broken input such as name==?utf-8?b?...?=: take it up to ; or whitespace.
      const d = this.data;
      const start = this.pos;
      while (this.pos < d.length) {
        const c = d.charCodeAt(this.pos);
        if (c === 0x3b || c === 0x20 || c === 0x09 || c === 0x0d || c === 0x0a) break;
        this.pos++;
      }
      value.push(d.slice(start, this.pos));
    } else {
      ret = this.mimeToken(value);
    }
    return { ret: ret < 0 ? -1 : 1, key: key.join(''), value: value.join('') };
  }
}
