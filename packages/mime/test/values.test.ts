import { describe, expect, it } from 'vitest';
import {
  binarySection,
  decodeHeaderValue,
  decodeParams,
  imapBody,
  imapBodyStructure,
  imapEnvelope,
  imapStringForHumans,
  parseAddressList,
  parseMessage,
  parseSection,
  partFilename,
  sectionBytes,
} from '../src/index.js';

const crlf = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'latin1');
const brief = (s: string) => parseAddressList(s).map((a) => [a.name, a.route, a.mailbox, a.domain]);

describe('RFC 5322 Appendix A addresses', () => {
  it('A.1.1 and A.1.2', () => {
    expect(brief('John Doe <jdoe@machine.example>')).toEqual([['John Doe', null, 'jdoe', 'machine.example']]);
    expect(brief('"Joe Q. Public" <john.q.public@example.com>')).toEqual([['Joe Q. Public', null, 'john.q.public', 'example.com']]);
    expect(brief('Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>')).toEqual([
      ['Mary Smith', null, 'mary', 'x.test'],
      [null, null, 'jdoe', 'example.org'],
      ['Who?', null, 'one', 'y.test'],
    ]);
  });
  it('A.1.3 groups', () => {
    expect(brief('A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;')).toEqual([
      [null, null, 'A Group', null],
      ['Ed Jones', null, 'c', 'a.test'],
      [null, null, 'joe', 'where.test'],
      ['John', null, 'jdoe', 'one.test'],
      [null, null, null, null],
    ]);
    expect(brief('Undisclosed recipients:;')).toEqual([
      [null, null, 'Undisclosed recipients', null],
      [null, null, null, null],
    ]);
  });
  it('A.5 comments, A.6.1 obsolete routes, broken input', () => {
    expect(brief('Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>')).toEqual([['Pete', null, 'pete', 'silly.test']]);
    expect(brief('jdoe@example.org (John Doe)')).toEqual([['John Doe', null, 'jdoe', 'example.org']]);
    expect(brief('<@route1,@route2:user@example.org>')).toEqual([[null, '@route1,@route2', 'user', 'example.org']]);
    expect(brief('Just A Name')).toEqual([['Just A Name', null, 'MISSING_MAILBOX', 'MISSING_DOMAIN']]);
  });
});

describe('header decoding', () => {
  it('RFC 2047 §8 examples, charsets through iconv-lite', () => {
    expect(decodeHeaderValue('=?ISO-8859-1?Q?Keld_J=F8rn_Simonsen?=')).toBe('Keld Jørn Simonsen');
    expect(decodeHeaderValue('=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=')).toBe('ab');
    expect(decodeHeaderValue('=?KOI8-R?Q?=F0=D2=C9=D7=C5=D4?=')).toBe('Привет');
    expect(decodeHeaderValue(Buffer.from('Grüße', 'utf8'))).toBe('Grüße');
  });
  it('RFC 2231 continuations and charsets', () => {
    const s = parseMessage(crlf(`MIME-Version: 1.0\nContent-Type: application/x-stuff;\n title*0*=us-ascii'en'This%20is%20even%20more%20;\n title*1*=%2A%2A%2Afun%2A%2A%2A%20;\n title*2="isn't it!"\n\nx`));
    expect(s.root.params).toEqual([['title*', "us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn't it!"]]);
    expect(decodeParams(s.root.params)['title']).toBe("This is even more ***fun*** isn't it!");
    expect(partFilename({ dispositionParams: [['filename*', "UTF-8''na%C3%AFve.txt"]] })).toBe('naïve.txt');
  });
});

describe('IMAP values', () => {
  it('RFC 3501 §7.4.2-style BODYSTRUCTURE of a plain message', () => {
    const s = parseMessage(crlf('Subject: x\n\nhello\nworld\n'));
    expect(imapBodyStructure(s)).toBe('("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2 NIL NIL NIL NIL)');
    expect(imapBody(s)).toBe('("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 14 2)');
  });
  it('multipart with extension data', () => {
    const s = parseMessage(
      crlf('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: inline; filename="a.txt"\nContent-Language: en\n\nhi\n--b--\n'),
    );
    expect(imapBodyStructure(s)).toBe('(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 2 0 NIL ("inline" ("filename" "a.txt")) ("en") NIL) "mixed" ("boundary" "b") NIL NIL NIL)');
  });
  it('ENVELOPE with NIL, literals for 8-bit and defaults for Sender/Reply-To', () => {
    const s = parseMessage(crlf('From: A <a@b.c>\nSubject: caf\xe9\n\n'));
    expect(imapEnvelope(s)).toBe('(NIL {4}\r\ncaf\xe9 (("A" NIL "a" "b.c")) (("A" NIL "a" "b.c")) (("A" NIL "a" "b.c")) NIL NIL NIL NIL NIL)');
    expect(imapStringForHumans('  a   b ')).toBe('{3}\r\na b');
  });
  it('sections: HEADER.FIELDS, MIME, TEXT of a message/rfc822, partial, BINARY', () => {
    const msg = crlf('From: a@b\nSubject: s\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\naGVsbG8=\n--b\nContent-Type: message/rfc822\n\nSubject: in\n\nbody\n--b--\n');
    const s = parseMessage(msg);
    expect(sectionBytes(s, 'HEADER.FIELDS (SUBJECT)', msg).toString()).toBe('Subject: s\r\n\r\n');
    expect(sectionBytes(s, '1.MIME', msg).toString()).toBe('Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n');
    expect(sectionBytes(s, '2.HEADER', msg).toString()).toBe('Subject: in\r\n\r\n');
    expect(sectionBytes(s, '2.TEXT', msg).toString()).toBe('body');
    expect(sectionBytes(s, '1', msg, { partial: { offset: 2, length: 3 } }).toString()).toBe('Vsb');
    expect(sectionBytes(s, '9', msg).length).toBe(0);
    expect(binarySection(s, '1', msg)).toEqual(Buffer.from('hello'));
    expect(parseSection('1.2.HEADER.FIELDS.NOT (From "To")')).toEqual({ part: [1, 2], text: 'HEADER.FIELDS.NOT', fields: ['FROM', 'TO'] });
    expect(() => parseSection('1.')).toThrow(/bad section/);
  });
});
