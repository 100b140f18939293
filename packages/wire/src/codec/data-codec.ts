/**
 * SMTP DATA bodies and POP3 multi-line responses: dot-stuffing both ways.
 *
 * RFC 5321 §4.5.2 (and RFC 1939 §3 for POP3): the sender doubles a period at
 * the start of a line, and ends the body with a line holding a single period,
 * i.e. CRLF "." CRLF where the first CRLF ends the last body line. The
 * receiver removes the doubled period and stops at that line.
 *
 * SMTP smuggling (CVE-2023-51764/51765/51766, "SMTP smuggling", SEC Consult
 * 2023) lives in the gap between receivers that also accept `\n.\n` or
 * `\r.\r` as the end and senders that let such sequences through. So both
 * halves here are strict: the decoder ends only on the exact CRLF "." CRLF,
 * and the encoder turns every bare CR and bare LF into CRLF, so no body can
 * ever contain a line holding only a period, nor end early.
 *
 * The decoder reads the body without buffering lines: its whole state is a
 * few counters and where it is in the last line, whatever the body size.
 */
import { Buffer } from 'node:buffer';
import type { FramingError } from '../errors.js';
import { resolveLimit } from '../limits.js';
import type { DataDecoderLimits } from '../limits.js';
import { ChunkQueue, EMPTY, asBuffer } from './chunk-queue.js';
import { dataTooLargeError, stateError } from './framing-errors.js';
import {
  KERNEL_CR,
  KERNEL_START,
  WASM_INPUT_CAP,
  dataScanKernel,
  kernelDecode,
  kernelEncode,
  kernelLineOk,
  kernelOutput,
  minDecodeBytes,
  minEncodeBytes,
  releaseDecodeInput,
} from './data-scan.js';
import type { DataScanKernel } from './data-scan.js';

const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;

// Single bytes spliced into encoder output. They only ever go through
// Buffer.concat (which copies), so they are never handed to a caller.
const CR_BYTE: Buffer = Buffer.from([CR]);
const LF_BYTE: Buffer = Buffer.from([LF]);
const DOT_BYTE: Buffer = Buffer.from([DOT]);
const END_AT_LINE_START: Buffer = Buffer.from('.\r\n', 'latin1');
const END_MID_LINE: Buffer = Buffer.from('\r\n.\r\n', 'latin1');

export type DataDecoderOptions = Partial<DataDecoderLimits>;

/** A piece of the body, dot-unstuffed. Pieces concatenate to the body; their boundaries depend on the input chunking. */
export interface DataChunkEvent {
  readonly type: 'data';
  /** Usually a zero-copy view of a pushed chunk. */
  readonly chunk: Buffer;
  /**
   * Bare CRs and bare LFs seen so far in the body, this chunk included (a CR
   * that ends the chunk is counted once the next byte shows it bare). A
   * server that refuses bare line ends can stop at the first chunk where
   * these turn non-zero, without scanning the body again.
   */
  readonly bareCr: number;
  readonly bareLf: number;
}

/**
 * The body passed `maxDataBytes` (`ERR_DATA_TOO_LARGE`). Emitted once, after
 * exactly `maxDataBytes` bytes of `data`; the decoder then drops the rest of
 * the body but keeps reading to the real end, so the session can answer 552
 * after the final dot (RFC 5321 §4.5.3.1.9) and stays in sync.
 */
export interface DataErrorEvent {
  readonly type: 'error';
  readonly error: FramingError;
}

/** The terminating CRLF "." CRLF was read. Bytes pushed after it: `takeLeftover()`. */
export interface DataEndEvent {
  readonly type: 'end';
  /** Body size after unstuffing, counting the bytes dropped past `maxDataBytes`. */
  readonly size: number;
  /** True when the body passed `maxDataBytes` (an `error` event was emitted). */
  readonly tooLarge: boolean;
  /** CRs in the body not followed by LF. */
  readonly bareCr: number;
  /**
   * LFs in the body not preceded by CR. A server may refuse a body with any
   * (Postfix `smtpd_forbid_bare_newline`): a bare LF is how SMTP smuggling
   * hides a second message in the first.
   */
  readonly bareLf: number;
  /**
   * Lines longer than `maxDataLineLength` (CRLF included, before unstuffing).
   * Counted for policy (RFC 5321 §4.5.3.1.6 sets 1000); the decoder stores no
   * line, so long lines cost no memory.
   */
  readonly longLines: number;
}

