import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCommand, parseCommand } from '../../src/codec/command.js';
import type { Pop3Command } from '../../src/codec/command.js';
import { Pop3ResponseParser, formatMultiline, formatStatus, parseStatusLine } from '../../src/codec/response.js';
import type { Pop3ResponseEvent } from '../../src/codec/response.js';

const token = fc.stringMatching(/^[!-~]{1,20}$/);
const num = fc.integer({ min: 1, max: 2 ** 31 });
const command: fc.Arbitrary<Pop3Command> = fc.oneof(
  token.map((name) => ({ verb: 'USER' as const, name })),
  fc.stringMatching(/^[ -~]{1,40}$/).filter((p) => p.trim() === p && !/ {2}/.test(p)).map((password) => ({ verb: 'PASS' as const, password })),
  fc.tuple(token, fc.stringMatching(/^[0-9a-f]{32}$/)).map(([name, digest]) => ({ verb: 'APOP' as const, name, digest })),
  fc.constantFrom<Pop3Command>({ verb: 'STAT' }, { verb: 'NOOP' }, { verb: 'RSET' }, { verb: 'QUIT' }, { verb: 'CAPA' }, { verb: 'STLS' }, { verb: 'UTF8' }),
  fc.tuple(fc.constantFrom('LIST' as const, 'UIDL' as const), fc.option(num, { nil: undefined })).map(([verb, message]) => ({ verb, message })),
  fc.tuple(fc.constantFrom('RETR' as const, 'DELE' as const), num).map(([verb, message]) => ({ verb, message })),
  fc.tuple(num, fc.integer({ min: 0, max: 2 ** 31 })).map(([message, lines]) => ({ verb: 'TOP' as const, message, lines })),
  fc.tuple(fc.option(fc.stringMatching(/^[A-Z0-9-]{1,20}$/), { nil: undefined }), fc.option(fc.stringMatching(/^[A-Za-z0-9+/]{1,40}={0,2}$/), { nil: undefined })).map(([mechanism, ir]) => ({
    verb: 'AUTH' as const,
    mechanism,
    initialResponse: mechanism === undefined ? undefined : ir,
  })),
);

describe('command codec', () => {
  it('parse(encode(c)) = c for every command', () => {
    fc.assert(
      fc.property(command, (c) => {
        const line = encodeCommand(c);
        expect(line.endsWith('\r\n')).toBe(true);
        const parsed = parseCommand(line.slice(0, -2));
        expect(parsed).toEqual({ ok: true, command: c });
      }),
    );
  });

  it('returns a command or a typed error for any line, never throws', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (line) => {
        const r = parseCommand(line);
        if (!r.ok) expect(['unknown', 'syntax']).toContain(r.error.kind);
      }),
    );
  });

  it('keywords are case-insensitive; TOP clamps huge line counts', () => {
    expect(parseCommand('retr 01')).toEqual({ ok: true, command: { verb: 'RETR', message: 1 } });
    expect(parseCommand('TOP 1 99999999999999999999999')).toEqual({ ok: true, command: { verb: 'TOP', message: 1, lines: Number.MAX_SAFE_INTEGER } });
    expect(parseCommand('PASS secret with spaces')).toEqual({ ok: true, command: { verb: 'PASS', password: 'secret with spaces' } });
  });

  it('the encoder refuses CR, LF and NUL in arguments, and bad numbers', () => {
    expect(() => encodeCommand({ verb: 'USER', name: 'a\r\nDELE 1' })).toThrow(RangeError);
    expect(() => encodeCommand({ verb: 'PASS', password: 'a\0' })).toThrow(RangeError);
    expect(() => encodeCommand({ verb: 'RETR', message: 0 })).toThrow(RangeError);
    expect(() => encodeCommand({ verb: 'TOP', message: 1, lines: -1 })).toThrow(RangeError);
  });
});

describe('status lines', () => {
  it('formats and parses RFC 2449 response codes', () => {
    expect(formatStatus({ ok: false, code: 'IN-USE', text: 'locked' })).toBe('-ERR [IN-USE] locked\r\n');
    expect(parseStatusLine('-ERR [SYS/TEMP] try later')).toEqual({ type: 'status', ok: false, responseCode: 'SYS/TEMP', text: 'try later' });
    expect(parseStatusLine('+OK')).toEqual({ type: 'status', ok: true, responseCode: undefined, text: '' });
    expect(parseStatusLine('+ ')).toEqual({ type: 'continuation', data: '' });
    expect(parseStatusLine('+OKAY')).toBeUndefined();
    expect(parseStatusLine('* OK imap')).toBeUndefined();
  });
});

/** Run the parser over `input` split at `cuts`, opening a body after every status line listed in `bodies`. */
function parseAll(input: Buffer, cuts: number[], bodies: Set<number>): Pop3ResponseEvent[] {
  const parser = new Pop3ResponseParser();
  const events: Pop3ResponseEvent[] = [];
  let statusIndex = 0;
  const drain = (): void => {
    for (let ev = parser.next(); ev !== undefined; ev = parser.next()) {
      if (ev.type === 'data' && events.at(-1)?.type === 'data') {
        const last = events.pop() as { type: 'data'; chunk: Buffer };
        events.push({ type: 'data', chunk: Buffer.concat([last.chunk, ev.chunk]) });
      } else if (ev.type === 'data') {
        events.push({ type: 'data', chunk: Buffer.from(ev.chunk) });
      } else events.push(ev);
      if (ev.type === 'line' && bodies.has(statusIndex++)) parser.beginBody();
    }
  };
  let at = 0;
  for (const cut of [...cuts.filter((c) => c > 0 && c < input.length).sort((a, b) => a - b), input.length]) {
    parser.push(input.subarray(at, cut));
    at = cut;
    drain();
  }
  return events;
}

describe('Pop3ResponseParser', () => {
  const body = fc.array(fc.stringMatching(/^[ -~]{0,30}$/), { maxLength: 8 });
  it('gives the same events for every split of the input, and un-stuffs bodies', () => {
    fc.assert(
      fc.property(body, body, fc.array(fc.nat(600), { maxLength: 12 }), (a, b, cuts) => {
        const wire = Buffer.from(formatMultiline('one', a) + formatStatus({ ok: false, code: 'AUTH', text: 'no' }) + formatMultiline(undefined, b) + '+OK done\r\n');
        const whole = parseAll(wire, [], new Set([0, 2]));
        expect(parseAll(wire, cuts, new Set([0, 2]))).toEqual(whole);
        const bytes = Array.from({ length: wire.length }, (_, i) => i);
        expect(parseAll(wire, bytes, new Set([0, 2]))).toEqual(whole);
        const text = (lines: string[]): string => lines.map((l) => `${l}\r\n`).join('');
        const expected: Pop3ResponseEvent[] = [{ type: 'line', line: '+OK one' }];
        if (a.length > 0) expected.push({ type: 'data', chunk: Buffer.from(text(a)) });
        expected.push({ type: 'end' }, { type: 'line', line: '-ERR [AUTH] no' }, { type: 'line', line: '+OK' });
        if (b.length > 0) expected.push({ type: 'data', chunk: Buffer.from(text(b)) });
        expected.push({ type: 'end' }, { type: 'line', line: '+OK done' });
        expect(whole).toEqual(expected);
      }),
    );
  });
});
