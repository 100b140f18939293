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