export type DataDecoderEvent = DataChunkEvent | DataErrorEvent | DataEndEvent;

/**
 * Where the decoder is, relative to the current line:
 * - START: at the start of a line (the body starts there: RFC 5321 §4.1.1.4,
 *   the CRLF ending the DATA command also starts the body).
 * - DOT: read a period at the start of a line (never emitted: it is either
 *   stuffing or the end).
 * - DOT_CR: read "." CR at the start of a line (the CR is held back: LF next
 *   means the end).
 * - MID: inside a line, the previous byte not a pending CR.
 * - CR: inside a line, just read a CR (an LF next ends the line).
 * - END: the terminator was read; the end event is due.
 * - DONE: the end event was returned.
 */
type DecoderState = 'start' | 'dot' | 'dot-cr' | 'mid' | 'cr' | 'end' | 'done';

/**
 * Incremental DATA decoder (SMTP DATA body, POP3 multi-line response). Start
 * one right after the line that opens the body (SMTP `354` sent, POP3 `+OK`
 * line read), push bytes, pull events until `end`.
 */
export class DataDecoder implements Iterable<DataDecoderEvent> {
  readonly #maxDataBytes: number;
  readonly #maxDataLineLength: number;
  readonly #queue = new ChunkQueue();

  #state: DecoderState = 'start';
  /** Body bytes after unstuffing, including those dropped past the cap. */
  #size = 0;
  /** Body bytes handed out (at most maxDataBytes). */
  #emitted = 0;
  #tooLarge = false;
  #errorDue: FramingError | undefined;
  #bareCr = 0;
  #bareLf = 0;
  #longLines = 0;
  /** Bytes of the current line so far, before unstuffing. */
  #lineLength = 0;

  constructor(options: DataDecoderOptions = {}) {
    this.#maxDataBytes = resolveLimit('maxDataBytes', options.maxDataBytes);
    this.#maxDataLineLength = resolveLimit('maxDataLineLength', options.maxDataLineLength);
  }

  /**
   * Append received bytes (kept by reference, not copied: do not modify them
   * afterwards). Bytes pushed after the end are kept for `takeLeftover()`.
   */
  push(chunk: Uint8Array): void {
    this.#queue.push(asBuffer(chunk));
  }

  /** True once the terminator has been read. */
  get ended(): boolean {
    return this.#state === 'end' || this.#state === 'done';
  }

  /** Bytes pushed and not yet decoded. */
  get bufferedBytes(): number {
    return this.#queue.size;
  }

  /**
   * The bytes pushed after the terminator (RFC 2920 pipelining: the next
   * commands), to hand back to the line framer; empty before the end. Takes
   * them: a second call returns only what was pushed since.
   */
  takeLeftover(): Buffer {
    return this.ended ? this.#queue.takeAll() : EMPTY;
  }

  /** Iterate the events available now. */
  *[Symbol.iterator](): Iterator<DataDecoderEvent> {
    for (let ev = this.next(); ev !== undefined; ev = this.next()) yield ev;
  }

