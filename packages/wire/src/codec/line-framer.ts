/**
 * Incremental CRLF line framing with hard limits, and IMAP literals.
 *
 * Shaped like h11 (python-hyper): no I/O. The caller `push()`es bytes as they
 * arrive and pulls events with `next()` until it returns `undefined`, which
 * means "push more bytes" (or, after a `literal` event in server mode, "decide
 * first": see `awaitingDecision`). Events come out in the same order and with
 * the same content whatever the chunking of the input; only the size of
 * `literal-data` chunks depends on it.
 *
 * Memory: a line that sits inside one pushed chunk is returned as a zero-copy
 * subarray of it; only a line split across chunks is copied, once, into a
 * buffer that never grows past `maxLineLength`. An over-long line is reported
 * as soon as it is known to be over-long, and the rest of it is skipped
 * without being stored, so memory stays bounded whatever the peer sends.
 */
import { Buffer } from 'node:buffer';
import type { FramingError } from '../errors.js';
import { resolveLimit } from '../limits.js';
import type { LineFramerLimits, LiteralLimits } from '../limits.js';
import { ChunkQueue, asBuffer } from './chunk-queue.js';
import { lineTooLongError, literalTooLargeError, stateError } from './framing-errors.js';

const LF = 0x0a;
const CR = 0x0d;
const PLUS = 0x2b;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const TILDE = 0x7e;
const CRLF: Buffer = Buffer.from('\r\n', 'latin1');

/**
 * A partial-line buffer bigger than this is released once its line is done:
 * one huge line should not pin `maxLineLength` bytes (64 KiB for IMAP) on
 * every idle connection for the rest of its life.
 */
const KEEP_PARTIAL_CAPACITY = 16 * 1024;

/** How a line ended. `'lf'` only happens with `allowBareLf: true`. */
export type LineEnding = 'crlf' | 'lf';

/**
 * Whether, and for which side, `{n}` at the end of a line announces an IMAP
 * literal (RFC 9051 §4.3; `{n+}` RFC 7888; `~{n}` RFC 3516 literal8).
 * - `'none'`: SMTP, POP3: `{n}` is ordinary text.
 * - `'server'`: an IMAP server reading commands: each literal waits for the
 *   caller's `acceptLiteral()` / `rejectLiteral()` before any byte of it is read.
 * - `'client'`: an IMAP client reading responses: a server never waits for
 *   permission, so literals under `maxLiteralBytes` are accepted automatically
 *   and larger ones skipped (the `literal` event tells which).
 */
export type LiteralMode = 'none' | 'server' | 'client';

export interface LineFramerOptions extends Partial<LineFramerLimits>, Partial<LiteralLimits> {
  /**
   * Whether a bare LF (one not preceded by CR) ends a line. Default false:
   * RFC 5321 §2.3.8 and RFC 9051 §4 end lines with CRLF only, and accepting
   * bare LF as an end of line where the next hop does not is what SMTP
   * smuggling exploits. With false, a bare LF stays inside the line and the
   * event's `bareLf` flag is set, so the protocol can refuse it; with true, it
   * ends the line and the event says `ending: 'lf'` (lenient mode, e.g. for
   * a client talking to a sloppy server).
   */
  readonly allowBareLf?: boolean;
  /** IMAP literal handling. Default `'none'`. */
  readonly literals?: LiteralMode;
}

/** Facts about one line (or one IMAP line fragment), shared by `line` and `literal` events. */
interface LineFacts {
  /** The bytes of the line, without its line ending. A view valid as long as the pushed chunk is not modified. */
  readonly line: Buffer;
  /** How the line ended. */
  readonly ending: LineEnding;
  /** The line contains a CR that is not followed by LF. */
  readonly bareCr: boolean;
  /** The line contains an LF not preceded by CR (only possible with `allowBareLf: false`). */
  readonly bareLf: boolean;
  /**
   * IMAP: this fragment continues a command or response that a literal
   * interrupted (it starts right after the literal's last byte). Always false
   * with `literals: 'none'`.
   */
  readonly continuation: boolean;
}

