import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MimeError, MimeParser, imapBodyStructure, parseMessage, parseMessageStream, resolveMimeLimits, sectionBytes } from '../src/index.js';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');

const mixed = crlf(
  'From: a@example.org\nSubject: hi\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\npreamble\n--b\nContent-Type: text/plain\n\none\n--b\nContent-Type: message/rfc822\n\nSubject: inner\n\ninner body\n--b--\nepilogue\n',
);

describe('MimeParser', () => {
  it('records offsets of every header and body, nested messages included', () => {
    const s = parseMessage(mixed);
    const text = mixed.toString('latin1');
    const [p1, p2] = s.root.children!;
    expect(text.slice(p1!.bodyStart, p1!.bodyEnd)).toBe('one');
    expect(text.slice(p1!.headerStart, p1!.bodyStart)).toBe('Content-Type: text/plain\r\n\r\n');
    const inner = p2!.message!;
    expect(text.slice(inner.headerStart, inner.bodyStart)).toBe('Subject: inner\r\n\r\n');
    expect(text.slice(inner.bodyStart, inner.bodyEnd)).toBe('inner body');
    expect(inner.envelope?.subject).toBe('inner');
    expect(s.size).toBe(mixed.length);
    expect(JSON.parse(JSON.stringify(s))).toEqual(s);
  });

  it('bare LF: offsets are stored bytes, sizes count CRLF', () => {
    const lf = Buffer.from(mixed.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
    const a = parseMessage(mixed);
    const b = parseMessage(lf);
    expect(b.virtualSize).toBe(a.size);
    expect(imapBodyStructure(b)).toBe(imapBodyStructure(a));
    expect(sectionBytes(b, '1', lf)).toEqual(sectionBytes(a, '1', mixed));
    expect(lf.toString('latin1', b.root.children![0]!.bodyStart, b.root.children![0]!.bodyEnd)).toBe('one');
  });

  it('gives the same structure for every chunking (property)', () => {
    const whole = JSON.stringify(parseMessage(mixed));
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: mixed.length }), { maxLength: 12 }), (cuts) => {
        const points = [...new Set(cuts)].sort((x, y) => x - y);
        const p = new MimeParser();
        let last = 0;
        for (const c of [...points, mixed.length]) {
          p.push(mixed.subarray(last, c));
          last = c;
        }
        expect(JSON.stringify(p.end())).toBe(whole);
      }),
      { numRuns: 200 },
    );
  });

  it('one byte at a time, and from a stream', async () => {
    const p = new MimeParser();
    for (const byte of mixed) p.push(Uint8Array.of(byte));
    expect(p.end()).toEqual(parseMessage(mixed));
    async function* chunks(): AsyncGenerator<Uint8Array> {
      await Promise.resolve();
      yield mixed.subarray(0, 7);
      yield mixed.subarray(7);
    }
    expect(await parseMessageStream(chunks())).toEqual(parseMessage(mixed));
  });

  it('never throws on arbitrary input (fuzz)', () => {
    const alphabet = ['\r\n', '\n', '--b', '--b--', 'Content-Type: multipart/mixed; boundary=b', 'Content-Type: message/rfc822', ': ', 'x', ' ', '\0', '\xff', '"', '('];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { maxLength: 80 }), (parts) => {
        const bytes = Buffer.from(parts.join(''), 'latin1');
        const s = parseMessage(bytes);
        expect(s.size).toBe(bytes.length);
        imapBodyStructure(s);
      }),
      { numRuns: 300 },
    );
  });

  it('refuses push() after end() with ERR_PARSER_ENDED', () => {
    const p = new MimeParser();
    p.end();
    try {
      p.push(Buffer.from('x'));
      expect.unreachable();
    } catch (e) {
      expect(MimeError.isInstance(e) && e.code).toBe('ERR_PARSER_ENDED');
    }
  });
});

