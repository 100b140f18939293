import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FramingError } from '../../src/errors.js';
import { DataDecoder, DataEncoder, decodeData, encodeData, encodeDataStream } from '../../src/codec/data-codec.js';
import type { DataDecoderEvent, DataDecoderOptions } from '../../src/codec/data-codec.js';
import { LineFramer } from '../../src/codec/line-framer.js';
import { defaultLimits, resolveLimits } from '../../src/limits.js';
import { bytesOf, split } from './chunking.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const s = (buf: Buffer): string => buf.toString('latin1');

type Norm = { type: 'data'; data: string } | { type: 'error'; code: string } | { type: 'end'; [k: string]: unknown } | { type: 'leftover'; data: string };

/** Decode chunk by chunk; adjacent data events merged (their boundaries depend on chunking), leftover last. */
function run(chunks: readonly Uint8Array[], options?: DataDecoderOptions): Norm[] {
  const decoder = new DataDecoder(options);
  const out: Norm[] = [];
  const add = (ev: DataDecoderEvent): void => {
    const last = out[out.length - 1];
    if (ev.type === 'data') {
      if (last?.type === 'data') last.data += s(ev.chunk);
      else out.push({ type: 'data', data: s(ev.chunk) });
    } else if (ev.type === 'error') {
      out.push({ type: 'error', code: ev.error.code });
    } else {
      out.push({ ...ev });
    }
  };
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (const ev of decoder) add(ev);
    // Bounded state: after a drain, nothing is buffered until the end.
    if (!decoder.ended) expect(decoder.bufferedBytes).toBe(0);
  }
  out.push({ type: 'leftover', data: s(decoder.takeLeftover()) });
  return out;
}

/** Reference decoder over the whole input, by CRLF-delimited lines, straight from RFC 5321 §4.5.2. */
function model(input: Buffer, maxDataBytes: number, maxDataLineLength: number): Norm[] {
  const lines: Buffer[] = [];
  let pos = 0;
  let longLines = 0;
  for (;;) {
    const end = input.indexOf('\r\n', pos);
    if (end === -1) break;
    const line = input.subarray(pos, end);
    if (line.length === 1 && line[0] === 0x2e) {
      const body = Buffer.concat(lines);
      const wire = input.subarray(0, pos);
      let bareCr = 0;
      let bareLf = 0;
      for (let i = 0; i < wire.length; i++) {
        if (wire[i] === 0x0d && wire[i + 1] !== 0x0a) bareCr++;
        if (wire[i] === 0x0a && wire[i - 1] !== 0x0d) bareLf++;
      }
      const out: Norm[] = [];
      const tooLarge = body.length > maxDataBytes;
      const shown = tooLarge ? body.subarray(0, maxDataBytes) : body;
      if (shown.length > 0) out.push({ type: 'data', data: s(shown) });
      if (tooLarge) out.push({ type: 'error', code: 'ERR_DATA_TOO_LARGE' });
      out.push({ type: 'end', size: body.length, tooLarge, bareCr, bareLf, longLines });
      out.push({ type: 'leftover', data: s(input.subarray(end + 2)) });
      return out;
    }
    if (line.length + 2 > maxDataLineLength) longLines++;
    lines.push(line[0] === 0x2e ? line.subarray(1) : line, b('\r\n'));
    pos = end + 2;
  }
  return []; // incomplete: compared on the prefix only, see below
}

/** RFC 5321 canonical form: every bare CR and bare LF made CRLF, and a final CRLF if the body is non-empty. */
function canonical(body: Buffer): Buffer {
  const text = s(body).replace(/\r\n|\r|\n/g, '\r\n');
  return b(text.length === 0 || text.endsWith('\r\n') ? text : `${text}\r\n`);
}