/** A complete line. */
export interface LineEvent extends LineFacts {
  readonly type: 'line';
}

/**
 * A line ended with a literal announcement. `line` includes the announcement
 * (`{5}`, `{5+}`, `~{5}`). What follows depends on `decision`:
 * - `'pending'` (server mode): `next()` returns undefined until the caller
 *   calls `acceptLiteral()` or `rejectLiteral()`; no literal byte is read before.
 * - `'accepted'` (client mode, size within the cap): `literal-data` events
 *   carrying exactly `size` bytes, then `literal-end`.
 * - `'skipped'` (client mode, over the cap): the `size` bytes are read and
 *   dropped without being stored, then `literal-end` with `skipped: true`.
 */
export interface LiteralEvent extends LineFacts {
  readonly type: 'literal';
  /** Announced length in bytes. May be imprecise above 2^53 (far above any cap). */
  readonly size: number;
  /** `{n}` (true: the client waits for a continuation request) or `{n+}` (false: RFC 7888). */
  readonly synchronizing: boolean;
  /** `~{n}`: a literal8 that may contain NUL (RFC 3516). */
  readonly binary: boolean;
  readonly decision: 'pending' | 'accepted' | 'skipped';
  /** Set when `size` exceeds `maxLiteralBytes` (`ERR_LITERAL_TOO_LARGE`); such a literal cannot be accepted. */
  readonly error: FramingError | undefined;
}

/** A piece of an accepted literal, a zero-copy view of a pushed chunk. Pieces concatenate to the literal. */
export interface LiteralDataEvent {
  readonly type: 'literal-data';
  readonly chunk: Buffer;
}

/** All bytes of a literal were delivered (or skipped); line framing resumes with a continuation fragment. */
export interface LiteralEndEvent {
  readonly type: 'literal-end';
  /** True when the bytes were dropped (a rejected non-synchronizing literal, or an over-cap literal in client mode). */
  readonly skipped: boolean;
}

/**
 * A line exceeded `maxLineLength` (`ERR_LINE_TOO_LONG`). The framer drops the
 * rest of that line up to and including its line ending, then resumes.
 */
export interface LineErrorEvent {
  readonly type: 'error';
  readonly error: FramingError;
  /**
   * The first `maxLineLength - 1` bytes of the line (fewer if the line was
   * shorter), so a protocol can still find e.g. the IMAP tag to answer with.
   * A copy: it outlives the pushed chunks.
   */
  readonly head: Buffer;
  readonly continuation: boolean;
}

export type LineFramerEvent = LineEvent | LiteralEvent | LiteralDataEvent | LiteralEndEvent | LineErrorEvent;

type State =
  /** Looking for the end of a line. */
  | 'line'
  /** Dropping the rest of an over-long line. */
  | 'discard'
  /** A literal was announced (server mode); waiting for accept/reject. */
  | 'decision'
  /** Handing out accepted literal bytes. */
  | 'literal'
  /** Dropping the bytes of a refused non-synchronizing literal. */
  | 'skip';

/**
 * Incremental line framer. See the module comment and docs/framing.md.
 *
 * ```
 * framer.push(chunk);
 * for (let ev = framer.next(); ev !== undefined; ev = framer.next()) { ... }
 * ```
 */
export class LineFramer implements Iterable<LineFramerEvent> {
  readonly #maxLineLength: number;
  readonly #maxLiteralBytes: number;
  readonly #allowBareLf: boolean;
  readonly #literals: LiteralMode;

  readonly #queue = new ChunkQueue();
  /** Start of a line that spans chunks. Invariant: `#partialLength < maxLineLength`, and it holds no line ending. */
  #partial: Buffer | undefined;
  #partialLength = 0;

