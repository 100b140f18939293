import { describe, expect, it } from 'vitest';
import { checkDomain, isIPv6Literal, parseMailbox, parsePath } from '../../src/codec/address.js';
import { decodeXtext, encodeXtext } from '../../src/codec/xtext.js';
import { formatReply } from '../../src/codec/reply.js';
import { parseMailParams, parseRcptParams } from '../../src/codec/params.js';

describe('addresses (RFC 5321 §4.1.2)', () => {
  it.each([
    ['<user@example.org>', 'user@example.org'],
    ['<"john doe"@example.org>', '"john doe"@example.org'],
    ['<"a\\"b"@example.org>', '"a\\"b"@example.org'],
    ['<user+tag@sub.example.org>', 'user+tag@sub.example.org'],
    ['<user@[192.0.2.1]>', 'user@[192.0.2.1]'],
    ['<user@[IPv6:2001:db8::1]>', 'user@[IPv6:2001:db8::1]'],
    ['<user@[IPv6:::ffff:192.0.2.1]>', 'user@[IPv6:::ffff:192.0.2.1]'],
    ['<@relay1.example,@relay2.example:user@example.org>', 'user@example.org'],
    ['<user@xn--bcher-kva.example>', 'user@xn--bcher-kva.example'],
  ])('accepts %s', (path, address) => {
    const r = parsePath(path);
    expect(r.ok && r.mailbox?.address).toBe(address);
  });

  it.each([
    ['user@example.org', 'path must be in angle brackets'],
    ['<user>', 'missing @ or local part'],
    ['<.user@example.org>', 'empty atom in local part (leading, trailing or double dot)'],
    ['<us..er@example.org>', 'empty atom in local part (leading, trailing or double dot)'],
    ['<user@exa_mple.org>', 'invalid domain label'],
    ['<user@-example.org>', 'invalid domain label'],
    ['<user@[300.1.1.1]>', 'invalid address literal'],
    ['<user@[IPv6:1:2:3:4:5:6:7:8:9]>', 'invalid address literal'],
    ['<user@[IPv6:1::2::3]>', 'invalid address literal'],
    ['<jösé@example.org>', 'non-ASCII local part without SMTPUTF8'],
    ['<user@bücher.example>', 'non-ASCII domain without SMTPUTF8'],
    [`<${'a'.repeat(65)}@example.org>`, 'local part longer than 64 octets'],
    ['<user@example.org', 'missing >'],
    ['<user@example.org>x', 'text after path'],
  ])('refuses %s', (path, reason) => {
    const r = parsePath(path);
    expect(r.ok ? 'accepted' : r.reason).toBe(reason);
  });

  it('null path only where allowed', () => {
    expect(parsePath('<>', { allowNull: true })).toEqual({ ok: true, mailbox: null, rest: '' });
    expect(parsePath('<>').ok).toBe(false);
  });

  it('UTF-8 and IDN with SMTPUTF8 (RFC 6531)', () => {
    const r = parseMailbox('用户@例子.广告', { smtputf8: true });
    expect(r.ok && r.mailbox.asciiDomain).toBe('xn--fsqu00a.xn--4rr70v');
    expect(r.ok && r.mailbox.utf8).toBe(true);
  });

  it('lenient mode accepts common mistakes', () => {
    expect(parsePath('user@example.org', { lenient: true }).ok).toBe(true);
    expect(parsePath('< user.@exa_mple.org. >', { lenient: true }).ok).toBe(true);
    expect(parsePath('<a..b@example.org>', { lenient: true }).ok).toBe(true);
  });

  it('IPv6 literal forms', () => {
    expect(isIPv6Literal('::')).toBe(true);
    expect(isIPv6Literal('1:2:3:4:5:6:7:8')).toBe(true);
    expect(isIPv6Literal('1:2:3:4:5:6:192.0.2.1')).toBe(true);
    expect(isIPv6Literal('1:2:3:4:5:6:7:192.0.2.1')).toBe(false);
    expect(isIPv6Literal('g::1')).toBe(false);
    expect(checkDomain('[IPv6:fe80::1]').ok).toBe(true);
  });
});

describe('ESMTP parameters', () => {
  it('SIZE, BODY, SMTPUTF8, AUTH, REQUIRETLS', () => {
    expect(parseMailParams(' SIZE=1000 BODY=8BITMIME SMTPUTF8 AUTH=<> REQUIRETLS', { size: true, eightBitMime: true, smtputf8: true, auth: true, requireTls: true })).toEqual({
      ok: true,
      params: { size: 1000, body: '8BITMIME', smtputf8: true, auth: null, requireTls: true },
    });
    expect(parseMailParams(' AUTH=e+2Bmc2@example.com', { auth: true })).toEqual({ ok: true, params: { auth: 'e+mc2@example.com' } });
    expect(parseMailParams(' SIZE=1 SIZE=2', { size: true })).toMatchObject({ ok: false, error: { code: 501 } });
    expect(parseMailParams(' X-FOO=1', {})).toMatchObject({ ok: false, error: { code: 555 } });
    expect(parseMailParams(' SIZE=abc', { size: true })).toMatchObject({ ok: false, error: { code: 501 } });
  });

  it('DSN parameters (RFC 3461)', () => {
    expect(parseRcptParams(' NOTIFY=never', { dsn: true })).toEqual({ ok: true, params: { notify: ['NEVER'] } });
    expect(parseRcptParams(' NOTIFY=SUCCESS,SUCCESS', { dsn: true }).ok).toBe(false);
    expect(parseRcptParams(' ORCPT=rfc822;a+2Bb@example.org', { dsn: true })).toEqual({ ok: true, params: { orcpt: { type: 'rfc822', address: 'a+b@example.org' } } });
    expect(parseRcptParams(' ORCPT=utf-8;用户@example.org', { dsn: true, smtputf8: true }).ok).toBe(true);
    expect(parseRcptParams(' ORCPT=rfc822', { dsn: true }).ok).toBe(false);
    expect(parseMailParams(` ENVID=${'x'.repeat(101)}`, { dsn: true }).ok).toBe(false);
  });

  it('xtext round trip', () => {
    expect(encodeXtext('a+b=c d')).toBe('a+2Bb+3Dc+20d');
    expect(decodeXtext('a+2Bb+3Dc+20d')).toBe('a+b=c d');
    expect(decodeXtext('a+2b')).toBeUndefined();
    expect(decodeXtext('a=b')).toBeUndefined();
  });
});

describe('reply formatting (RFC 5321 §4.2, RFC 2034)', () => {
  it('single and multiline, with enhanced codes on every line', () => {
    expect(formatReply({ code: 250, enhanced: '2.0.0', lines: ['OK'] })).toBe('250 2.0.0 OK\r\n');
    expect(formatReply({ code: 214, enhanced: '2.0.0', lines: ['a', 'b'] })).toBe('214-2.0.0 a\r\n214 2.0.0 b\r\n');
    expect(formatReply({ code: 250, lines: ['host', 'PIPELINING'] })).toBe('250-host\r\n250 PIPELINING\r\n');
    expect(() => formatReply({ code: 250, lines: ['a\r\nb'] })).toThrow(/CR, LF or NUL/);
  });
});