/** The eight sequences that some receivers took for the end of data (SMTP smuggling): none may end it. */
const smuggling: readonly { seq: string; body: string; bareCr: number; bareLf: number }[] = [
  { seq: '\n.\n', body: 'a\n.\nb\r\n', bareCr: 0, bareLf: 2 },
  { seq: '\n.\r\n', body: 'a\n.\r\nb\r\n', bareCr: 0, bareLf: 1 },
  // A period at the start of a CRLF line is stuffing whatever follows it (RFC 5321 §4.5.2).
  { seq: '\r\n.\n', body: 'a\r\n\nb\r\n', bareCr: 0, bareLf: 1 },
  { seq: '\r.\r\n', body: 'a\r.\r\nb\r\n', bareCr: 1, bareLf: 0 },
  { seq: '\r\n.\r', body: 'a\r\n\rb\r\n', bareCr: 1, bareLf: 0 },
  { seq: '\r.\r', body: 'a\r.\rb\r\n', bareCr: 2, bareLf: 0 },
  { seq: '\r\n.\r\r\n', body: 'a\r\n\r\r\nb\r\n', bareCr: 1, bareLf: 0 },
  { seq: '\r\n.\0\r\n', body: 'a\r\n\0\r\nb\r\n', bareCr: 0, bareLf: 0 },
];

describe('DataDecoder: end of data', () => {
  it('reports bare CR/LF seen so far on each data chunk, so a server can refuse early', () => {
    const decoder = new DataDecoder();
    decoder.push(b('clean line\r\n'));
    const first = [...decoder].filter((ev) => ev.type === 'data');
    expect(first.map((ev) => [ev.bareCr, ev.bareLf])).toEqual([[0, 0]]);
    decoder.push(b('smuggled\n.\nMAIL FROM:<x>\r\n'));
    const second = [...decoder].filter((ev) => ev.type === 'data');
    expect(second.at(-1)).toMatchObject({ bareCr: 0, bareLf: 2 });
    decoder.push(b('a\rb\r\n.\r\n'));
    const rest = [...decoder];
    expect(rest.filter((ev) => ev.type === 'data').at(-1)).toMatchObject({ bareCr: 1, bareLf: 2 });
    expect(rest.at(-1)).toMatchObject({ type: 'end', bareCr: 1, bareLf: 2 });
  });

  it.each(smuggling.map((row) => ({ ...row, name: JSON.stringify(row.seq) })))('$name inside a body never ends it', ({ seq, body, bareCr, bareLf }) => {
    const wire = b(`a${seq}b\r\n.\r\nQUIT\r\n`);
    const expected: Norm[] = [
      { type: 'data', data: body },
      { type: 'end', size: body.length, tooLarge: false, bareCr, bareLf, longLines: 0 },
      { type: 'leftover', data: 'QUIT\r\n' },
    ];
    expect(run([wire])).toEqual(expected);
    expect(run(bytesOf(wire))).toEqual(expected);
    // Without the real terminator after it, the decoder keeps waiting.
    const open = new DataDecoder();
    open.push(b(`a${seq}`));
    open.push(b(`${seq}QUIT\r\n`));
    expect([...open].every((ev) => ev.type === 'data')).toBe(true);
    expect(open.ended).toBe(false);
  });

  it('".\\r\\n" as the very first line is an empty body', () => {
    expect(run([b('.\r\nQUIT\r\n')])).toEqual([
      { type: 'end', size: 0, tooLarge: false, bareCr: 0, bareLf: 0, longLines: 0 },
      { type: 'leftover', data: 'QUIT\r\n' },
    ]);
  });

  it('the body includes the CRLF before the terminating period', () => {
    expect(decodeData(b('\r\n.\r\n'))?.body).toEqual(b('\r\n'));
    expect(s(decodeData(b('Subject: x\r\n\r\nhi\r\n.\r\n'))!.body)).toBe('Subject: x\r\n\r\nhi\r\n');
  });

  it('removes dot-stuffing (RFC 5321 §4.5.2), including on lines that are only periods', () => {
    expect(s(decodeData(b('..\r\n...\r\n..x\r\nx.\r\n.\r\n'))!.body)).toBe('.\r\n..\r\n.x\r\nx.\r\n');
  });

  it('hands back the bytes after the terminator (RFC 2920 pipelining), also those pushed later', () => {
    const decoder = new DataDecoder();
    decoder.push(b('hi\r\n.\r\nMAIL FROM:<a@b>\r\nRC'));
    expect([...decoder].map((e) => e.type)).toEqual(['data', 'end']);
    expect(decoder.ended).toBe(true);
    decoder.push(b('PT TO:<c@d>\r\n'));
    expect(decoder.next()).toBeUndefined();
    expect(s(decoder.takeLeftover())).toBe('MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n');
    expect(decoder.takeLeftover().length).toBe(0);
  });

  it('takeLeftover is empty before the end', () => {
    const decoder = new DataDecoder();
    decoder.push(b('abc'));
    expect(decoder.takeLeftover().length).toBe(0);
    expect(s(decodeData(b('x\r\n.\r')) === undefined ? b('incomplete') : b('?'))).toBe('incomplete');
  });

  it('counts bare CR, bare LF and long lines without storing lines', () => {
    const decoder = new DataDecoder({ maxDataLineLength: 10 });
    decoder.push(b('short\r\n'));
    decoder.push(Buffer.alloc(5 * 1024 * 1024, 'L'));
    decoder.push(b('\r\nx\ry\nz\r\n.\r\n'));
    let end: DataDecoderEvent | undefined;
    for (const ev of decoder) if (ev.type === 'end') end = ev;
    expect(end).toEqual({ type: 'end', size: 7 + 5 * 1024 * 1024 + 2 + 7, tooLarge: false, bareCr: 1, bareLf: 1, longLines: 1 });
  });
});

