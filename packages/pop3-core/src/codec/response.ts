/**
 * POP3 responses (RFC 1939 §3): a status line `+OK text` or `-ERR text`,
 * optionally with an RFC 2449 §8 response code in brackets, and for some
 * commands a multi-line body ended by a line holding only ".", with lines
 * starting with "." dot-stuffed. RFC 5034 adds the SASL continuation `+ data`.
 *
 * `formatStatus` and `formatMultiline` build what the server sends;
 * `parseStatusLine` and `Pop3ResponseParser` read what the client receives.
 */
import { DataDecoder, LineFramer } from '@pigeonpost/wire';
import type { Pop3ResponseCode, Pop3ServerReply } from '../errors.js';

/** A status line to send. `text` must not contain CR, LF or NUL (they are replaced by spaces). */
export interface Pop3Status {
  readonly ok: boolean;
  readonly code?: Pop3ResponseCode | undefined;
  readonly text?: string | undefined;
}

const clean = (text: string): string => text.replace(/[\r\n\0]/g, ' ');

/** `+OK text` / `-ERR [CODE] text`, CRLF included. */
export function formatStatus(status: Pop3Status): string {
  const parts = [status.ok ? '+OK' : '-ERR'];
  if (status.code !== undefined) parts.push(`[${clean(status.code)}]`);
  if (status.text !== undefined && status.text !== '') parts.push(clean(status.text));
  return `${parts.join(' ')}\r\n`;
}

/** A `+OK` status, the lines dot-stuffed (RFC 1939 §3), and the terminating ".". */
export function formatMultiline(text: string | undefined, lines: readonly string[]): string {
  let out = formatStatus({ ok: true, text });
  for (const line of lines) out += `${line.startsWith('.') ? '.' : ''}${clean(line)}\r\n`;
  return `${out}.\r\n`;
}

/** A parsed status or continuation line. */
export type Pop3StatusLine = (Pop3ServerReply & { readonly type: 'status' }) | { readonly type: 'continuation'; readonly data: string };

/** Parse one line the server sent (without CRLF); `undefined` when it is neither `+OK`, `-ERR` nor `+ …`. */
export function parseStatusLine(line: string): Pop3StatusLine | undefined {
  let ok: boolean;
  let rest: string;
  if (line.startsWith('+OK') && (line.length === 3 || line[3] === ' ')) {
    ok = true;
    rest = line.slice(4);
  } else if (line.startsWith('-ERR') && (line.length === 4 || line[4] === ' ')) {
    ok = false;
    rest = line.slice(5);
  } else if (line === '+' || line.startsWith('+ ')) {
    // RFC 5034 §4: a server challenge, "+" SP base64 (some servers send a bare "+").
    return { type: 'continuation', data: line.slice(2) };
  } else {
    return undefined;
  }
  // RFC 2449 §8: resp-code = "[" resp-level *("/" resp-level) "]"
  const m = /^\[([^\]\s]+)\](?: (.*))?$/.exec(rest);
  if (m !== null) return { type: 'status', ok, responseCode: m[1]!.toUpperCase(), text: m[2] ?? '' };
  return { type: 'status', ok, responseCode: undefined, text: rest };
}

export interface Pop3ResponseParserOptions {
  /** Longest status or body line, CRLF included. */
  readonly maxLineLength?: number;
}

/** What `Pop3ResponseParser` hands out. */
export type Pop3ResponseEvent =
  | { readonly type: 'line'; readonly line: string }
  | { readonly type: 'data'; readonly chunk: Buffer }
  | { readonly type: 'end' }
  | { readonly type: 'error'; readonly message: string };

/**
 * Incremental reader of server responses. The caller knows which responses
 * are multi-line (RFC 1939 gives no marker): after a `+OK` to RETR, TOP,
 * LIST, UIDL, CAPA or AUTH without a mechanism it calls `beginBody()`, and
 * `next()` then returns the dot-unstuffed body as `data` events, then `end`.
 * Every chunking of the input gives the same sequence.
 */
export class Pop3ResponseParser {
  readonly #maxLineLength: number;
  #framer: LineFramer;
  #body: DataDecoder | undefined;

  constructor(options: Pop3ResponseParserOptions = {}) {
    this.#maxLineLength = options.maxLineLength ?? 65536;
    this.#framer = new LineFramer({ maxLineLength: this.#maxLineLength, allowBareLf: true });
  }

  push(chunk: Uint8Array): void {
    if (this.#body !== undefined) this.#body.push(chunk);
    else this.#framer.push(chunk);
  }

  /** True while a body is being read. */
  get inBody(): boolean {
    return this.#body !== undefined;
  }

  /** The next status line is followed by a body: read it as one. */
  beginBody(): void {
    // The body starts after the status line's CRLF: the decoder starts at a line start.
    const decoder = new DataDecoder({ maxDataBytes: Number.MAX_SAFE_INTEGER, maxDataLineLength: this.#maxLineLength });
    decoder.push(this.#framer.takeBuffered());
    this.#body = decoder;
  }

  /** Bytes held after the STLS `+OK` (plaintext that must not be read as TLS): drop them and say how many. */
  discardBuffered(): number {
    return this.#framer.discardBuffered();
  }

  next(): Pop3ResponseEvent | undefined {
    const body = this.#body;
    if (body !== undefined) {
      const ev = body.next();
      if (ev === undefined) return undefined;
      if (ev.type === 'data') return { type: 'data', chunk: ev.chunk };
      if (ev.type === 'error') return { type: 'error', message: ev.error.message };
      this.#body = undefined;
      this.#framer = new LineFramer({ maxLineLength: this.#maxLineLength, allowBareLf: true });
      this.#framer.push(body.takeLeftover());
      return { type: 'end' };
    }
    const ev = this.#framer.next();
    if (ev === undefined) return undefined;
    if (ev.type === 'error') return { type: 'error', message: ev.error.message };
    if (ev.type !== 'line') return this.next();
    return { type: 'line', line: ev.line.toString('utf8') };
  }
}