  #state: State = 'line';
  /** In 'discard': the last byte dropped was a CR (a CRLF may straddle two chunks). */
  #lastWasCr = false;
  /** In 'literal' / 'skip': bytes of the literal still to come. */
  #remaining = 0;
  #continuation = false;
  #pending: LiteralEvent | undefined;
  /** Cache of the next CR in the current chunk, see `#crBefore`. */
  #crChunk: Buffer | undefined;
  #crFrom = 0;
  #crPos = -1;

  constructor(options: LineFramerOptions = {}) {
    this.#maxLineLength = resolveLimit('maxLineLength', options.maxLineLength);
    this.#maxLiteralBytes = resolveLimit('maxLiteralBytes', options.maxLiteralBytes);
    this.#allowBareLf = options.allowBareLf ?? false;
    this.#literals = options.literals ?? 'none';
  }

  /**
   * Append received bytes. The framer keeps a reference (no copy) until the
   * bytes are framed, so do not modify a chunk after pushing it. Pushing never
   * frames anything by itself: call `next()`.
   *
   * Memory is bounded by what the caller pushes before pulling: push one chunk,
   * drain `next()`, repeat, and the framer holds at most that chunk plus
   * `maxLineLength` bytes. While a literal decision is pending, stop reading
   * the socket (or watch `bufferedBytes`).
   */
  push(chunk: Uint8Array): void {
    this.#queue.push(asBuffer(chunk));
  }

  /** Bytes received but not yet framed (the partial line plus unread chunks). */
  get bufferedBytes(): number {
    return this.#partialLength + this.#queue.size;
  }

  /** True after a `literal` event with decision 'pending', until `acceptLiteral()` or `rejectLiteral()`. */
  get awaitingDecision(): boolean {
    return this.#state === 'decision';
  }

  /** The literal waiting for a decision, if any. */
  get pendingLiteral(): LiteralEvent | undefined {
    return this.#pending;
  }

  /**
   * Server mode: read the pending literal. Its `size` bytes follow as
   * `literal-data` events, then `literal-end`. For a synchronizing literal,
   * send the continuation request (`+ ...`) now: the client waits for it.
   * Throws `ERR_FRAMER_STATE` when no literal is pending or when it exceeds
   * `maxLiteralBytes`.
   */
  acceptLiteral(): void {
    if (this.#pending?.error !== undefined) {
      throw stateError(`acceptLiteral: literal of ${this.#pending.size} bytes exceeds maxLiteralBytes ${this.#maxLiteralBytes}`);
    }
    this.#startLiteral('literal', this.#takePending('acceptLiteral').size);
  }

  /**
   * Server mode: refuse the pending literal. A synchronizing literal was never
   * sent (the client waits for `+` and gets your NO/BAD instead, RFC 9051
   * §7.5), so framing goes on with the next line, a new command. A
   * non-synchronizing literal is already on the wire (RFC 7888): its bytes
   * are skipped without being stored, then `literal-end` (`skipped: true`) and
   * the rest of the command arrives as continuation lines, for the session to
   * ignore.
   */
  rejectLiteral(): void {
    const pending = this.#takePending('rejectLiteral');
    if (pending.synchronizing) {
      this.#state = 'line';
      this.#continuation = false;
    } else {
      this.#startLiteral('skip', pending.size);
    }
  }

