import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FramingError } from '../../src/errors.js';
import { defaultLimits } from '../../src/limits.js';
import { LineFramer, frameLines } from '../../src/codec/line-framer.js';
import type { LineFramerEvent, LineFramerOptions } from '../../src/codec/line-framer.js';
import { bytesOf, split } from './chunking.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** A comparable, chunking-independent view of an event. */
type Norm =
  | { type: 'line'; line: string; ending: string; bareCr: boolean; bareLf: boolean; continuation: boolean }
  | { type: 'error'; code: string; head: string; continuation: boolean }
  | { type: string; [k: string]: unknown };

function norm(ev: LineFramerEvent): Norm {
  switch (ev.type) {
    case 'line':
      return { type: 'line', line: ev.line.toString('latin1'), ending: ev.ending, bareCr: ev.bareCr, bareLf: ev.bareLf, continuation: ev.continuation };
    case 'error':
      return { type: 'error', code: ev.error.code, head: ev.head.toString('latin1'), continuation: ev.continuation };
    case 'literal':
      return {
        type: 'literal',
        line: ev.line.toString('latin1'),
        size: ev.size,
        synchronizing: ev.synchronizing,
        binary: ev.binary,
        decision: ev.decision,
        error: ev.error?.code,
        continuation: ev.continuation,
      };
    case 'literal-data':
      return { type: 'literal-data', data: ev.chunk.toString('latin1') };
    case 'literal-end':
      return { type: 'literal-end', skipped: ev.skipped };
  }
}

/** Merge adjacent literal-data events: their boundaries are the only thing chunking may change. */
function merge(events: Norm[]): Norm[] {
  const out: Norm[] = [];
  for (const ev of events) {
    const last = out[out.length - 1];
    if (ev.type === 'literal-data' && last?.type === 'literal-data') {
      out[out.length - 1] = { type: 'literal-data', data: String(last.data) + String(ev.data) };
    } else {
      out.push(ev);
    }
  }
  return out;
}

/** Feed `chunks` one by one, draining after each, and check the memory bound after every drain. */
function run(chunks: readonly Uint8Array[], options: LineFramerOptions): Norm[] {
  const framer = new LineFramer(options);
  const max = options.maxLineLength ?? defaultLimits.maxLineLength;
  const out: Norm[] = [];
  for (const chunk of chunks) {
    framer.push(chunk);
    for (let ev = framer.next(); ev !== undefined; ev = framer.next()) out.push(norm(ev));
    // Drained: what is left is a partial line, strictly shorter than the limit.
    expect(framer.bufferedBytes).toBeLessThan(Math.max(max, 1));
  }
  return merge(out);
}

/**
 * Reference model, written for clarity rather than speed, over the whole input
 * at once: the framer must agree with it for every chunking.
 */
function model(input: Buffer, maxLineLength: number, allowBareLf: boolean): Norm[] {
  const out: Norm[] = [];
  let start = 0;
  for (;;) {
    let end = -1;
    for (let i = start; i < input.length; i++) {
      if (input[i] === 0x0a && (allowBareLf || (i > start && input[i - 1] === 0x0d))) {
        end = i;
        break;
      }
    }
    if (end === -1) {
      if (input.length - start >= maxLineLength && input.length > start) {
        out.push({ type: 'error', code: 'ERR_LINE_TOO_LONG', head: input.subarray(start, start + Math.max(0, maxLineLength - 1)).toString('latin1'), continuation: false });
      }
      return out;
    }
    const crlf = end > start && input[end - 1] === 0x0d;
    const content = input.subarray(start, crlf ? end - 1 : end);
    if (end + 1 - start > maxLineLength) {
      out.push({ type: 'error', code: 'ERR_LINE_TOO_LONG', head: content.subarray(0, Math.max(0, maxLineLength - 1)).toString('latin1'), continuation: false });
    } else {
      out.push({
        type: 'line',
        line: content.toString('latin1'),
        ending: crlf ? 'crlf' : 'lf',
        bareCr: content.includes(0x0d),
        bareLf: content.includes(0x0a),
        continuation: false,
      });
    }
    start = end + 1;
  }
}

