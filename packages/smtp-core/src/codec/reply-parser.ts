/**
 * Incremental parser of SMTP server replies (RFC 5321 §4.2), for the client.
 *
 * Bytes go in with `push()`; complete replies come out of `next()` one at a
 * time. Framing is wire's `LineFramer` (hard line cap before any parsing,
 * STYLE habit 3), so a reply is the same whatever the chunking of its bytes.
 * Parsing is lazy on purpose: after the `220` to STARTTLS the client must be
 * able to drop every byte that followed it, unparsed (RFC 3207 §4.2,
 * CVE-2011-0411's mirror on the client side), so `next()` never reads past
 * the reply it returns.
 *
 * Replies are `SmtpReply` values (`./reply.ts`, shared with the server):
 * `code`, `enhanced` (RFC 3463, from the first line, when the server sent
 * one) and the text of each `lines` entry without the code, separator and
 * enhanced code; control characters in the text become `?`.
 *
 * A server mistake is an `error` event carrying an `SmtpClientError`
 * (`ERR_SMTP_CLIENT_MALFORMED_REPLY`, side `'remote'`); nothing here throws.
 */
import { LineFramer } from '@pigeonpost/wire';
import type { LineFramerEvent } from '@pigeonpost/wire';
import { SmtpClientError } from '../errors.js';
import type { SmtpReply } from './reply.js';
import { defaultSmtpClientLimits } from '../limits.js';

export type ReplyParserEvent =
  | { readonly type: 'reply'; readonly reply: SmtpReply }
  | { readonly type: 'error'; readonly error: SmtpClientError };

export interface ReplyParserOptions {
  /** Longest reply line, CRLF included. Default `defaultSmtpClientLimits.maxReplyLineLength` (4096). */
  readonly maxReplyLineLength?: number;
  /** Most lines in one reply. Default `defaultSmtpClientLimits.maxReplyLines` (128). */
  readonly maxReplyLines?: number;
  /** Accept a bare LF as a line ending (lenient mode for sloppy servers). Default false: RFC 5321 §2.3.8. */
  readonly allowBareLf?: boolean;
}

// RFC 5321 §4.2: Reply-code = %x32-35 %x30-35 %x30-39. The middle digit is
// allowed up to 9: servers in the wild use x6y-x9y codes, and RFC 5321 §4.2
// asks clients to act on the first digit anyway.
const REPLY_LINE = /^([2-5][0-9][0-9])(?:([ -])(.*))?$/s;
// RFC 3463 §2 / RFC 2034 §4: class "." subject "." detail, then SP or end of line.
const ENHANCED = /^([245])\.(\d{1,3})\.(\d{1,3})(?: |$)/;
// eslint-disable-next-line no-control-regex -- the point is to remove control characters
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/g;

const decoder = new TextDecoder('utf-8');

function malformed(message: string): SmtpClientError {
  return new SmtpClientError('ERR_SMTP_CLIENT_MALFORMED_REPLY', message, { side: 'remote' });
}

/** A short printable excerpt of a line, for error messages (never the whole line). */
function excerpt(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/**
 * Split an RFC 3463 enhanced status code off the front of a reply line, when
 * its class agrees with the reply code's first digit (RFC 3463 §2: a 250 can
 * only carry 2.x.x). Otherwise the text is left as it is.
 */
export function splitEnhancedCode(code: number, text: string): { enhanced: string | undefined; text: string } {
  const m = ENHANCED.exec(text);
  if (m === null || m[1] !== String(code).charAt(0)) return { enhanced: undefined, text };
  return { enhanced: `${m[1]}.${m[2]}.${m[3]}`, text: text.slice(m[0].length) };
}

export class ReplyParser implements Iterable<ReplyParserEvent> {
  readonly #framer: LineFramer;
  readonly #maxLines: number;
  #code: number | undefined;
  #enhanced: string | undefined;
  #lines: string[] = [];
  /** Bytes of the lines of the reply in progress (for `discardBuffered`). */
  #partialBytes = 0;

  constructor(options: ReplyParserOptions = {}) {
    const maxLineLength = options.maxReplyLineLength ?? defaultSmtpClientLimits.maxReplyLineLength;
    this.#maxLines = options.maxReplyLines ?? defaultSmtpClientLimits.maxReplyLines;
    this.#framer = new LineFramer({ maxLineLength, allowBareLf: options.allowBareLf === true });
  }

  /** Give the parser bytes received from the server. Do not change the chunk afterwards. */
  push(chunk: Uint8Array): void {
    this.#framer.push(chunk);
  }

  /** The next complete reply or error, or `undefined` when more bytes are needed. */
  next(): ReplyParserEvent | undefined {
    for (;;) {
      const ev: LineFramerEvent | undefined = this.#framer.next();
      if (ev === undefined) return undefined;
      if (ev.type === 'error') {
        this.#reset();
        return { type: 'error', error: malformed(`reply line longer than the limit: ${ev.error.message}`) };
      }
      if (ev.type !== 'line') continue; // literals are off: never happens
      const out = this.#line(ev.line, ev.bareCr || ev.bareLf);
      if (out !== undefined) return out;
    }
  }

  [Symbol.iterator](): Iterator<ReplyParserEvent> {
    return { next: () => {
      const value = this.next();
      return value === undefined ? { done: true, value: undefined } : { done: false, value };
    } };
  }

  /**
   * Drop every byte received but not yet returned as a reply (a partial reply
   * included) and return how many bytes that was. Called right after the 220
   * to STARTTLS: whatever followed it came in plaintext and must never be
   * read as if it came over TLS (RFC 3207 §4.2).
   */
  discardBuffered(): number {
    const dropped = this.#framer.discardBuffered() + this.#partialBytes;
    this.#reset();
    return dropped;
  }

  /** True when a multiline reply has started but not ended. */
  get inReply(): boolean {
    return this.#code !== undefined;
  }

  #reset(): void {
    this.#code = undefined;
    this.#enhanced = undefined;
    this.#lines = [];
    this.#partialBytes = 0;
  }

  #line(bytes: Buffer, bare: boolean): ReplyParserEvent | undefined {
    const raw = decoder.decode(bytes);
    if (bare) {
      this.#reset();
      return { type: 'error', error: malformed(`bare CR or LF in reply line ${excerpt(raw.replace(CONTROL, '?'))}`) };
    }
    const m = REPLY_LINE.exec(raw);
    if (m === null) {
      this.#reset();
      return { type: 'error', error: malformed(`reply line does not start with a reply code: ${excerpt(raw.replace(CONTROL, '?'))}`) };
    }
    const code = Number(m[1]);
    const more = m[2] === '-';
    const { enhanced, text } = splitEnhancedCode(code, (m[3] ?? '').replace(CONTROL, '?'));
    if (this.#code === undefined) {
      this.#code = code;
      this.#enhanced = enhanced;
    } else if (this.#code !== code) {
      // RFC 5321 §4.2.1: every line of a multiline reply carries the same code.
      const first = this.#code;
      this.#reset();
      return { type: 'error', error: malformed(`multiline reply mixes codes ${first} and ${code}`) };
    }
    this.#lines.push(text);
    this.#partialBytes += bytes.length + 2;
    if (more && this.#lines.length >= this.#maxLines) {
      this.#reset();
      return { type: 'error', error: malformed(`reply has more than ${this.#maxLines} lines`) };
    }
    if (more) return undefined;
    const reply: SmtpReply = { code, enhanced: this.#enhanced, lines: this.#lines };
    this.#reset();
    return { type: 'reply', reply };
  }
}