  /**
   * Hand over every byte received but not yet framed, and reset to the start
   * of a line (no literal, no continuation). For a protocol switching reader,
   * e.g. SMTP after `DATA` feeds them to a `DataDecoder`. Bytes of an
   * over-long line being dropped are already gone.
   */
  takeBuffered(): Buffer {
    let out: Buffer;
    if (this.#partialLength === 0) {
      out = this.#queue.takeAll();
    } else {
      const rest = this.#queue.takeAll();
      out = Buffer.allocUnsafe(this.#partialLength + rest.length);
      this.#partial?.copy(out, 0, 0, this.#partialLength);
      rest.copy(out, this.#partialLength);
    }
    this.#reset();
    return out;
  }

  /**
   * Drop every byte received but not yet framed and reset to the start of a
   * line; returns how many bytes were dropped. Call it when STARTTLS/STLS
   * succeeds: anything the peer sent after the command, in plaintext, must
   * not be read as if it came over TLS (CVE-2011-0411, RFC 3207 §4.2,
   * RFC 2595 §3.1). A non-zero count means the peer pipelined past STARTTLS,
   * worth a log line.
   */
  discardBuffered(): number {
    const dropped = this.#partialLength + this.#queue.clear();
    this.#reset();
    return dropped;
  }

  /** The next event, or undefined when more bytes are needed (or a literal decision is pending). */
  next(): LineFramerEvent | undefined {
    for (;;) {
      switch (this.#state) {
        case 'decision':
          return undefined;
        case 'literal':
        case 'skip': {
          if (this.#remaining === 0) {
            const skipped = this.#state === 'skip';
            this.#state = 'line';
            // RFC 9051 §4.3: the command goes on after the literal's last byte.
            this.#continuation = true;
            return { type: 'literal-end', skipped };
          }
          const buf = this.#queue.peek();
          if (buf === undefined) return undefined;
          const start = this.#queue.offset;
          const take = Math.min(this.#remaining, buf.length - start);
          this.#remaining -= take;
          this.#queue.consumeTo(start + take);
          if (this.#state === 'literal') return { type: 'literal-data', chunk: buf.subarray(start, start + take) };
          continue;
        }
        case 'discard': {
          const buf = this.#queue.peek();
          if (buf === undefined) return undefined;
          const start = this.#queue.offset;
          const end = this.#findLineEnd(buf, start, this.#lastWasCr);
          if (end === -1) {
            this.#lastWasCr = buf[buf.length - 1] === CR;
            this.#queue.consumeTo(buf.length);
            continue;
          }
          this.#queue.consumeTo(end + 1);
          this.#state = 'line';
          continue;
        }
        case 'line': {
          const buf = this.#queue.peek();
          if (buf === undefined) return undefined;
          const event = this.#frameLine(buf);
          if (event !== undefined) return event;
          continue;
        }
      }
    }
  }

  /** Iterate the events available now (stops where `next()` would return undefined). */
  *[Symbol.iterator](): Iterator<LineFramerEvent> {
    for (let ev = this.next(); ev !== undefined; ev = this.next()) yield ev;
  }

  /**
   * In 'discard': index of the LF that ends the line, searching `buf` from `start`, or -1.
   * `prevIsCr` says whether the byte before `start` (in an earlier chunk) is
   * a CR, for a CRLF split between two chunks.
   */
  #findLineEnd(buf: Buffer, start: number, prevIsCr: boolean): number {
    if (buf[start] === LF && (prevIsCr || this.#allowBareLf)) return start;
    if (this.#allowBareLf) return buf.indexOf(LF, start);
    // CRLF only: a two-byte needle skips bare LFs inside the native search
    // instead of looping over each in JS.
    const i = buf.indexOf(CRLF, start);
    return i === -1 ? -1 : i + 1;
  }

  /** Frame one line from `buf` (the queue head), consuming it. Returns undefined when the line is incomplete. */
  #frameLine(buf: Buffer): LineFramerEvent | undefined {
    const start = this.#queue.offset;
    const partialLength = this.#partialLength;
    const partial = this.#partial;
    const prevIsCr = partialLength > 0 && partial !== undefined && partial[partialLength - 1] === CR;
    // The line is over-long iff its LF sits at or beyond `limitEnd` (the line,
    // LF included, would be longer than maxLineLength), or no LF has come and
    // maxLineLength bytes are already buffered (the LF can only make it longer).
    // Both tests give the same answer for every chunking.
    const limitEnd = start + this.#maxLineLength - partialLength;

    // Find the LF ending the line with single-byte native searches (memchr;
    // much cheaper per call than a two-byte CRLF needle). Without
    // allowBareLf, an LF not after a CR is line content: note it, search on,
    // but not past the limit (a run of bare LFs must not cost a JS loop per LF).
    let lf: number;
    let bareLfSeen = false;
    /** Bytes of `buf` known to hold no line ending. */
    let scanned: number;
    if (buf[start] === LF && (prevIsCr || this.#allowBareLf)) {
      lf = start;
    } else {
      lf = buf.indexOf(LF, start);
      if (!this.#allowBareLf) {
        while (lf !== -1 && (lf === start || buf[lf - 1] !== CR)) {
          bareLfSeen = true;
          if (lf >= limitEnd) break;
          lf = buf.indexOf(LF, lf + 1);
        }
      }
    }
    const isEnd = lf !== -1 && (this.#allowBareLf || (lf === start ? prevIsCr : buf[lf - 1] === CR));
    if (isEnd) scanned = lf;
    else if (lf === -1) scanned = buf.length;
    else scanned = lf + 1; // stopped at a bare LF past the limit

    if (isEnd && lf < limitEnd) {
      const crlf = lf > start ? buf[lf - 1] === CR : prevIsCr;
      const contentLength = partialLength + (lf - start) - (crlf ? 1 : 0);
      const ending: LineEnding = crlf ? 'crlf' : 'lf';
      this.#queue.consumeTo(lf + 1);
      if (partialLength === 0) {
        // The common case: the whole line in this chunk. A zero-copy view,
        // and the bare-CR test reuses one CR search across the chunk's lines.
        const contentEnd = start + contentLength;
        return this.#lineEvent(buf.subarray(start, contentEnd), ending, this.#crBefore(buf, start, contentEnd), bareLfSeen);
      }
      const line = Buffer.allocUnsafe(contentLength);
      partial?.copy(line, 0, 0, Math.min(partialLength, contentLength));
      if (contentLength > partialLength) buf.copy(line, partialLength, start, start + contentLength - partialLength);
      this.#clearPartial();
      // Inside a line every CR is bare (a CR followed by LF would have ended
      // it), and so is every LF (it stays inside only when it does not end it).
      return this.#lineEvent(line, ending, line.indexOf(CR) !== -1, !this.#allowBareLf && line.indexOf(LF) !== -1);
    }

    if (lf !== -1 || buf.length >= limitEnd) {
      // Over-long. Keep the first maxLineLength - 1 bytes as `head`: with no
      // line ending among the first maxLineLength bytes, those are certainly
      // line content (the last one might be the CR of a CRLF), whatever the
      // chunking.
      const headLength = Math.max(0, this.#maxLineLength - 1);
      const head = Buffer.allocUnsafe(headLength);
      partial?.copy(head, 0, 0, Math.min(partialLength, headLength));
      if (headLength > partialLength) buf.copy(head, partialLength, start, start + headLength - partialLength);
      const event: LineErrorEvent = {
        type: 'error',
        error: lineTooLongError(this.#maxLineLength),
        head,
        continuation: this.#continuation,
      };
      this.#clearPartial();
      this.#continuation = false;
      if (isEnd) {
        // The line ends in this chunk: resynchronised already.
        this.#queue.consumeTo(lf + 1);
      } else {
        // No line ending in what was searched: drop it, and look for the end
        // of the line from there on without storing anything.
        this.#lastWasCr = buf[scanned - 1] === CR;
        this.#queue.consumeTo(scanned);
        this.#state = 'discard';
      }
      return event;
    }

    // Incomplete and within the limit: keep the bytes (at most maxLineLength - 1
    // of them, by the test above) in the partial buffer, grown by doubling.
    const add = buf.length - start;
    const needed = partialLength + add;
    if (partial === undefined || partial.length < needed) {
      const capacity = Math.min(Math.max(needed, partial === undefined ? 256 : partial.length * 2), this.#maxLineLength);
      const grown = Buffer.allocUnsafe(capacity);
      partial?.copy(grown, 0, 0, partialLength);
      this.#partial = grown;
    }
    buf.copy(this.#partial as Buffer, partialLength, start);
    this.#partialLength = needed;
    this.#queue.consumeTo(buf.length);
    return undefined;
  }

  /**
   * Whether `buf` has a CR in `[from, to)`. The next CR's position is cached
   * per chunk: a search from each line start would rescan a CR-poor chunk
   * once per line. Valid while `#crFrom <= from` in the same chunk.
   */
  #crBefore(buf: Buffer, from: number, to: number): boolean {
    if (this.#crChunk !== buf || this.#crFrom > from || (this.#crPos !== -1 && this.#crPos < from)) {
      this.#crChunk = buf;
      this.#crFrom = from;
      this.#crPos = buf.indexOf(CR, from);
    }
    return this.#crPos !== -1 && this.#crPos < to;
  }

  #lineEvent(line: Buffer, ending: LineEnding, bareCr: boolean, bareLf: boolean): LineEvent | LiteralEvent {
    const continuation = this.#continuation;
    this.#continuation = false;
    if (this.#literals !== 'none' && line[line.length - 1] === CLOSE_BRACE) {
      const literal = this.#literalEvent(line, ending, bareCr, bareLf, continuation);
      if (literal !== undefined) return literal;
    }
    return { type: 'line', line, ending, bareCr, bareLf, continuation };
  }

  /**
   * RFC 9051 §9: literal = "{" number64 ["+"] "}" CRLF *CHAR8, literal8 =
   * "~{" number64 ["+"] "}" CRLF *OCTET (RFC 3516), "+" from RFC 7888.
   * Parsed backwards from the closing brace, without converting to a string.
   */
  #literalEvent(line: Buffer, ending: LineEnding, bareCr: boolean, bareLf: boolean, continuation: boolean): LiteralEvent | undefined {
    let i = line.length - 2;
    let synchronizing = true;
    if (line[i] === PLUS) {
      synchronizing = false;
      i--;
    }
    const digitsEnd = i + 1;
    while (i >= 0) {
      const c = line[i] as number;
      if (c < DIGIT_0 || c > DIGIT_9) break;
      i--;
    }
    if (i < 0 || i + 1 === digitsEnd || line[i] !== OPEN_BRACE) return undefined;
    let size = 0;
    for (let d = i + 1; d < digitsEnd; d++) size = size * 10 + ((line[d] as number) - DIGIT_0);
    const binary = i > 0 && line[i - 1] === TILDE;
    const error = size > this.#maxLiteralBytes ? literalTooLargeError(size, this.#maxLiteralBytes, synchronizing) : undefined;

    let decision: LiteralEvent['decision'];
    if (this.#literals === 'server') {
      decision = 'pending';
    } else {
      decision = error === undefined ? 'accepted' : 'skipped';
    }
    const event: LiteralEvent = { type: 'literal', line, ending, bareCr, bareLf, continuation, size, synchronizing, binary, decision, error };
    if (decision === 'pending') {
      this.#state = 'decision';
      this.#pending = event;
    } else {
      this.#startLiteral(decision === 'accepted' ? 'literal' : 'skip', size);
    }
    return event;
  }

  #takePending(method: string): LiteralEvent {
    const pending = this.#pending;
    if (pending === undefined || this.#state !== 'decision') throw stateError(`${method}: no literal is waiting for a decision`);
    this.#pending = undefined;
    return pending;
  }

  #startLiteral(state: 'literal' | 'skip', size: number): void {
    this.#state = state;
    this.#remaining = size;
  }

  #clearPartial(): void {
    this.#partialLength = 0;
    if (this.#partial !== undefined && this.#partial.length > KEEP_PARTIAL_CAPACITY) this.#partial = undefined;
  }

  #reset(): void {
    this.#clearPartial();
    this.#state = 'line';
    this.#lastWasCr = false;
    this.#remaining = 0;
    this.#continuation = false;
    this.#pending = undefined;
    this.#crChunk = undefined;
  }
}

/** Frame a whole buffer at once (tests, small inputs). Stops where `next()` would return undefined. */
export function frameLines(input: Uint8Array, options?: LineFramerOptions): LineFramerEvent[] {
  const framer = new LineFramer(options);
  framer.push(input);
  return [...framer];
}