describe('limits degrade, never throw', () => {
  const nested = (depth: number): Buffer => {
    let body = 'Content-Type: text/plain\n\nbottom';
    for (let i = depth; i > 0; i--) body = `Content-Type: multipart/mixed; boundary="d${i}x"\n\n--d${i}x\n${body}\n--d${i}x--\n`;
    return crlf(body);
  };
  it('maxDepth turns the too-deep multipart into an opaque leaf', () => {
    const s = parseMessage(nested(10), { maxDepth: 4 });
    let p = s.root;
    while (p.children?.[0]) p = p.children[0];
    expect(p.truncated).toBe(true);
    expect(p.overflow).toBe('depth');
    expect(imapBodyStructure(p)).toMatch(/^\("application" "octet-stream"/);
  });
  it('maxParts stops recognising boundaries', () => {
    const many = crlf(`Content-Type: multipart/mixed; boundary=b\n\n${'--b\n\nx\n'.repeat(20)}--b--\n`);
    expect(parseMessage(many, { maxParts: 5 }).root.children).toHaveLength(4);
  });
  it('maxHeaderBytes and maxHeaderCount end the header early', () => {
    const big = crlf(`Subject: x\n${'X-A: 1\n'.repeat(100)}\nbody\n`);
    const s = parseMessage(big, { maxHeaderCount: 10 });
    expect(s.root.overflow).toBe('header');
    expect(parseMessage(big, { maxHeaderBytes: 50 }).root.bodyStart).toBeLessThan(60);
  });
  it('maxBoundaryLength truncates the boundary, as Dovecot does', () => {
    const b = 'q'.repeat(100);
    const s = parseMessage(crlf(`Content-Type: multipart/mixed; boundary="${b}"\n\n--${b}\n\nx\n--${b}--\n`), { maxBoundaryLength: 80 });
    // The 80-byte prefix matches both lines; the close line's "--" is past the
    // prefix, so (as in Dovecot) it opens a second, empty part.
    expect(s.root.children).toHaveLength(2);
  });
  it('resolveMimeLimits keeps 0 and refuses negatives', () => {
    expect(resolveMimeLimits({ maxDepth: 0 }).maxDepth).toBe(0);
    expect(() => resolveMimeLimits({ maxParts: -1 })).toThrow(RangeError);
  });
});

// Expected values are Dovecot 2.3.19's answers to the same messages
// (message-parser.c, parse_next_header: a boundary line ends a header, and the
// line end before it, even the empty line that ended the header, belongs to
// the boundary and is counted in the body of the cut part's parent).
describe('a header that ends at a boundary line', () => {
  const mp = (parts: string): Buffer => crlf(`From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n${parts}--b--\nepi\n`);
  const one = '--b\nContent-Type: text/plain\n\nx\n';
  const section = (msg: Buffer, spec: string): string => sectionBytes(parseMessage(msg), spec, msg).toString('latin1');
  const sameForEveryChunking = (msg: Buffer): void => {
    const p = new MimeParser();
    for (const byte of msg) p.push(Uint8Array.of(byte));
    expect(p.end()).toEqual(parseMessage(msg));
  };

  it('the empty line before an outer boundary is not part of the header, for every kind of part', () => {
    const cases: [Buffer, string, string][] = [
      [mp(`${one}--b\nContent-Type: text/plain\n\n`), '2.MIME', 'Content-Type: text/plain\r\n'],
      [mp(`--b\nContent-Type: text/plain\n\n--b\nContent-Type: text/plain\n\ny\n`), '1.MIME', 'Content-Type: text/plain\r\n'],
      [mp(`${one}--b\n\n`), '2.MIME', ''],
      [mp(`${one}--b\nContent-Type: multipart/mixed; boundary="c"\n\n`), '2.MIME', 'Content-Type: multipart/mixed; boundary="c"\r\n'],
      // The part's own boundary is shorter than the outer one on that line: the longest match wins.
      [crlf('Content-Type: multipart/mixed; boundary="bb"\n\n--bb\nContent-Type: multipart/mixed; boundary="b"\n\n--bb--\n'), '1.MIME', 'Content-Type: multipart/mixed; boundary="b"\r\n'],
    ];
    for (const [msg, spec, want] of cases) {
      expect(section(msg, spec), spec).toBe(want);
      const lf = Buffer.from(msg.toString('latin1').replace(/\r\n/g, '\n'), 'latin1');
      expect(section(lf, spec), `${spec} (bare LF)`).toBe(want);
      sameForEveryChunking(msg);
    }
    // Past the depth limit too (corpus 110-112): the header-less parts there have an empty MIME header.
    let deep = 'Content-Type: text/plain\n\nbottom';
    for (let i = 100; i > 0; i--) deep = `Content-Type: multipart/mixed; boundary="d${i}"\n\n--d${i}\n${deep}\n--d${i}--\n`;
    expect(section(crlf(deep), '2.MIME')).toBe('');
  });

  it("the parts above the cut one end after the boundary's line end", () => {
    const eoh = mp(`${one}--b\nContent-Type: multipart/mixed; boundary="c"\n\n--c\nContent-Type: text/plain\n\n`);
    expect(section(eoh, '2')).toBe('--c\r\nContent-Type: text/plain\r\n\r\n');
    expect(section(eoh, '2.1.MIME')).toBe('Content-Type: text/plain\r\n');
    const cut = mp(`${one}--b\nContent-Type: multipart/mixed; boundary="c"\n\n--c\nContent-Type: text/plain\n`);
    expect(section(cut, '2')).toBe('--c\r\nContent-Type: text/plain\r\n');
    expect(section(cut, '2.1.MIME')).toBe('Content-Type: text/plain');
    const inMessage = mp(`--b\nContent-Type: message/rfc822\n\nSubject: in\nContent-Type: multipart/mixed; boundary="c"\n\n--c\nContent-Type: text/plain\n--b\nContent-Type: text/plain\n\nz\n`);
    expect(imapBodyStructure(parseMessage(inMessage))).toBe(
      '(("message" "rfc822" NIL NIL NIL "7bit" 91 (NIL "in" NIL NIL NIL NIL NIL NIL NIL NIL) (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "c") NIL NIL NIL) 5 NIL NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)',
    );
    for (const msg of [eoh, cut, inMessage]) sameForEveryChunking(msg);
  });

  it('an encapsulated message: its header loses the line end, the message/rfc822 part keeps it', () => {
    const eoh = mp(`${one}--b\nContent-Type: message/rfc822\n\n\n`);
    expect(section(eoh, '2.MIME')).toBe('Content-Type: message/rfc822\r\n\r\n');
    expect(section(eoh, '2')).toBe('\r\n');
    expect(section(eoh, '2.HEADER')).toBe('');
    expect(section(eoh, '2.1.MIME')).toBe('');
    const cut = mp(`${one}--b\nContent-Type: message/rfc822\n\nSubject: inner\n`);
    expect(section(cut, '2')).toBe('Subject: inner\r\n');
    expect(section(cut, '2.HEADER')).toBe('Subject: inner');
    expect(imapBodyStructure(parseMessage(cut))).toContain('("message" "rfc822" NIL NIL NIL "7bit" 16 (NIL "inner" NIL NIL NIL NIL NIL NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) 1 NIL NIL NIL NIL)');
    // The message/rfc822 part's own empty line (corpus 100): the encapsulated header is empty.
    const own = mp(`${one}--b\nContent-Type: message/rfc822\n\n`);
    expect(section(own, '2.MIME')).toBe('Content-Type: message/rfc822\r\n');
    expect(section(own, '2.HEADER')).toBe('');
    // Dovecot sends "\r\n" here (its header filter reads on past the part); we stay inside it, as 2.HEADER does.
    expect(section(own, '2.HEADER.FIELDS (SUBJECT)')).toBe('');
    for (const msg of [eoh, cut, own]) sameForEveryChunking(msg);
  });

  it('a multipart whose header a boundary cut has no boundary of its own', () => {
    const msg = mp(`--b\nContent-Type: multipart/mixed; boundary="bc"\n--bc\nContent-Type: text/plain\n\nx\n`);
    const s = parseMessage(msg);
    expect(s.root.children).toHaveLength(2);
    expect(imapBodyStructure(s)).toBe(
      '((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) "mixed" ("boundary" "bc") NIL NIL NIL)("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 1 0 NIL NIL NIL NIL) "mixed" ("boundary" "b") NIL NIL NIL)',
    );
    expect(section(msg, '1')).toBe('');
    expect(section(msg, '2.MIME')).toBe('Content-Type: text/plain\r\n\r\n');
    sameForEveryChunking(msg);
  });
});