/** Inputs rich in what framing cares about: CR, LF, CRLF, '.', NUL, literal announcements, long runs. */
const piece = fc.constantFrom('a', 'b', '.', '\r', '\n', '\r\n', '\0', ' ', '{3}', '{0}\r\n', '{2+}\r\n', '~{1}\r\n', 'x'.repeat(25), '\r\r\n', '\n\r');
const input = fc.array(piece, { maxLength: 40 }).map((parts) => b(parts.join('')));
const cuts = fc.array(fc.nat({ max: 2000 }), { maxLength: 12 });

describe('LineFramer: lines', () => {
  it('frames CRLF lines, including empty ones, as zero-copy views', () => {
    const input = b('EHLO x\r\n\r\nQUIT\r\n');
    const events = frameLines(input);
    expect(events.map(norm)).toEqual([
      { type: 'line', line: 'EHLO x', ending: 'crlf', bareCr: false, bareLf: false, continuation: false },
      { type: 'line', line: '', ending: 'crlf', bareCr: false, bareLf: false, continuation: false },
      { type: 'line', line: 'QUIT', ending: 'crlf', bareCr: false, bareLf: false, continuation: false },
    ]);
    const first = events[0];
    expect(first?.type === 'line' && first.line.buffer === input.buffer).toBe(true);
  });

  it('waits for more bytes on an incomplete line, and joins a line split across chunks (CR|LF too)', () => {
    const framer = new LineFramer();
    framer.push(b('MAIL FROM:<a@'));
    expect(framer.next()).toBeUndefined();
    framer.push(b('example.org>\r'));
    expect(framer.next()).toBeUndefined();
    expect(framer.bufferedBytes).toBe(26);
    framer.push(b('\nRC'));
    expect(norm(framer.next()!)).toMatchObject({ type: 'line', line: 'MAIL FROM:<a@example.org>', ending: 'crlf' });
    expect(framer.next()).toBeUndefined();
    expect(framer.bufferedBytes).toBe(2);
  });

  it('keeps a bare CR inside the line and reports it', () => {
    expect(frameLines(b('a\rb\r\r\n')).map(norm)).toEqual([
      { type: 'line', line: 'a\rb\r', ending: 'crlf', bareCr: true, bareLf: false, continuation: false },
    ]);
  });

  it('by default a bare LF does not end a line: it stays inside and is reported', () => {
    // SMTP smuggling defence: "\n" must not split one command into two.
    expect(frameLines(b('RSET\nDATA\r\n')).map(norm)).toEqual([
      { type: 'line', line: 'RSET\nDATA', ending: 'crlf', bareCr: false, bareLf: true, continuation: false },
    ]);
  });

  it('with allowBareLf a bare LF ends the line, and the event says so', () => {
    expect(frameLines(b('a\nb\r\nc\r'), { allowBareLf: true }).map(norm)).toEqual([
      { type: 'line', line: 'a', ending: 'lf', bareCr: false, bareLf: false, continuation: false },
      { type: 'line', line: 'b', ending: 'crlf', bareCr: false, bareLf: false, continuation: false },
    ]);
    const framer = new LineFramer({ allowBareLf: true });
    framer.push(b('x\r'));
    framer.push(b('\n'));
    expect(framer.next()).toMatchObject({ type: 'line', ending: 'crlf' });
  });

  it('iterates with for..of and stops where more bytes are needed', () => {
    const framer = new LineFramer();
    framer.push(b('A\r\nB\r\nC'));
    expect([...framer].length).toBe(2);
    expect(framer.bufferedBytes).toBe(1);
  });

  it('refuses nonsense limits loudly', () => {
    expect(() => new LineFramer({ maxLineLength: -1 })).toThrow(RangeError);
  });
});