describe('limits given to the codecs', () => {
  it('refuse a negative or NaN limit, keep an explicit 0, and default what is left undefined', () => {
    for (const bad of [-1, Number.NaN]) {
      expect(() => new DataDecoder({ maxDataBytes: bad })).toThrow(/limit maxDataBytes must be a number >= 0/);
      expect(() => new DataDecoder({ maxDataLineLength: bad })).toThrow(RangeError);
      expect(() => new LineFramer({ maxLineLength: bad })).toThrow(/limit maxLineLength must be a number >= 0/);
      expect(() => new LineFramer({ maxLiteralBytes: bad })).toThrow(RangeError);
      expect(() => resolveLimits(['maxLineLength'], { maxLineLength: bad })).toThrow(RangeError);
    }
    expect(resolveLimits(['maxDataBytes', 'maxLineLength'], { maxDataBytes: 0 })).toEqual({ maxDataBytes: 0, maxLineLength: defaultLimits.maxLineLength });
    // maxDataBytes 0: the first byte of content is already too much.
    expect(run([b('x\r\n.\r\n')], { maxDataBytes: 0 })).toContainEqual({ type: 'error', code: 'ERR_DATA_TOO_LARGE' });
    expect(run([b('x\r\n.\r\n')])).not.toContainEqual({ type: 'error', code: 'ERR_DATA_TOO_LARGE' });
  });
});

describe('DataDecoder: maxDataBytes', () => {
  it('reports ERR_DATA_TOO_LARGE once, hands out exactly the cap, and reads on to the real end', () => {
    const body = 'x'.repeat(50) + '\r\n' + '.\r'.repeat(10) + '\r\n' + 'y\n.\n'.repeat(10);
    const wire = b(`${body}\r\n.\r\nQUIT\r\n`);
    const expected: Norm[] = [
      { type: 'data', data: 'x'.repeat(10) },
      { type: 'error', code: 'ERR_DATA_TOO_LARGE' },
      { type: 'end', size: s(decodeData(wire)!.body).length, tooLarge: true, bareCr: 10, bareLf: 20, longLines: 0 },
      { type: 'leftover', data: 'QUIT\r\n' },
    ];
    expect(run([wire], { maxDataBytes: 10 })).toEqual(expected);
    expect(run(bytesOf(wire), { maxDataBytes: 10 })).toEqual(expected);
  });

  it('the error carries SMTP 552 5.3.4 and side remote', () => {
    const decoded = decodeData(b('0123456789\r\n.\r\n'), { maxDataBytes: 4 });
    expect(decoded?.error && FramingError.isInstance(decoded.error)).toBe(true);
    expect(decoded?.error?.code).toBe('ERR_DATA_TOO_LARGE');
    expect(decoded?.error?.side).toBe('remote');
    expect(decoded?.error?.reply?.smtp).toEqual({ code: 552, enhanced: '5.3.4' });
    expect(s(decoded!.body)).toBe('0123');
  });

  it('a body of exactly maxDataBytes passes; 0 allows only the empty body', () => {
    expect(decodeData(b('abc\r\n.\r\n'), { maxDataBytes: 5 })?.error).toBeUndefined();
    expect(decodeData(b('.\r\n'), { maxDataBytes: 0 })?.error).toBeUndefined();
    expect(decodeData(b('\r\n.\r\n'), { maxDataBytes: 0 })?.error?.code).toBe('ERR_DATA_TOO_LARGE');
  });

  it('keeps memory flat over a large oversized body', () => {
    const decoder = new DataDecoder({ maxDataBytes: 1024 });
    const chunk = b('a line of text in a big message\r\n..stuffed\r\n'.repeat(1000));
    let data = 0;
    for (let i = 0; i < 200; i++) {
      decoder.push(chunk);
      for (const ev of decoder) if (ev.type === 'data') data += ev.chunk.length;
      expect(decoder.bufferedBytes).toBe(0);
    }
    decoder.push(b('.\r\n'));
    expect([...decoder].map((e) => e.type)).toEqual(['end']);
    expect(data).toBe(1024);
  });
});