/** Parse a whole buffer of replies at once (tests, small inputs). */
export function parseReplies(input: Uint8Array, options?: ReplyParserOptions): ReplyParserEvent[] {
  const parser = new ReplyParser(options);
  parser.push(input);
  return [...parser];
}

// RFC 5321 §4.1.1.1: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
const EHLO_KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;

/**
 * What the server said it supports, from its EHLO (or LHLO) reply
 * (RFC 5321 §4.1.1.1). After HELO there are no extensions.
 */
export class SmtpCapabilities {
  /** The domain the server named first in its reply. */
  readonly domain: string;
  /** Extension keywords (upper case) and their parameters. */
  readonly extensions: ReadonlyMap<string, readonly string[]>;
  /** True after EHLO/LHLO, false after the HELO fallback. */
  readonly esmtp: boolean;

  constructor(domain: string, extensions: ReadonlyMap<string, readonly string[]>, esmtp: boolean) {
    this.domain = domain;
    this.extensions = extensions;
    this.esmtp = esmtp;
  }

  /** Read an EHLO/LHLO reply. Lines that are not `keyword *(SP param)` are ignored. */
  static fromEhloReply(reply: SmtpReply): SmtpCapabilities {
    const [first = '', ...rest] = reply.lines;
    const extensions = new Map<string, string[]>();
    for (const line of rest) {
      const words = line.trim().split(/\s+/);
      let keyword = words.shift() ?? '';
      // Old servers announce "AUTH=LOGIN PLAIN" (pre-RFC 2554 Outlook clients needed it).
      const eq = keyword.indexOf('=');
      if (eq > 0) {
        words.unshift(keyword.slice(eq + 1));
        keyword = keyword.slice(0, eq);
      }
      if (!EHLO_KEYWORD.test(keyword)) continue;
      const key = keyword.toUpperCase();
      const params = words.filter((w) => w.length > 0);
      const seen = extensions.get(key);
      if (seen === undefined) extensions.set(key, params);
      else for (const p of params) if (!seen.includes(p)) seen.push(p);
    }
    return new SmtpCapabilities(first.trim().split(/\s+/)[0] ?? '', extensions, true);
  }

  /** After HELO: no extensions (RFC 5321 §4.1.1.1). */
  static fromHeloReply(reply: SmtpReply): SmtpCapabilities {
    return new SmtpCapabilities((reply.lines[0] ?? '').trim().split(/\s+/)[0] ?? '', new Map(), false);
  }

  has(keyword: string): boolean {
    return this.extensions.has(keyword.toUpperCase());
  }

  params(keyword: string): readonly string[] | undefined {
    return this.extensions.get(keyword.toUpperCase());
  }

  /** SASL mechanisms offered with AUTH (RFC 4954), upper case. */
  get authMechanisms(): readonly string[] {
    return (this.params('AUTH') ?? []).map((m) => m.toUpperCase());
  }

  /** RFC 1870 SIZE: the limit in bytes, 0 for "no fixed limit", `undefined` when SIZE is not offered. */
  get size(): number | undefined {
    const params = this.params('SIZE');
    if (params === undefined) return undefined;
    const n = Number(params[0] ?? '0');
    return Number.isSafeInteger(n) && n >= 0 ? n : 0;
  }

  get pipelining(): boolean {
    return this.has('PIPELINING');
  }
  get startTls(): boolean {
    return this.has('STARTTLS');
  }
  get chunking(): boolean {
    return this.has('CHUNKING');
  }
  get smtpUtf8(): boolean {
    return this.has('SMTPUTF8');
  }
  get eightBitMime(): boolean {
    return this.has('8BITMIME');
  }
  get dsn(): boolean {
    return this.has('DSN');
  }
  get enhancedStatusCodes(): boolean {
    return this.has('ENHANCEDSTATUSCODES');
  }
}