describe('LineFramer: maximum line length', () => {
  it('accepts a line of exactly maxLineLength bytes (CRLF included) and refuses one byte more', () => {
    const events = frameLines(b('12345678\r\n123456789\r\nok\r\n'), { maxLineLength: 10 });
    expect(events.map(norm)).toEqual([
      { type: 'line', line: '12345678', ending: 'crlf', bareCr: false, bareLf: false, continuation: false },
      { type: 'error', code: 'ERR_LINE_TOO_LONG', head: '123456789', continuation: false },
      { type: 'line', line: 'ok', ending: 'crlf', bareCr: false, bareLf: false, continuation: false },
    ]);
  });

  it('reports a typed remote error with the reply of each protocol', () => {
    const [ev] = frameLines(b('x'.repeat(20)), { maxLineLength: 10 });
    expect(ev?.type).toBe('error');
    if (ev?.type !== 'error') return;
    expect(FramingError.isInstance(ev.error)).toBe(true);
    expect(ev.error.code).toBe('ERR_LINE_TOO_LONG');
    expect(ev.error.side).toBe('remote');
    expect(ev.error.reply?.smtp).toEqual({ code: 500, enhanced: '5.5.2' });
    expect(ev.error.reply?.imap?.status).toBe('BAD');
    expect(ev.error.reply?.pop3).toBeDefined();
    expect(ev.error.reply?.text).not.toMatch(/[\r\n]/);
    // The head keeps the start of the line, e.g. for the IMAP tag.
    expect(ev.head.toString()).toBe('x'.repeat(9));
  });

  it('reports as soon as the line is known to be too long, then resynchronises at the next CRLF', () => {
    const framer = new LineFramer({ maxLineLength: 8 });
    framer.push(b('A1 12345678'));
    expect(framer.next()).toMatchObject({ type: 'error', head: b('A1 1234') });
    expect(framer.next()).toBeUndefined();
    framer.push(b('more\r'));
    expect(framer.next()).toBeUndefined();
    framer.push(b('\nA2 NOP\r\n'));
    expect(norm(framer.next()!)).toMatchObject({ type: 'line', line: 'A2 NOP' });
  });

  it('holds bounded memory while fed megabytes without CRLF, and reports once', () => {
    const maxLineLength = 1000;
    const framer = new LineFramer({ maxLineLength });
    const chunk = Buffer.alloc(64 * 1024, 'z');
    const events: LineFramerEvent[] = [];
    for (let i = 0; i < 64; i++) {
      // 4 MiB in all, with bare LFs and CRs that must not end the line.
      chunk[i * 7] = i % 2 === 0 ? 0x0a : 0x0d;
      framer.push(chunk);
      events.push(...framer);
      expect(framer.bufferedBytes).toBeLessThan(maxLineLength);
    }
    framer.push(b('\r\nNOOP\r\n'));
    events.push(...framer);
    expect(events.map((e) => e.type)).toEqual(['error', 'line']);
    expect(norm(events[1]!)).toMatchObject({ line: 'NOOP' });
  });

  it('keeps the partial-line buffer under maxLineLength when fed one byte at a time', () => {
    const framer = new LineFramer({ maxLineLength: 50 });
    let errors = 0;
    for (let i = 0; i < 10_000; i++) {
      framer.push(b(i % 100 === 99 ? '\n' : 'y'));
      for (const ev of framer) if (ev.type === 'error') errors++;
      expect(framer.bufferedBytes).toBeLessThan(50);
    }
    expect(errors).toBe(1);
  });

  it('a line limit of 0 refuses every line, and of 2 allows only empty lines', () => {
    expect(frameLines(b('\r\nx\r\n'), { maxLineLength: 0 }).map((e) => e.type)).toEqual(['error', 'error']);
    expect(frameLines(b('\r\nx\r\n\r\n'), { maxLineLength: 2 }).map((e) => e.type)).toEqual(['line', 'error', 'line']);
  });
});