describe('DataEncoder', () => {
  it.each([
    ['', '.\r\n'],
    ['a', 'a\r\n.\r\n'],
    ['a\r\n', 'a\r\n.\r\n'],
    ['.', '..\r\n.\r\n'],
    ['.\r\n', '..\r\n.\r\n'],
    ['.a\r\n..b\r\nc.\r\n', '..a\r\n...b\r\nc.\r\n.\r\n'],
    ['a\rb\nc', 'a\r\nb\r\nc\r\n.\r\n'],
    ['\n.\n', '\r\n..\r\n.\r\n'],
    ['\r.\r', '\r\n..\r\n.\r\n'],
    ['x\r\n.\r\ny', 'x\r\n..\r\ny\r\n.\r\n'],
    ['\r\r\n\n', '\r\n\r\n\r\n.\r\n'],
  ])('encodes %j as %j', (body, wire) => {
    expect(s(encodeData(b(body)))).toBe(wire);
  });

  it('returns the input itself when nothing needs changing', () => {
    const encoder = new DataEncoder();
    const chunk = b('Subject: hi\r\n\r\nplain text\r\n');
    expect(encoder.push(chunk)).toBe(chunk);
  });

  it('handles a CR at the end of one chunk and an LF or a period at the start of the next', () => {
    const encoder = new DataEncoder();
    const out = [encoder.push(b('a\r')), encoder.push(b('\n.b\r')), encoder.push(b('.c')), encoder.push(b('')), encoder.end()];
    expect(s(Buffer.concat(out))).toBe('a\r\n..b\r\n..c\r\n.\r\n');
    expect(() => encoder.push(b('x'))).toThrow(FramingError);
    expect(() => encoder.end()).toThrow(/twice/);
  });

  it('encodeInto and endInto write into the caller\'s buffer', () => {
    const encoder = new DataEncoder();
    const source = b('.a\nb\r');
    const target = Buffer.alloc(2 + DataEncoder.maxEncodedLength(source.length) + DataEncoder.maxEncodedLength(3) + 5);
    let at = encoder.encodeInto(source, target, 2);
    at = encoder.encodeInto(b('\n.c'), target, at);
    at = encoder.endInto(target, at);
    expect(s(target.subarray(2, at))).toBe('..a\r\nb\r\n..c\r\n.\r\n');
    expect(() => encoder.encodeInto(b('x'), target, 0)).toThrow(FramingError);
    expect(() => encoder.endInto(target, 0)).toThrow(/twice/);
  });

  it('encodeInto refuses a target without room for the worst case, and a bad range, writing nothing', () => {
    const encoder = new DataEncoder();
    const target = Buffer.alloc(7, 0xaa);
    expect(() => encoder.encodeInto(b('\n\n\n\n'), target, 0)).toThrow(RangeError);
    expect(() => encoder.encodeInto(b('abc'), target, 2)).toThrow(RangeError);
    expect(() => encoder.encodeInto(b('abc'), target, 0, 2, 1)).toThrow(RangeError);
    expect(() => encoder.encodeInto(b('abc'), target, 0, 0, 4)).toThrow(RangeError);
    expect(target.every((v) => v === 0xaa)).toBe(true);
    // The state is untouched: the next call encodes from the start of a line.
    expect(s(target.subarray(0, encoder.encodeInto(b('.x'), target, 0)))).toBe('..x');
    expect(() => encoder.endInto(Buffer.alloc(4), 1)).toThrow(RangeError);
    expect(s(target.subarray(0, encoder.endInto(target, 0)))).toBe('\r\n.\r\n');
  });

  it('encodes an async iterable of chunks', async () => {
    async function* source(): AsyncGenerator<Uint8Array> {
      await Promise.resolve(); // a real source awaits its I/O
      yield b('.first\r');
      yield b('\nsecond\n');
      yield new Uint8Array([0x2e]);
    }
    const parts: Buffer[] = [];
    for await (const part of encodeDataStream(source())) {
      expect(part.length).toBeGreaterThan(0);
      parts.push(part);
    }
    expect(s(Buffer.concat(parts))).toBe('..first\r\nsecond\r\n..\r\n.\r\n');
    const sync: Buffer[] = [];
    for await (const part of encodeDataStream([b('x')])) sync.push(part);
    expect(s(Buffer.concat(sync))).toBe('x\r\n.\r\n');
  });
});

