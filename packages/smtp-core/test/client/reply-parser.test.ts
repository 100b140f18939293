import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SmtpClientError } from '../../src/errors.js';
import { formatReply } from '../../src/codec/reply.js';
import { parseReplies, ReplyParser, SmtpCapabilities, splitEnhancedCode } from '../../src/codec/reply-parser.js';
import type { ReplyParserEvent, ReplyParserOptions } from '../../src/codec/reply-parser.js';

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Feed `input` split at `cuts`, draining events after each chunk. */
function parseChunked(input: Uint8Array, cuts: number[], options?: ReplyParserOptions): ReplyParserEvent[] {
  const parser = new ReplyParser(options);
  const events: ReplyParserEvent[] = [];
  let last = 0;
  for (const cut of [...new Set(cuts)].sort((a, b) => a - b)) {
    // A copy per chunk: the framer keeps references to pushed chunks.
    parser.push(Buffer.from(input.subarray(last, cut)));
    events.push(...parser);
    last = cut;
  }
  parser.push(Buffer.from(input.subarray(last)));
  events.push(...parser);
  return events;
}

/** Events as plain data, errors reduced to their code. */
function plain(events: ReplyParserEvent[]): unknown[] {
  return events.map((e) => (e.type === 'reply' ? e.reply : { error: e.error.code, side: e.error.side }));
}

describe('ReplyParser: RFC 5321 §4.2 replies', () => {
  it('reads single-line, multiline and code-only replies', () => {
    const events = parseReplies(bytes('220 mx.example ESMTP ready\r\n250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n354\r\n'));
    expect(plain(events)).toEqual([
      { code: 220, enhanced: undefined, lines: ['mx.example ESMTP ready'] },
      { code: 250, enhanced: undefined, lines: ['mx.example', 'PIPELINING', 'SIZE 100'] },
      { code: 354, enhanced: undefined, lines: [''] },
    ]);
  });

  it('splits RFC 3463 enhanced codes off every line, only when the class matches the code', () => {
    const events = parseReplies(bytes('550-5.1.1 first\r\n550 5.1.1 second\r\n250 5.0.0 wrong class stays\r\n452 4.5.3\r\n'));
    expect(plain(events)).toEqual([
      { code: 550, enhanced: '5.1.1', lines: ['first', 'second'] },
      { code: 250, enhanced: undefined, lines: ['5.0.0 wrong class stays'] },
      { code: 452, enhanced: '4.5.3', lines: [''] },
    ]);
    expect(splitEnhancedCode(250, '2.1.5 ok')).toEqual({ enhanced: '2.1.5', text: 'ok' });
    expect(splitEnhancedCode(250, '2.1.5x ok')).toEqual({ enhanced: undefined, text: '2.1.5x ok' });
  });

  it('turns server mistakes into error events and goes on', () => {
    const events = parseReplies(bytes('hello\r\n250-a\r\n251 b\r\n600 no\r\n25\r\n250xok\r\n250 bare\nLF\r\n220 fine\r\n'));
    const codes = events.map((e) => (e.type === 'error' ? e.error.code : e.reply.code));
    expect(codes).toEqual([
      'ERR_SMTP_CLIENT_MALFORMED_REPLY',
      'ERR_SMTP_CLIENT_MALFORMED_REPLY',
      'ERR_SMTP_CLIENT_MALFORMED_REPLY',
      'ERR_SMTP_CLIENT_MALFORMED_REPLY',
      'ERR_SMTP_CLIENT_MALFORMED_REPLY',
      'ERR_SMTP_CLIENT_MALFORMED_REPLY',
      220,
    ]);
    for (const e of events) if (e.type === 'error') expect(e.error.side).toBe('remote');
  });

  it('caps line length and line count', () => {
    const long = parseReplies(bytes(`250 ${'x'.repeat(100)}\r\n250 ok\r\n`), { maxReplyLineLength: 64 });
    expect(plain(long)).toEqual([{ error: 'ERR_SMTP_CLIENT_MALFORMED_REPLY', side: 'remote' }, { code: 250, enhanced: undefined, lines: ['ok'] }]);
    const many = parseReplies(bytes('250-a\r\n'.repeat(5) + '250 z\r\n'), { maxReplyLines: 3 });
    expect(many[0]?.type).toBe('error');
  });

  it('returns one reply at a time, and discardBuffered drops the rest unparsed (STARTTLS)', () => {
    const parser = new ReplyParser();
    parser.push(bytes('220 go\r\n250-inj\r\n250 ected\r\n'));
    expect(parser.next()).toMatchObject({ type: 'reply', reply: { code: 220 } });
    expect(parser.discardBuffered()).toBe('250-inj\r\n250 ected\r\n'.length);
    expect(parser.next()).toBeUndefined();
    parser.push(bytes('250-a\r\n'));
    expect(parser.next()).toBeUndefined();
    expect(parser.inReply).toBe(true);
    expect(parser.discardBuffered()).toBe(7);
    expect(parser.inReply).toBe(false);
  });

  it('formatReply writes what it parsed', () => {
    const text = '250-2.0.0 one\r\n250 2.0.0 two\r\n';
    const [ev] = parseReplies(bytes(text));
    expect(ev?.type === 'reply' && formatReply(ev.reply)).toBe(text);
  });
});

