/**
 * The parser's fast paths (lines read in place, body lines skipped, strings
 * made only for kept fields, lines cut by chunk ends carried) against the
 * plain line-by-line parser it replaced (test/reference/line-parser.ts), on
 * random MIME-shaped input: CRLF, bare LF and stray CR, boundaries that are
 * prefixes of each other, boundary lines at chunk ends, folded and overlong
 * header fields, small limits, and every chunking.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MimeParser, imapString, parseMessage, parseMessageStream } from '../src/index.js';
import type { MimeParserOptions } from '../src/index.js';
import { referenceParse } from './reference/line-parser.js';

const HEADER_LINES = [
  'Content-Type: multipart/mixed; boundary=b',
  'Content-Type: multipart/alternative; boundary="bb"',
  'content-type:multipart/digest;boundary=b1',
  'Content-Type: multipart/mixed; boundary="b--"',
  'Content-Type: multipart/mixed; boundary="b-"',
  'Content-Type: multipart/mixed; boundary=""',
  'Content-Type: multipart/related; boundary*0=b; boundary*1=b',
  'Content-Type: message/rfc822',
  'Content-Type: message/global',
  'Content-Type: text/plain; charset=utf-8; format=flowed',
  'Content-Type: text',
  'MIME-Version: 1.0',
  'Content-Transfer-Encoding: base64',
  'Content-Disposition: attachment; filename="a b.pdf"',
  'Content-Language: en, fr',
  'Content-ID: <x@y>',
  'CONTENT-DESCRIPTION:   ',
  'Content-Location: http://x/\0y',
  'Subject: =?utf-8?q?R=C3=A9union?=',
  'From: Ann <ann@example.org>, "B" <b@x>',
  'To: group: a@b, c@d;',
  'Cc: x',
  'Date: Mon, 1 Jan 2024 00:00:00 +0000',
  'Message-ID: <1@x>',
  'Received: from x by y',
  'X-Other: y',
  ' folded',
  '\tfolded: too',
  'no colon',
  ': empty name',
  'Content-Type : text/html',
  'Content\rType: multipart/mixed; boundary=b',
];
const BODY_LINES = ['--b', '--b--', '--b----', '--b---', '--b-', '--bb', '--bb--', '--b1', '--b1--', '--bb--x', '--', '-', '---b', '--b ', '--bbb', 'text', '', '', '', '', '--b--junk'];
const TEXT = fc.string({ unit: fc.constantFrom('a', 'b', ':', ' ', '\t', '-', '\0', '\xff', '"', '=', ';', '\r'), maxLength: 150 });
const LINE = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...HEADER_LINES) }, { weight: 4, arbitrary: fc.constantFrom(...BODY_LINES) }, { weight: 1, arbitrary: TEXT });
const EOL = fc.constantFrom('\n', '\r\n', '\r\n', '\r\r\n', '');
const MESSAGE = fc.array(fc.tuple(LINE, EOL), { maxLength: 70 }).map((lines) => Buffer.from(lines.map(([l, e]) => l + e).join(''), 'latin1'));

const small = (max: number) => fc.option(fc.integer({ min: 0, max }), { nil: undefined });
const OPTIONS: fc.Arbitrary<MimeParserOptions> = fc.oneof(
  fc.constant({}),
  fc.record({
    maxHeaderBytes: small(300),
    maxHeaderCount: small(8),
    maxFieldBytes: small(60),
    maxKeptHeaderBytes: small(100),
    maxDepth: small(5),
    maxParts: small(8),
    maxBoundaryLength: small(4),
    encapsulateGlobal: fc.option(fc.boolean(), { nil: undefined }),
  }),
);

/** Split `bytes` at the given points (any order, repeats allowed). */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let last = 0;
  for (const c of [...points, bytes.length]) {
    out.push(bytes.subarray(last, c));
    last = c;
  }
  return out;
}