describe('DATA codec: properties', () => {
  const piece = fc.constantFrom('a', 'b', '.', '..', '\r', '\n', '\r\n', '\0', ' ', '\r\n.\r\n', '.\r\n', '\r.\r', '\n.\n', '\r\n.\n', 'z'.repeat(30));
  const body = fc.oneof(
    fc.array(piece, { maxLength: 40 }).map((parts) => b(parts.join(''))),
    fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u)),
  );
  const cuts = fc.array(fc.nat({ max: 3000 }), { maxLength: 12 });
  const limits = fc.record({ maxDataBytes: fc.integer({ min: 0, max: 120 }), maxDataLineLength: fc.integer({ min: 2, max: 40 }) });

  it('decode(encode(x)) is canonical(x), and x itself when x is canonical', () => {
    fc.assert(
      fc.property(body, cuts, (x, points) => {
        const wire = encodeData(x);
        const decoded = decodeData(wire);
        expect(decoded).toBeDefined();
        expect(s(decoded!.body)).toBe(s(canonical(x)));
        // The encoder's terminator is the only one: the decoder ends exactly at the end.
        expect(decoded!.leftover.length).toBe(0);
        expect(decoded!.end.bareCr + decoded!.end.bareLf).toBe(0);
        const c = canonical(x);
        expect(s(decodeData(encodeData(c))!.body)).toBe(s(c));
        // Streaming the encoder over any split gives the same bytes.
        const encoder = new DataEncoder();
        const streamed = Buffer.concat([...split(x, points).map((chunk) => encoder.push(chunk)), encoder.end()]);
        expect(s(streamed)).toBe(s(wire));
      }),
      { numRuns: 400 },
    );
  });

  it('encodeInto writes exactly what push returns, for any split, window and offset', () => {
    // Long runs too (copied natively past 32 bytes), and LF-only text as Maildir stores it.
    const long = fc.constantFrom('u'.repeat(32), 't'.repeat(33), 'z'.repeat(63), 'y'.repeat(64), 'x'.repeat(65), `${'w'.repeat(300)}\n`, `.${'v'.repeat(100)}\n`);
    const mixed = fc.array(fc.oneof(piece, long), { maxLength: 30 }).map((parts) => b(parts.join('')));
    fc.assert(
      fc.property(fc.oneof(body, mixed), cuts, fc.nat({ max: 7 }), fc.nat({ max: 5 }), (x, points, pad, slack) => {
        const reference = new DataEncoder();
        const expected = Buffer.concat([...split(x, points).map((chunk) => reference.push(chunk)), reference.end()]);
        const encoder = new DataEncoder();
        const parts: Buffer[] = [];
        for (const chunk of split(x, points)) {
          // The chunk as a window [pad, pad + length) of a larger source, into a target with bytes around it.
          const source = Buffer.concat([Buffer.alloc(pad, 0x2e), chunk, Buffer.alloc(pad, 0x0a)]);
          const room = DataEncoder.maxEncodedLength(chunk.length);
          const target = Buffer.alloc(pad + room + slack, 0xaa);
          const end = encoder.encodeInto(source, target, pad, pad, pad + chunk.length);
          expect(end).toBeGreaterThanOrEqual(pad);
          expect(end).toBeLessThanOrEqual(pad + room);
          // Nothing written outside [pad, end).
          expect(target.subarray(0, pad).every((v) => v === 0xaa)).toBe(true);
          expect(target.subarray(end).every((v) => v === 0xaa)).toBe(true);
          parts.push(Buffer.from(target.subarray(pad, end)));
        }
        const tail = Buffer.alloc(5);
        parts.push(tail.subarray(0, encoder.endInto(tail, 0)));
        expect(s(Buffer.concat(parts))).toBe(s(expected));
      }),
      { numRuns: 500 },
    );
  });

  it('decoding agrees with the reference model for every split, and byte by byte', () => {
    fc.assert(
      fc.property(body, cuts, limits, (wire, points, opts) => {
        const expected = model(wire, opts.maxDataBytes, opts.maxDataLineLength);
        const whole = run([wire], opts);
        if (expected.length > 0) expect(whole).toEqual(expected);
        else expect(whole.some((e) => e.type === 'end')).toBe(false);
        expect(run(split(wire, points), opts)).toEqual(whole);
        expect(run(bytesOf(wire), opts)).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });

  // The decoder's line loop (one LF search per line, the next CR remembered across lines): bodies
  // of many KiB, mostly clean lines with the odd hostile sequence, cut anywhere, so that searches,
  // a remembered CR far ahead of the next LF, and line starts fall on and across chunk ends.
  it('large bodies agree with the reference model (a simple line-by-line decoder) for random splits', () => {
    const clean = fc.integer({ min: 0, max: 120 }).map((n) => `${'x'.repeat(n)}\r\n`);
    const odd = fc.constantFrom('.\r\n', '..x\r\n', '\n.\n', '\r.\r', '\r\n.\r\r\n', 'a\rb', 'a\nb', '\r\n.\0\r\n', `${'y'.repeat(3000)}\r`, `${'z'.repeat(5000)}\n`);
    const line = fc.oneof({ weight: 12, arbitrary: clean }, { weight: 1, arbitrary: odd });
    const big = fc.tuple(fc.array(line, { minLength: 20, maxLength: 400 }), fc.constantFrom('', '\r\n.\r\n', '\r\n.\r\nMAIL FROM:<a@b>\r\n' + 'p'.repeat(9000))).map(([lines, tail]) => b(lines.join('') + tail));
    const bigCuts = fc.array(fc.nat({ max: 60_000 }), { maxLength: 8 });
    const bigLimits = fc.record({ maxDataBytes: fc.integer({ min: 0, max: 60_000 }), maxDataLineLength: fc.integer({ min: 2, max: 1000 }) });
    fc.assert(
      fc.property(big, bigCuts, bigLimits, (wire, points, opts) => {
        const expected = model(wire, opts.maxDataBytes, opts.maxDataLineLength);
        const whole = run([wire], opts);
        if (expected.length > 0) expect(whole).toEqual(expected);
        else expect(whole.some((e) => e.type === 'end')).toBe(false);
        expect(run(split(wire, points), opts)).toEqual(whole);
      }),
      { numRuns: 150 },
    );
  });

  it('a chunk holding a small body and much more is decoded to its end, leftover intact', () => {
    const rest = `MAIL FROM:<a@b>\r\n${'q'.repeat(100_000)}\r\n`;
    const wire = b(`hi\r\n..dot\r\n.\r\n${rest}`);
    expect(run([wire])).toEqual([
      { type: 'data', data: 'hi\r\n.dot\r\n' },
      { type: 'end', size: 10, tooLarge: false, bareCr: 0, bareLf: 0, longLines: 0 },
      { type: 'leftover', data: rest },
    ]);
  });

  it('returns events or a protocol error, nothing else, on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), cuts, fc.nat({ max: 50 }), (data, points, maxDataBytes) => {
        const decoder = new DataDecoder({ maxDataBytes });
        for (const chunk of split(Buffer.from(data), points)) {
          decoder.push(chunk);
          for (const ev of decoder) {
            expect(['data', 'error', 'end']).toContain(ev.type);
            if (ev.type === 'error') expect(FramingError.isInstance(ev.error)).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