describe('ReplyParser properties', () => {
  const replyLine = fc
    .tuple(fc.constantFrom('220', '250', '354', '421', '550', '199', '25x', '999'), fc.constantFrom(' ', '-', '', 'x'), fc.string({ maxLength: 30 }))
    .map(([code, sep, text]) => `${code}${sep}${text}`);
  const input = fc.oneof(
    fc.array(replyLine, { maxLength: 12 }).map((lines) => bytes(lines.map((l) => `${l}\r\n`).join(''))),
    fc.uint8Array({ maxLength: 300 }),
    fc.array(fc.constantFrom('250', '-', ' ', '2.1.0', '\r', '\n', '\r\n', 'x', '\u00e9', '\0'), { maxLength: 60 }).map((parts) => bytes(parts.join(''))),
  );

  it('never throws, and only yields replies or MALFORMED_REPLY errors', () => {
    fc.assert(
      fc.property(input, (data) => {
        for (const ev of parseReplies(data, { maxReplyLineLength: 64, maxReplyLines: 4 })) {
          if (ev.type === 'error') {
            expect(SmtpClientError.isInstance(ev.error)).toBe(true);
            expect(ev.error.code).toBe('ERR_SMTP_CLIENT_MALFORMED_REPLY');
          } else {
            expect(ev.reply.code).toBeGreaterThanOrEqual(200);
            expect(ev.reply.code).toBeLessThan(600);
            for (const line of ev.reply.lines) expect(line).not.toMatch(/[\r\n\0]/);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('gives the same events for every chunking, one byte at a time included', () => {
    fc.assert(
      fc.property(input, fc.array(fc.nat(400), { maxLength: 8 }), (data, cuts) => {
        const options = { maxReplyLineLength: 64, maxReplyLines: 4 };
        const whole = plain(parseReplies(data, options));
        expect(plain(parseChunked(data, cuts.map((c) => c % (data.length + 1)), options))).toEqual(whole);
        expect(plain(parseChunked(data, Array.from({ length: data.length }, (_, i) => i), options))).toEqual(whole);
      }),
      { numRuns: 300 },
    );
  });
});

describe('SmtpCapabilities', () => {
  it('reads an EHLO reply (RFC 5321 §4.1.1.1), old AUTH= syntax included', () => {
    const [ev] = parseReplies(
      bytes('250-mx.example Hello [127.0.0.1]\r\n250-SIZE 35882577\r\n250-auth=LOGIN PLAIN\r\n250-AUTH CRAM-MD5 PLAIN\r\n250-8BITMIME\r\n250-bad_keyword!\r\n250 CHUNKING\r\n'),
    );
    if (ev?.type !== 'reply') throw new Error('no reply');
    const caps = SmtpCapabilities.fromEhloReply(ev.reply);
    expect(caps.domain).toBe('mx.example');
    expect(caps.size).toBe(35882577);
    expect(caps.authMechanisms).toEqual(['LOGIN', 'PLAIN', 'CRAM-MD5']);
    expect(caps.eightBitMime && caps.chunking).toBe(true);
    expect(caps.has('bad_keyword!')).toBe(false);
    expect(caps.startTls || caps.pipelining || caps.smtpUtf8 || caps.dsn || caps.enhancedStatusCodes).toBe(false);
    expect(SmtpCapabilities.fromHeloReply(ev.reply).esmtp).toBe(false);
  });
});
