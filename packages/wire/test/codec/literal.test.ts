import { Buffer } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FramingError } from '../../src/errors.js';
import { LineFramer } from '../../src/codec/line-framer.js';
import type { LineFramerEvent, LineFramerOptions, LiteralEvent } from '../../src/codec/line-framer.js';
import { split } from './chunking.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

type Norm = Record<string, unknown> & { type: string };

function norm(ev: LineFramerEvent): Norm {
  switch (ev.type) {
    case 'line':
      return { type: 'line', line: ev.line.toString('latin1'), continuation: ev.continuation };
    case 'error':
      return { type: 'error', code: ev.error.code, head: ev.head.toString('latin1') };
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

function merge(events: Norm[]): Norm[] {
  const out: Norm[] = [];
  for (const ev of events) {
    const last = out[out.length - 1];
    if (ev.type === 'literal-data' && last?.type === 'literal-data') out[out.length - 1] = { type: 'literal-data', data: String(last.data) + String(ev.data) };
    else out.push(ev);
  }
  return out;
}

type Decide = (literal: LiteralEvent) => boolean;

/** A deterministic server policy for the properties: accept even sizes within the cap. */
const evenPolicy: Decide = (literal) => literal.error === undefined && literal.size % 2 === 0;

/** Push each chunk and drain, deciding pending literals with `decide` (decisions: recorded as events). */
function run(chunks: readonly Uint8Array[], options: LineFramerOptions, decide: Decide = evenPolicy): Norm[] {
  const framer = new LineFramer(options);
  const out: Norm[] = [];
  for (const chunk of chunks) {
    framer.push(chunk);
    for (;;) {
      const ev = framer.next();
      if (ev !== undefined) {
        out.push(norm(ev));
        continue;
      }
      if (!framer.awaitingDecision) break;
      const accept = decide(framer.pendingLiteral!);
      out.push({ type: accept ? 'accepted' : 'rejected' });
      if (accept) framer.acceptLiteral();
      else framer.rejectLiteral();
    }
  }
  return merge(out);
}

describe('LineFramer: IMAP literals, server side', () => {
  it('stops at a literal until the caller accepts, then streams exactly n bytes and continues the line', () => {
    const framer = new LineFramer({ literals: 'server' });
    framer.push(b('A1 LOGIN {5}\r\nhello {3+}\r\nabc\r\nA2 NOOP\r\n'));
    const lit = framer.next();
    expect(lit && norm(lit)).toEqual({
      type: 'literal',
      line: 'A1 LOGIN {5}',
      size: 5,
      synchronizing: true,
      binary: false,
      decision: 'pending',
      error: undefined,
      continuation: false,
    });
    // Nothing of the literal is read before the decision.
    expect(framer.next()).toBeUndefined();
    expect(framer.awaitingDecision).toBe(true);
    expect(framer.pendingLiteral).toBe(lit);
    expect(framer.bufferedBytes).toBe('hello {3+}\r\nabc\r\nA2 NOOP\r\n'.length);
    framer.acceptLiteral();
    expect(framer.awaitingDecision).toBe(false);
    expect([...framer].map(norm)).toEqual([
      { type: 'literal-data', data: 'hello' },
      { type: 'literal-end', skipped: false },
      { type: 'literal', line: ' {3+}', size: 3, synchronizing: false, binary: false, decision: 'pending', error: undefined, continuation: true },
    ]);
    framer.acceptLiteral();
    expect([...framer].map(norm)).toEqual([
      { type: 'literal-data', data: 'abc' },
      { type: 'literal-end', skipped: false },
      { type: 'line', line: '', continuation: true },
      { type: 'line', line: 'A2 NOOP', continuation: false },
    ]);
  });

  it('reject of a synchronizing literal: the client never sends it, so the next line is a new command', () => {
    expect(run([b('A1 APPEND INBOX {10}\r\nA2 NOOP\r\n')], { literals: 'server' }, () => false)).toEqual([
      { type: 'literal', line: 'A1 APPEND INBOX {10}', size: 10, synchronizing: true, binary: false, decision: 'pending', error: undefined, continuation: false },
      { type: 'rejected' },
      { type: 'line', line: 'A2 NOOP', continuation: false },
    ]);
  });

  it('reject of a non-synchronizing literal skips its bytes without storing them (RFC 7888 §4)', () => {
    expect(run([b('A1 APPEND INBOX {7+}\r\nA2 NOOP)\r\nA3 NOOP\r\n')], { literals: 'server' }, () => false)).toEqual([
      { type: 'literal', line: 'A1 APPEND INBOX {7+}', size: 7, synchronizing: false, binary: false, decision: 'pending', error: undefined, continuation: false },
      { type: 'rejected' },
      { type: 'literal-end', skipped: true },
      // The rest of the refused command: the session ignores continuation lines.
      { type: 'line', line: ')', continuation: true },
      { type: 'line', line: 'A3 NOOP', continuation: false },
    ]);
  });

  it('a literal over maxLiteralBytes is marked before any byte is read, and cannot be accepted', () => {
    const framer = new LineFramer({ literals: 'server', maxLiteralBytes: 4 });
    framer.push(b('A1 APPEND INBOX {5}\r\n'));
    const ev = framer.next();
    expect(ev?.type).toBe('literal');
    if (ev?.type !== 'literal') return;
    expect(ev.error?.code).toBe('ERR_LITERAL_TOO_LARGE');
    expect(ev.error?.side).toBe('remote');
    expect(ev.error?.reply?.imap).toEqual({ status: 'NO', code: 'TOOBIG' });
    expect(FramingError.isInstance(ev.error)).toBe(true);
    let thrown: unknown;
    try {
      framer.acceptLiteral();
    } catch (err) {
      thrown = err;
    }
    expect(FramingError.isInstance(thrown) && thrown.code === 'ERR_FRAMER_STATE' && thrown.side === 'local').toBe(true);
    expect(framer.awaitingDecision).toBe(true);
    framer.rejectLiteral();
    framer.push(b('A2 NOOP\r\n'));
    expect(norm(framer.next()!)).toEqual({ type: 'line', line: 'A2 NOOP', continuation: false });
  });

  it('an oversized non-synchronizing literal is answered BAD [TOOBIG] and skipped in O(1) memory', () => {
    const framer = new LineFramer({ literals: 'server', maxLiteralBytes: 1024 });
    framer.push(b('A1 APPEND INBOX {1000000+}\r\n'));
    const ev = framer.next();
    expect(ev?.type === 'literal' && ev.error?.reply?.imap).toEqual({ status: 'BAD', code: 'TOOBIG' });
    framer.rejectLiteral();
    const chunk = Buffer.alloc(100_000, 'q');
    for (let i = 0; i < 9; i++) {
      framer.push(chunk);
      expect(framer.next()).toBeUndefined();
      expect(framer.bufferedBytes).toBe(0);
    }
    framer.push(chunk);
    expect(framer.next()).toEqual({ type: 'literal-end', skipped: true });
    framer.push(b('\r\nA2 NOOP\r\n'));
    expect([...framer].map(norm)).toEqual([
      { type: 'line', line: '', continuation: true },
      { type: 'line', line: 'A2 NOOP', continuation: false },
    ]);
  });

  it('streams a large accepted literal in chunks, never holding it whole', () => {
    const size = 8 * 1024 * 1024;
    const framer = new LineFramer({ literals: 'server' });
    framer.push(b(`A1 APPEND INBOX {${size}}\r\n`));
    expect(framer.next()?.type).toBe('literal');
    framer.acceptLiteral();
    const chunk = Buffer.alloc(64 * 1024, 'm');
    let received = 0;
    let largest = 0;
    const types = new Set<string>();
    for (let sent = 0; sent < size; sent += chunk.length) {
      framer.push(chunk);
      for (const ev of framer) {
        types.add(ev.type);
        if (ev.type === 'literal-data') {
          received += ev.chunk.length;
          largest = Math.max(largest, ev.chunk.length);
        }
      }
      expect(framer.bufferedBytes).toBe(0);
    }
    expect(received).toBe(size);
    expect(largest).toBeLessThanOrEqual(chunk.length);
    expect([...types]).toEqual(['literal-data', 'literal-end']);
    framer.push(b(')\r\n'));
    expect([...framer].map(norm)).toEqual([{ type: 'line', line: ')', continuation: true }]);
  });

  it('recognises literal8 (~{n}, RFC 3516) and {0}', () => {
    expect(run([b('A1 APPEND INBOX ~{3}\r\n\0\r\n {0}\r\n\r\n')], { literals: 'server' }, () => true)).toEqual([
      { type: 'literal', line: 'A1 APPEND INBOX ~{3}', size: 3, synchronizing: true, binary: true, decision: 'pending', error: undefined, continuation: false },
      { type: 'accepted' },
      { type: 'literal-data', data: '\0\r\n' },
      { type: 'literal-end', skipped: false },
      { type: 'literal', line: ' {0}', size: 0, synchronizing: true, binary: false, decision: 'pending', error: undefined, continuation: true },
      { type: 'accepted' },
      { type: 'literal-end', skipped: false },
      { type: 'line', line: '', continuation: true },
    ]);
  });

  it('ignores things that only look like literals', () => {
    const lines = ['A1 X {}', 'A1 X {a}', 'A1 X 3}', 'A1 X {+}', 'A1 X {3} ', 'A1 X {-3}'];
    const events = run([b(lines.map((l) => `${l}\r\n`).join(''))], { literals: 'server' });
    expect(events).toEqual(lines.map((line) => ({ type: 'line', line, continuation: false })));
  });

  it('with literals: none, {n} is plain text', () => {
    expect(run([b('A1 LOGIN {5}\r\n')], {})).toEqual([{ type: 'line', line: 'A1 LOGIN {5}', continuation: false }]);
  });

  it('an over-long line ending in {n} is an error, not a literal', () => {
    expect(run([b('A1 LOGIN {5}\r\nA2 OK\r\n')], { literals: 'server', maxLineLength: 10 })).toEqual([
      { type: 'error', code: 'ERR_LINE_TOO_LONG', head: 'A1 LOGIN ' },
      { type: 'line', line: 'A2 OK', continuation: false },
    ]);
  });

  it('accept/reject without a pending literal is a local error', () => {
    const framer = new LineFramer({ literals: 'server' });
    expect(() => framer.acceptLiteral()).toThrow(FramingError);
    expect(() => framer.rejectLiteral()).toThrow(/no literal/);
  });

  it('discardBuffered and takeBuffered drop a pending decision and any literal state', () => {
    const framer = new LineFramer({ literals: 'server' });
    framer.push(b('A1 LOGIN {5}\r\nhel'));
    expect(framer.next()?.type).toBe('literal');
    expect(framer.discardBuffered()).toBe(3);
    expect(framer.awaitingDecision).toBe(false);
    expect(framer.pendingLiteral).toBeUndefined();
    framer.push(b('A2 NOOP\r\n{2}\r\nxy'));
    expect(norm(framer.next()!)).toEqual({ type: 'line', line: 'A2 NOOP', continuation: false });
    expect(framer.next()?.type).toBe('literal');
    framer.acceptLiteral();
    expect(framer.takeBuffered().toString()).toBe('xy');
    framer.push(b('A3 NOOP\r\n'));
    expect(norm(framer.next()!)).toEqual({ type: 'line', line: 'A3 NOOP', continuation: false });
  });
});

describe('LineFramer: IMAP literals, client side', () => {
  it('accepts literals under the cap automatically and skips larger ones', () => {
    const wire = b('* 1 FETCH (BODY[] {5}\r\nhello)\r\n* 2 FETCH (BODY[] {12}\r\nhello world!)\r\nA1 OK\r\n');
    expect(run([wire], { literals: 'client', maxLiteralBytes: 10 })).toEqual([
      { type: 'literal', line: '* 1 FETCH (BODY[] {5}', size: 5, synchronizing: true, binary: false, decision: 'accepted', error: undefined, continuation: false },
      { type: 'literal-data', data: 'hello' },
      { type: 'literal-end', skipped: false },
      { type: 'line', line: ')', continuation: true },
      { type: 'literal', line: '* 2 FETCH (BODY[] {12}', size: 12, synchronizing: true, binary: false, decision: 'skipped', error: 'ERR_LITERAL_TOO_LARGE', continuation: false },
      { type: 'literal-end', skipped: true },
      { type: 'line', line: ')', continuation: true },
      { type: 'line', line: 'A1 OK', continuation: false },
    ]);
  });
});

describe('LineFramer: literal properties', () => {
  const piece = fc.constantFrom('A1 X ', 'a', '.', '\r', '\n', '\r\n', '\0', '{3}\r\n', '{0}\r\n', '{2+}\r\n', '~{1}\r\n', '{4}\r\n', '{12+}\r\n', 'y'.repeat(20), '}', '{');
  const input = fc.array(piece, { maxLength: 40 }).map((parts) => b(parts.join('')));
  const cuts = fc.array(fc.nat({ max: 2000 }), { maxLength: 12 });
  const options = fc.record({
    literals: fc.constantFrom('server' as const, 'client' as const),
    maxLineLength: fc.integer({ min: 1, max: 40 }),
    maxLiteralBytes: fc.integer({ min: 0, max: 6 }),
    allowBareLf: fc.boolean(),
  });

  it('every split of the input, and one byte at a time, gives the same frames and decisions', () => {
    fc.assert(
      fc.property(input, cuts, options, (data, points, opts) => {
        const whole = run([data], opts);
        expect(run(split(data, points), opts)).toEqual(whole);
        expect(run([...data].map((x) => Buffer.from([x])), opts)).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });

  it('the bytes of accepted literals and lines add up to the input (nothing invented, nothing lost)', () => {
    fc.assert(
      fc.property(input, options, (data, opts) => {
        // Accept everything acceptable, with no line limit hit: the framing is then lossless.
        const o = { ...opts, maxLineLength: 10_000, maxLiteralBytes: 10_000 };
        const framer = new LineFramer(o);
        framer.push(data);
        const parts: Buffer[] = [];
        for (;;) {
          const ev = framer.next();
          if (ev === undefined) {
            if (!framer.awaitingDecision) break;
            framer.acceptLiteral();
            continue;
          }
          if (ev.type === 'line' || ev.type === 'literal') parts.push(ev.line, b(ev.ending === 'crlf' ? '\r\n' : '\n'));
          if (ev.type === 'literal-data') parts.push(ev.chunk);
        }
        parts.push(framer.takeBuffered());
        expect(Buffer.concat(parts).equals(data)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