  /** The next event, or undefined when more bytes are needed (or after `end`). */
  next(): DataDecoderEvent | undefined {
    for (;;) {
      if (this.#errorDue !== undefined) {
        const error = this.#errorDue;
        this.#errorDue = undefined;
        return { type: 'error', error };
      }
      if (this.#state === 'done') return undefined;
      if (this.#state === 'end') {
        this.#state = 'done';
        return {
          type: 'end',
          size: this.#size,
          tooLarge: this.#tooLarge,
          bareCr: this.#bareCr,
          bareLf: this.#bareLf,
          longLines: this.#longLines,
        };
      }
      const buf = this.#queue.peek();
      if (buf === undefined) return undefined;
      const event = this.#scan(buf);
      if (event !== undefined) return event;
    }
  }

  /**
   * Decode from the queue head until there is something to return or the
   * chunk is used up. Body bytes are handed out as runs `[from, pos)` of the
   * chunk; a run ends only where a byte must be left out (a period at the
   * start of a line) or held back (the CR of "." CR), or at the chunk's end.
   */
  #scan(buf: Buffer): DataDecoderEvent | undefined {
    const len = buf.length;
    let pos = this.#queue.offset;
    let from = pos;
    let state = this.#state;
    let event: DataDecoderEvent | undefined;
    let flush = true;
    /** Position of the next CR at or after `pos`, -1 for none, -2 before the first search. */
    let nextCr = -2;

    scan: while (pos < len) {
      switch (state) {
        case 'start':
          if (buf[pos] === DOT) {
            // RFC 5321 §4.5.2: the period is dropped in both cases (stuffing
            // or terminator); emit the run before it and decide on the next byte.
            event = this.#body(buf, from, pos);
            pos++;
            this.#lineLength++;
            state = 'dot';
            flush = false;
            break scan;
          }
          state = 'mid';
          break;
        case 'dot':
          if (buf[pos] === CR) {
            // Hold the CR back: "." CR LF is the end, not body.
            pos++;
            from = pos;
            this.#lineLength++;
            state = 'dot-cr';
            break;
          }
          // "." then anything else: a stuffed line; the period is gone.
          state = 'mid';
          break;
        case 'dot-cr':
          if (buf[pos] === LF) {
            // CRLF "." CRLF: the end. The CRLF before the period already went
            // out as the end of the last body line.
            pos++;
            state = 'end';
            flush = false;
            break scan;
          }
          // "." CR then not LF: a stuffed line starting with a bare CR; emit
          // the held-back CR and go on with this byte.
          this.#bareCr++;
          state = 'mid';
          event = this.#body(Buffer.from([CR]), 0, 1);
          flush = false;
          if (event !== undefined) break scan;
          flush = true;
          from = pos;
          break;
        case 'cr':
          if (buf[pos] === LF) {
            pos++;
            this.#endLine(1);
            state = 'start';
          } else {
            this.#bareCr++;
            state = 'mid';
          }
          break;
        case 'mid': {
          // Long runs: the WebAssembly kernel (data-scan.ts) goes through
          // the lines in one call and stops where this switch has work.
          if (len - pos >= minDecodeBytes && kernelLineOk(this.#lineLength)) {
            const kernel = dataScanKernel();
            if (kernel !== undefined) {
              pos = kernelDecode(kernel, this, buf, pos, len, this.#lineLength, this.#maxDataLineLength);
              const r = kernel.results;
              this.#bareCr += r[1]!;
              this.#bareLf += r[2]!;
              this.#longLines += r[3]!;
              this.#lineLength = r[4]!;
              state = r[0] === KERNEL_START ? 'start' : r[0] === KERNEL_CR ? 'cr' : 'mid';
              continue scan;
            }
          }
          // Line after line without going back through the switch: one native
          // search for the next LF, the CR before it checked by position, the
          // next CR searched only once passed (remembered across lines, so a
          // chunk is scanned once per byte value, not once per line), and
          // only a line start holding a period goes through 'start'. Lines
          // with a bare CR or LF take the same loop, counted exactly.
          for (;;) {
            const lf = buf.indexOf(LF, pos);
            const stop = lf === -1 ? len : lf;
            if (nextCr !== -1 && nextCr < pos) nextCr = buf.indexOf(CR, pos);
            while (nextCr !== -1 && nextCr < stop - 1) {
              this.#bareCr++;
              nextCr = buf.indexOf(CR, nextCr + 1);
            }
            if (lf === -1) {
              this.#lineLength += len - pos;
              state = buf[len - 1] === CR ? 'cr' : 'mid';
              pos = len;
              continue scan;
            }
            if (lf > pos && buf[lf - 1] === CR) {
              this.#endLine(lf + 1 - pos);
              pos = lf + 1;
              // A line start: a period there goes through 'start'.
              if (pos === len || buf[pos] === DOT) {
                state = 'start';
                continue scan;
              }
            } else {
              // A bare LF does not end a line (RFC 5321 §2.3.8): a period after
              // it is body text, not stuffing and not an end.
              this.#bareLf++;
              this.#lineLength += lf + 1 - pos;
              pos = lf + 1;
              if (pos === len) continue scan;
            }
          }
        }
        case 'end':
        case 'done':
          break scan;
      }
    }

    if (flush) event = this.#body(buf, from, pos);
    this.#state = state;
    if (pos === len || state === 'end') releaseDecodeInput(this);
    this.#queue.consumeTo(pos);
    return event;
  }

  #endLine(bytes: number): void {
    const length = this.#lineLength + bytes;
    if (length > this.#maxDataLineLength) this.#longLines++;
    this.#lineLength = 0;
  }

  /** Account for body bytes `[from, to)` of `buf`, and return them as an event unless the cap is passed. */
  #body(buf: Buffer, from: number, to: number): DataChunkEvent | undefined {
    const n = to - from;
    if (n <= 0) return undefined;
    this.#size += n;
    if (this.#tooLarge) return undefined;
    const room = this.#maxDataBytes - this.#emitted;
    if (n <= room) {
      this.#emitted += n;
      return { type: 'data', chunk: buf.subarray(from, to), bareCr: this.#bareCr, bareLf: this.#bareLf };
    }
    // Cut exactly at the cap, so the bytes handed out do not depend on chunking.
    this.#tooLarge = true;
    this.#errorDue = dataTooLargeError(this.#maxDataBytes);
    this.#emitted += room;
    return room > 0 ? { type: 'data', chunk: buf.subarray(from, from + room), bareCr: this.#bareCr, bareLf: this.#bareLf } : undefined;
  }
}

/** The result of `decodeData` on a complete input. */
export interface DecodedData {
  /** The body, unstuffed (truncated to `maxDataBytes` when `end.tooLarge`). */
  readonly body: Buffer;
  readonly end: DataEndEvent;
  readonly error: FramingError | undefined;
  /** The bytes after the terminator. */
  readonly leftover: Buffer;
}

/**
 * Decode a whole buffer holding a body and its terminator (tests, small POP3
 * responses). Returns undefined when the terminator is missing.
 */
export function decodeData(input: Uint8Array, options?: DataDecoderOptions): DecodedData | undefined {
  const decoder = new DataDecoder(options);
  decoder.push(input);
  const parts: Buffer[] = [];
  let error: FramingError | undefined;
  for (const ev of decoder) {
    if (ev.type === 'data') parts.push(ev.chunk);
    else if (ev.type === 'error') error = ev.error;
    else return { body: Buffer.concat(parts), end: ev, error, leftover: decoder.takeLeftover() };
  }
  return undefined;
}

/**
 * Incremental DATA encoder: body bytes in, wire bytes out. RFC 5321 §4.5.2
 * dot-stuffing, plus every bare CR and bare LF turned into CRLF (RFC 5321
 * §2.3.8: they are not allowed in SMTP, and passing them through is what
 * makes smuggling possible). State: two booleans.
 */
export class DataEncoder {
  /** The next byte starts a line (true at the start of the body). */
  #atLineStart = true;
  /** The previous chunk ended with a CR, already sent as CRLF: an LF starting this chunk is its LF. */
  #skipLf = false;
  #ended = false;

  /**
   * Encode the next piece of the body. Returns the input itself when nothing
   * needs changing (the common case: CRLF text with no line starting with a
   * period), else one new Buffer; empty input gives an empty Buffer.
   */
  push(chunk: Uint8Array): Buffer {
    if (this.#ended) throw stateError('DataEncoder.push after end()');
    const buf = asBuffer(chunk);
    const len = buf.length;
    if (len === 0) return EMPTY;
    if (len >= minEncodeBytes && len <= WASM_INPUT_CAP) {
      const kernel = dataScanKernel();
      if (kernel !== undefined) return this.#pushKernel(kernel, buf);
    }

    let pieces: Buffer[] | undefined;
    let run = 0;
    let pos = 0;
    if (this.#skipLf && buf[0] === LF) {
      pieces = [];
      pos = run = 1;
    }
    this.#skipLf = false;
    let atLineStart = this.#atLineStart;
    // Next CR and next LF at or after `pos` (-1: none). Each is searched again
    // only once passed, so a chunk is scanned once per byte value, not once per line.
    let nextCr = buf.indexOf(CR, pos);
    let nextLf = buf.indexOf(LF, pos);

    while (pos < len) {
      if (atLineStart && buf[pos] === DOT) {
        // RFC 5321 §4.5.2: double a period at the start of a line.
        (pieces ??= []).push(buf.subarray(run, pos), DOT_BYTE);
        run = pos;
      }
      atLineStart = false;
      if (nextCr === -1 && nextLf === -1) break;
      if (nextCr !== -1 && (nextLf === -1 || nextCr < nextLf)) {
        const i = nextCr;
        atLineStart = true;
        if (i + 1 < len) {
          if (buf[i + 1] === LF) {
            pos = i + 2; // CRLF: kept as is
          } else {
            // Bare CR: add the LF after it.
            (pieces ??= []).push(buf.subarray(run, i + 1), LF_BYTE);
            run = pos = i + 1;
          }
        } else {
          // CR at the end of the chunk: send CRLF now rather than hold the CR
          // back; if the next chunk starts with LF, that LF is this one.
          (pieces ??= []).push(buf.subarray(run, len), LF_BYTE);
          run = pos = len;
          this.#skipLf = true;
        }
      } else {
        // Bare LF (a CRLF was consumed whole above): add the CR before it.
        const i = nextLf;
        (pieces ??= []).push(buf.subarray(run, i), CR_BYTE);
        run = i;
        pos = i + 1;
        atLineStart = true;
      }
      if (nextCr !== -1 && nextCr < pos) nextCr = buf.indexOf(CR, pos);
      if (nextLf !== -1 && nextLf < pos) nextLf = buf.indexOf(LF, pos);
    }
    this.#atLineStart = atLineStart;
    if (pieces === undefined) return buf;
    if (pieces.length === 0) return buf.subarray(run);
    if (run < len) pieces.push(buf.subarray(run, len));
    return Buffer.concat(pieces);
  }

  /** `push` through the WebAssembly kernel: the same bytes, and the input itself when nothing changes. */
  #pushKernel(kernel: DataScanKernel, buf: Buffer): Buffer {
    const len = buf.length;
    const pos = this.#skipLf && buf[0] === LF ? 1 : 0;
    const n = kernelEncode(kernel, buf, pos, len, this.#atLineStart);
    this.#atLineStart = kernel.results[0] === 1;
    this.#skipLf = kernel.results[1] === 1;
    // Every change adds a byte (only the skipped LF takes one away): the same length means the same bytes.
    if (n === len - pos) return pos === 0 ? buf : buf.subarray(pos);
    return Buffer.from(kernelOutput(kernel, n));
  }

  /**
   * The end of the body: CRLF if the body is non-empty and its last line is
   * unterminated (RFC 5321 §4.1.1.4: the terminator must follow a CRLF), then
   * "." CRLF. The encoder cannot be used after this (`ERR_FRAMER_STATE`).
   */
  end(): Buffer {
    if (this.#ended) throw stateError('DataEncoder.end called twice');
    this.#ended = true;
    return Buffer.from(this.#atLineStart ? END_AT_LINE_START : END_MID_LINE);
  }

  /**
   * The most bytes `encodeInto` writes for `length` input bytes: every byte
   * becomes at most two (a period doubled, a bare CR or LF made CRLF).
   */
  static maxEncodedLength(length: number): number {
    return 2 * length;
  }

  /**
   * `push` that writes into the caller's buffer instead of returning one:
   * encodes `source[start, end)` into `target` from `offset` and returns the
   * offset after the last byte written. No allocation per line; the output
   * is byte for byte what `push` gives for the same input. `target` must have
   * `DataEncoder.maxEncodedLength(end - start)` bytes of room from `offset`
   * (a `RangeError` otherwise, with nothing written).
   */
  encodeInto(source: Uint8Array, target: Uint8Array, offset: number, start = 0, end: number = source.length): number {
    if (this.#ended) throw stateError('DataEncoder.encodeInto after end()');
    if (!(start >= 0 && start <= end && end <= source.length && offset >= 0 && target.length - offset >= 2 * (end - start))) {
      throw new RangeError(`DataEncoder.encodeInto: bad range [${start}, ${end}) of ${source.length} bytes, or less than ${2 * (end - start)} bytes of room at ${offset} of ${target.length}`);
    }
    const len = end - start;
    if (len === 0) return offset;
    if (len >= minEncodeBytes) {
      const kernel = dataScanKernel();
      if (kernel !== undefined) return this.#encodeKernel(kernel, source, target, offset, start, end);
    }
    const buf = start === 0 && end === source.length ? asBuffer(source) : Buffer.from(source.buffer, source.byteOffset + start, len);
    let o = offset;
    let pos = 0;
    if (this.#skipLf && buf[0] === LF) pos = 1;
    this.#skipLf = false;
    let atLineStart = this.#atLineStart;
    // As in push: the next CR and LF, each searched again only once passed.
    let nextCr = buf.indexOf(CR, pos);
    let nextLf = buf.indexOf(LF, pos);
    while (pos < len) {
      // RFC 5321 §4.5.2: double a period at the start of a line.
      if (atLineStart && buf[pos] === DOT) target[o++] = DOT;
      atLineStart = false;
      if (nextCr === -1 && nextLf === -1) {
        o = copyRun(buf, pos, len, target, o);
        break;
      }
      // Every line break goes out as CRLF: CRLF as is, a bare CR or LF completed.
      const i = nextCr !== -1 && (nextLf === -1 || nextCr < nextLf) ? nextCr : nextLf;
      o = copyRun(buf, pos, i, target, o);
      target[o++] = CR;
      target[o++] = LF;
      atLineStart = true;
      if (i !== nextCr) pos = i + 1;
      else if (i + 1 < len) pos = buf[i + 1] === LF ? i + 2 : i + 1;
      else {
        // A CR ending the chunk went out as CRLF: an LF starting the next chunk is its LF.
        pos = len;
        this.#skipLf = true;
      }
      if (nextCr !== -1 && nextCr < pos) nextCr = buf.indexOf(CR, pos);
      if (nextLf !== -1 && nextLf < pos) nextLf = buf.indexOf(LF, pos);
    }
    this.#atLineStart = atLineStart;
    return o;
  }

  /** `encodeInto` through the WebAssembly kernel, a window of at most WASM_INPUT_CAP input bytes at a time. */
  #encodeKernel(kernel: DataScanKernel, source: Uint8Array, target: Uint8Array, offset: number, start: number, end: number): number {
    let o = offset;
    for (let from = start; from < end; ) {
      const to = Math.min(end, from + WASM_INPUT_CAP);
      const pos = this.#skipLf && source[from] === LF ? from + 1 : from;
      const n = kernelEncode(kernel, source, pos, to, this.#atLineStart);
      this.#atLineStart = kernel.results[0] === 1;
      this.#skipLf = kernel.results[1] === 1;
      target.set(kernelOutput(kernel, n), o);
      o += n;
      from = to;
    }
    return o;
  }

  /** `end` into the caller's buffer (at most 5 bytes, a `RangeError` without room); returns the offset after it. */
  endInto(target: Uint8Array, offset: number): number {
    if (this.#ended) throw stateError('DataEncoder.end called twice');
    const tail = this.#atLineStart ? END_AT_LINE_START : END_MID_LINE;
    if (!(offset >= 0 && target.length - offset >= tail.length)) throw new RangeError(`DataEncoder.endInto: less than ${tail.length} bytes of room at ${offset} of ${target.length}`);
    this.#ended = true;
    target.set(tail, offset);
    return offset + tail.length;
  }
}

/**
 * Copy `source[from, to)` into `target` at `o`: short runs by hand, longer
 * ones natively through a plain Uint8Array view (cheaper to make than a
 * Buffer's subarray).
 */
function copyRun(source: Buffer, from: number, to: number, target: Uint8Array, o: number): number {
  const n = to - from;
  if (n > 32) {
    target.set(new Uint8Array(source.buffer, source.byteOffset + from, n), o);
    return o + n;
  }
  for (let i = from; i < to; i++) target[o++] = source[i]!;
  return o;
}

/** Encode a whole body, terminator included. */
export function encodeData(body: Uint8Array): Buffer {
  const encoder = new DataEncoder();
  const head = encoder.push(body);
  const tail = encoder.end();
  return head.length === 0 ? tail : Buffer.concat([head, tail]);
}

/**
 * Encode a body given as an (async) iterable of chunks, e.g. a file read
 * stream or a MIME generator, without holding more than one chunk. Yields
 * only non-empty Buffers, the terminator last.
 */
export async function* encodeDataStream(body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Buffer, void, undefined> {
  const encoder = new DataEncoder();
  for await (const chunk of body) {
    const out = encoder.push(chunk);
    if (out.length > 0) yield out;
  }
  yield encoder.end();
}