describe('fast paths agree with the line-by-line reference parser (property)', () => {
  it('whole messages, any limits', () => {
    fc.assert(
      fc.property(MESSAGE, OPTIONS, (bytes, options) => {
        expect(JSON.stringify(parseMessage(bytes, options))).toBe(JSON.stringify(referenceParse(bytes, options)));
      }),
      { numRuns: 1500 },
    );
  });

  it('split into chunks anywhere, boundary lines and CRLFs cut included', () => {
    fc.assert(
      fc.property(MESSAGE, OPTIONS, fc.array(fc.nat(), { maxLength: 20 }), (bytes, options, cuts) => {
        const p = new MimeParser(options);
        for (const c of chunks(bytes, cuts)) p.push(c);
        expect(JSON.stringify(p.end())).toBe(JSON.stringify(referenceParse(bytes, options)));
      }),
      { numRuns: 1500 },
    );
  });

  it('parseMessageStream fed random chunk sizes equals parseMessage', async () => {
    await fc.assert(
      fc.asyncProperty(MESSAGE, fc.array(fc.nat(), { maxLength: 10 }), async (bytes, cuts) => {
        expect(JSON.stringify(await parseMessageStream(chunks(bytes, cuts)))).toBe(JSON.stringify(parseMessage(bytes)));
      }),
      { numRuns: 300 },
    );
  });

  it('one byte at a time through a long header field and a long boundary line', () => {
    const long = `Subject: ${'x'.repeat(300)}\r\n ${'y'.repeat(200)}\r\nContent-Type: multipart/mixed; boundary=${'q'.repeat(90)}\r\n\r\n--${'q'.repeat(90)}\r\n\r\nbody\r\n--${'q'.repeat(90)}--\r\n`;
    const bytes = Buffer.from(long, 'latin1');
    for (const options of [{}, { maxBoundaryLength: 85, maxFieldBytes: 100 }]) {
      const p = new MimeParser(options);
      for (let i = 0; i < bytes.length; i++) p.push(bytes.subarray(i, i + 1));
      expect(JSON.stringify(p.end())).toBe(JSON.stringify(referenceParse(bytes, options)));
    }
  });

  it('edge cases, whole and one byte at a time', () => {
    const cases = [
      // An empty boundary: a bare "--" line is a boundary line.
      'Content-Type: multipart/mixed; boundary=""\n\n--\nContent-Type: text/html\n\nx\n--\n\ny\n',
      // Nested boundaries where one is a prefix of the other, closing lines with trailing dashes.
      'Content-Type: multipart/mixed; boundary="b-"\n\n--b-\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\r\n--b---\r\nz\r\n--b--\n',
      'Content-Type: multipart/mixed; boundary=by\n\n--by\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\nx\r\n--by-\r\nz\r\n--b--\n',
      // A CR inside a header name is not a dash.
      'Content\rType: multipart/mixed; boundary=b\n\n--b\n\nx\n',
      // Header and body lines cut by the limits, then a boundary.
      `Subject: ${'s'.repeat(70)}\nContent-Type: multipart/mixed; boundary=${'q'.repeat(12)}\n\n--${'q'.repeat(12)}\n\n--${'q'.repeat(12)}--\n`,
      // No line end at the very end, after a CR.
      'Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r',
    ];
    for (const text of cases) {
      const bytes = Buffer.from(text, 'latin1');
      for (const options of [{}, { maxFieldBytes: 20, maxBoundaryLength: 5 }]) {
        const expected = JSON.stringify(referenceParse(bytes, options));
        expect(JSON.stringify(parseMessage(bytes, options))).toBe(expected);
        const p = new MimeParser(options);
        for (let i = 0; i < bytes.length; i++) p.push(bytes.subarray(i, i + 1));
        expect(JSON.stringify(p.end())).toBe(expected);
      }
    }
  });

  it('structures are plain objects and arrays (no class instances), equal after a JSON round trip', () => {
    const s = parseMessage(Buffer.from('Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; a=1\nContent-Language: en\n\nx\n--b--\n', 'latin1'));
    expect(Object.getPrototypeOf(s)).toBe(Object.prototype);
    expect(Object.getPrototypeOf(s.root.children![0]!)).toBe(Object.prototype);
    expect(Array.isArray(s.root.children![0]!.params![0])).toBe(true);
    expect(JSON.parse(JSON.stringify(s))).toStrictEqual(s);
  });
});

/** imapString as it was: count escapes, then copy char by char (imapQuoted). */
function referenceImapString(s: string): string {
  let escapes = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) {
      if (escapes++ < 4) continue;
      return `{${s.length}}\r\n${s}`;
    }
    if (c === 0x0d || c === 0x0a || c >= 0x80) return `{${s.length}}\r\n${s}`;
  }
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += '\\';
    out += s[i];
  }
  return out + '"';
}

describe('imapString fast path (property)', () => {
  it('equals the char-by-char quoting', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom('a', ' ', '"', '\\', '\r', '\n', '\xe9', '\0', '{'), maxLength: 20 }), (s) => {
        expect(imapString(s)).toBe(referenceImapString(s));
      }),
      { numRuns: 2000 },
    );
  });
});