describe('LineFramer: takeBuffered and discardBuffered', () => {
  it('takeBuffered hands over every unframed byte, e.g. when SMTP switches to DATA', () => {
    const framer = new LineFramer();
    framer.push(b('DATA\r\nSubject: hi\r\n'));
    framer.push(b('\r\nbody\r\n.\r\n'));
    expect(norm(framer.next()!)).toMatchObject({ line: 'DATA' });
    expect(framer.takeBuffered().toString()).toBe('Subject: hi\r\n\r\nbody\r\n.\r\n');
    expect(framer.bufferedBytes).toBe(0);
    expect(framer.next()).toBeUndefined();
  });

  it('takeBuffered includes a partial line kept across chunks', () => {
    const framer = new LineFramer();
    framer.push(b('par'));
    expect(framer.next()).toBeUndefined();
    framer.push(b('tial'));
    expect(framer.next()).toBeUndefined();
    framer.push(b('!'));
    expect(framer.takeBuffered().toString()).toBe('partial!');
    framer.push(b('next\r\n'));
    expect(norm(framer.next()!)).toMatchObject({ line: 'next' });
  });

  it('discardBuffered drops plaintext pipelined after STARTTLS (CVE-2011-0411)', () => {
    const framer = new LineFramer();
    framer.push(b('STARTTLS\r\nRSET\r\nMAIL FROM:<evil>'));
    expect(norm(framer.next()!)).toMatchObject({ line: 'STARTTLS' });
    expect(framer.discardBuffered()).toBe('RSET\r\nMAIL FROM:<evil>'.length);
    expect(framer.next()).toBeUndefined();
    expect(framer.discardBuffered()).toBe(0);
    framer.push(b('EHLO after.tls\r\n'));
    expect(norm(framer.next()!)).toMatchObject({ line: 'EHLO after.tls', continuation: false });
  });

  it('discardBuffered counts a partial line and resets out of a long-line discard', () => {
    const framer = new LineFramer({ maxLineLength: 4 });
    framer.push(b('toolong'));
    expect(framer.next()?.type).toBe('error');
    framer.push(b('abc'));
    expect(framer.next()).toBeUndefined(); // still discarding the long line
    expect(framer.discardBuffered()).toBe(0);
    framer.push(b('ok\r\n'));
    expect(norm(framer.next()!)).toMatchObject({ type: 'line', line: 'ok' });
  });
});

describe('LineFramer: properties', () => {
  const options = fc.record({
    maxLineLength: fc.integer({ min: 0, max: 40 }),
    allowBareLf: fc.boolean(),
  });

  it('agrees with the reference model for every split of the input, and byte by byte', () => {
    fc.assert(
      fc.property(input, cuts, options, (data, points, opts) => {
        const expected = model(data, opts.maxLineLength, opts.allowBareLf);
        expect(run([data], opts)).toEqual(expected);
        expect(run(split(data, points), opts)).toEqual(expected);
        expect(run(bytesOf(data), opts)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('returns events or a protocol error, nothing else, on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), cuts, fc.integer({ min: 0, max: 100 }), fc.constantFrom('none', 'client', 'server' as const), (data, points, max, literals) => {
        const framer = new LineFramer({ maxLineLength: max, literals, maxLiteralBytes: 10 });
        for (const chunk of split(Buffer.from(data), points)) {
          framer.push(chunk);
          for (;;) {
            const ev = framer.next();
            if (ev === undefined) {
              if (!framer.awaitingDecision) break;
              if (framer.pendingLiteral?.error === undefined) framer.acceptLiteral();
              else framer.rejectLiteral();
              continue;
            }
            expect(['line', 'error', 'literal', 'literal-data', 'literal-end']).toContain(ev.type);
            if (ev.type === 'error') expect(FramingError.isInstance(ev.error)).toBe(true);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
