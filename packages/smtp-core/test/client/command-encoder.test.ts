import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeData, encodeData } from '@pigeonpost/wire';
import { SmtpClientError } from '../../src/errors.js';
import { checkMailbox, encodeCommand, encodeOrcpt, encodeSaslLine } from '../../src/codec/command-encoder.js';
import { decodeXtext, encodeXtext } from '../../src/codec/xtext.js';
import type { ClientCommand } from '../../src/codec/command-encoder.js';
import { CrlfNormalizer } from '../../src/client/body.js';

const text = (b: Buffer): string => b.toString('utf8');

function invalid(fn: () => unknown): SmtpClientError {
  try {
    fn();
  } catch (err) {
    expect(SmtpClientError.isInstance(err)).toBe(true);
    expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_INVALID_ARGUMENT');
    expect((err as SmtpClientError).side).toBe('local');
    return err as SmtpClientError;
  }
  throw new Error('expected ERR_SMTP_CLIENT_INVALID_ARGUMENT');
}

describe('encodeCommand', () => {
  it('encodes the client commands of RFC 5321 §4.1 and friends', () => {
    expect(text(encodeCommand({ name: 'EHLO', domain: 'client.example' }))).toBe('EHLO client.example\r\n');
    expect(text(encodeCommand({ name: 'HELO', domain: '[192.0.2.1]' }))).toBe('HELO [192.0.2.1]\r\n');
    expect(text(encodeCommand({ name: 'LHLO', domain: '[IPv6:2001:db8::1]' }))).toBe('LHLO [IPv6:2001:db8::1]\r\n');
    expect(text(encodeCommand({ name: 'MAIL', from: '' }))).toBe('MAIL FROM:<>\r\n');
    expect(text(encodeCommand({ name: 'MAIL', from: 'a@b.example', params: { SIZE: '100', body: '8BITMIME', SMTPUTF8: true, X: undefined } }))).toBe(
      'MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME SMTPUTF8\r\n',
    );
    expect(text(encodeCommand({ name: 'RCPT', to: 'Postmaster' }))).toBe('RCPT TO:<Postmaster>\r\n');
    expect(text(encodeCommand({ name: 'RCPT', to: '"john doe"@example.org' }))).toBe('RCPT TO:<"john doe"@example.org>\r\n');
    expect(text(encodeCommand({ name: 'BDAT', size: 0, last: true }))).toBe('BDAT 0 LAST\r\n');
    expect(text(encodeCommand({ name: 'AUTH', mechanism: 'PLAIN', initialResponse: '=' }))).toBe('AUTH PLAIN =\r\n');
    expect(text(encodeCommand({ name: 'STARTTLS' }))).toBe('STARTTLS\r\n');
    expect(text(encodeCommand({ name: 'RCPT', to: '用户@例子.广告' }, { smtputf8: true }))).toBe('RCPT TO:<用户@例子.广告>\r\n');
    expect(text(encodeSaslLine(''))).toBe('\r\n');
  });

  it('refuses what would change the command', () => {
    invalid(() => encodeCommand({ name: 'MAIL', from: 'a@b.example>\r\nRCPT TO:<c@d.example' }));
    invalid(() => encodeCommand({ name: 'MAIL', from: 'a@b.example', params: { SIZE: '1\r\nRSET' } }));
    invalid(() => encodeCommand({ name: 'MAIL', from: 'a@b.example', params: { 'X Y': true } }));
    invalid(() => encodeCommand({ name: 'MAIL', from: 'a@b.example', params: { ENVID: 'a=b' } }));
    invalid(() => encodeCommand({ name: 'MAIL', from: 'a@b.example', params: { SIZE: '1', size: '2' } }));
    invalid(() => encodeCommand({ name: 'RCPT', to: 'a b@c.example' }));
    invalid(() => encodeCommand({ name: 'RCPT', to: 'a@c.example\0' }));
    invalid(() => encodeCommand({ name: 'RCPT', to: 'jörg@c.example' }));
    invalid(() => encodeCommand({ name: 'RCPT', to: '"a\r\n"@c.example' }));
    invalid(() => encodeCommand({ name: 'RCPT', to: 'a@' }));
    invalid(() => encodeCommand({ name: 'RCPT', to: `${'a'.repeat(250)}@c.example` }));
    invalid(() => encodeCommand({ name: 'EHLO', domain: 'client.example\r\nMAIL FROM:<>' }));
    invalid(() => encodeCommand({ name: 'EHLO', domain: '' }));
    invalid(() => encodeCommand({ name: 'BDAT', size: -1, last: false }));
    invalid(() => encodeCommand({ name: 'AUTH', mechanism: 'PLAIN\r\n' }));
    invalid(() => encodeCommand({ name: 'AUTH', mechanism: 'PLAIN', initialResponse: 'a b' }));
    invalid(() => encodeSaslLine('x\r\nQUIT'));
    invalid(() => encodeCommand({ name: 'VRFY' } as unknown as ClientCommand));
    expect(checkMailbox('a.b@c.example')).toBeUndefined();
    expect(checkMailbox('.a@c.example')).toMatch(/local part/);
  });

  it('property: ASCII mailboxes are judged as the per-part RFC 5321 rules say (atoms, labels, address literals)', () => {
    // The rules as regular expressions over the dot-separated parts: the reference the one-pass checks must agree with.
    const atom = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
    const label = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/;
    const literal = /^\[[\x21-\x5a\x5e-\x7e]+\]$/;
    const reference = (address: string): boolean => {
      if (address.length > 254) return false;
      const at = address.lastIndexOf('@');
      if (at <= 0) return false;
      const local = address.slice(0, at);
      const domain = address.slice(at + 1);
      if (!local.split('.').every((p) => atom.test(p))) return false;
      return domain.length > 0 && (literal.test(domain) || domain.split('.').every((l) => label.test(l)));
    };
    const unit = fc.constantFrom('a', 'Z', '0', '9', '_', '-', '.', '@', '!', '~', '{', ' ', '[', ']', ':', '(', ',', '\x7f', '\x01');
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 24 }), fc.string({ unit, maxLength: 24 }), fc.boolean(), (local, domain, smtputf8) => {
        const address = `${local}@${domain}`;
        expect(checkMailbox(address, { smtputf8 }) === undefined).toBe(reference(address));
      }),
      { numRuns: 3000 },
    );
    expect(checkMailbox('a-b.c_d@mx-1.example_x.org')).toBeUndefined();
    expect(checkMailbox('a@-mx.example')).toMatch(/invalid domain/);
    expect(checkMailbox('a@mx-.example')).toMatch(/invalid domain/);
    expect(checkMailbox('a@mx..example')).toMatch(/invalid domain/);
    expect(checkMailbox('a@mx.example.')).toMatch(/invalid domain/);
    expect(checkMailbox('a..b@mx.example')).toMatch(/local part/);
    expect(checkMailbox('a.@mx.example')).toMatch(/local part/);
    expect(checkMailbox('a@[192.0.2.1]')).toBeUndefined();
    expect(checkMailbox('a@[192.0.2.1')).toMatch(/invalid domain/);
    expect(checkMailbox(`${'a'.repeat(250)}@b.cd`)).toMatch(/254 octets/);
    expect(checkMailbox(`${'é'.repeat(125)}@b.cd`, { smtputf8: true })).toMatch(/254 octets/);
    expect(checkMailbox(`${'é'.repeat(120)}@b.cd`, { smtputf8: true })).toBeUndefined();
  });

  const nasty = fc.string({ unit: fc.constantFrom('a', 'b', '@', '.', '<', '>', ' ', '\r', '\n', '\0', '"', '\\', '=', '+', 'é', ':', '[', ']') , maxLength: 30 });
  const commands: fc.Arbitrary<ClientCommand> = fc.oneof(
    fc.record({ name: fc.constantFrom('EHLO' as const, 'HELO' as const, 'LHLO' as const), domain: nasty }),
    fc.record({ name: fc.constant('MAIL' as const), from: nasty, params: fc.dictionary(nasty, fc.oneof(nasty, fc.constant(true as const)), { maxKeys: 3 }) }),
    fc.record({ name: fc.constant('RCPT' as const), to: nasty, params: fc.dictionary(nasty, nasty, { maxKeys: 3 }) }),
    fc.record({ name: fc.constant('AUTH' as const), mechanism: nasty, initialResponse: nasty }),
    fc.record({ name: fc.constant('BDAT' as const), size: fc.oneof(fc.integer(), fc.double()), last: fc.boolean() }),
  );

  it('property: one line, one CRLF at its end, no CR, LF or NUL inside — or INVALID_ARGUMENT', () => {
    fc.assert(
      fc.property(commands, fc.boolean(), (command, smtputf8) => {
        let out: Buffer;
        try {
          out = encodeCommand(command, { smtputf8 });
        } catch (err) {
          expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_INVALID_ARGUMENT');
          return;
        }
        const s = out.toString('utf8');
        expect(s.endsWith('\r\n')).toBe(true);
        expect(s.slice(0, -2)).not.toMatch(/[\r\n\0]/);
        expect(s.startsWith(command.name)).toBe(true);
        if (command.name === 'MAIL' || command.name === 'RCPT') {
          // The path cannot close early: exactly one "<" … ">" pair around it, outside any quotes.
          const path = command.name === 'MAIL' ? command.from : command.to;
          expect(s.startsWith(`${command.name === 'MAIL' ? 'MAIL FROM' : 'RCPT TO'}:<${path}>`)).toBe(true);
          expect(path).not.toMatch(/[<>]/);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('xtext (RFC 3461 §4) and ORCPT', () => {
  it('encodes "+", "=", controls, space and non-ASCII', () => {
    expect(encodeXtext('a+b=c d')).toBe('a+2Bb+3Dc+20d');
    expect(encodeXtext('é')).toBe('+C3+A9');
    expect(encodeOrcpt('a+b@example.org')).toBe('rfc822;a+2Bb@example.org');
    expect(encodeOrcpt('用户@example.org')).toBe('utf-8;\\x{7528}\\x{6237}@example.org');
    expect(decodeXtext('+2')).toBeUndefined();
  });

  it('property: round trip, and the result is a valid esmtp-value', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        const x = encodeXtext(s);
        expect(x).toMatch(/^[\x21-\x3c\x3e-\x7e]*$/);
        if (s.length > 0) expect(text(encodeCommand({ name: 'MAIL', from: '', params: { ENVID: x } }))).toBe(`MAIL FROM:<> ENVID=${x}\r\n`);
        // The shared decoder gives the bytes as Latin-1.
        if (!/[\ud800-\udfff]/.test(s)) expect(Buffer.from(decodeXtext(x) ?? '', 'latin1').toString('utf8')).toBe(s);
      }),
      { numRuns: 500 },
    );
  });
});

describe('CrlfNormalizer (the BDAT body)', () => {
  it('property: same bytes as the DATA encoder without the dot-stuffing, for every chunking', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', '.', '\r', '\n', '\r\n', 'é'), { maxLength: 40 }), fc.array(fc.nat(80), { maxLength: 6 }), (parts, cuts) => {
        const body = Buffer.from(parts.join(''), 'utf8');
        const normalizer = new CrlfNormalizer();
        const out: Buffer[] = [];
        let last = 0;
        for (const cut of [...new Set(cuts.map((c) => c % (body.length + 1)))].sort((a, b) => a - b)) {
          out.push(normalizer.push(body.subarray(last, cut)));
          last = cut;
        }
        out.push(normalizer.push(body.subarray(last)), normalizer.end());
        const bdat = Buffer.concat(out);
        // DATA: encode, then decode (which removes the dot-stuffing) must give the BDAT bytes.
        expect(decodeData(encodeData(body))?.body.toString('latin1')).toBe(bdat.toString('latin1'));
        expect(bdat.toString('latin1')).not.toMatch(/\r(?!\n)|(?<!\r)\n/);
      }),
      { numRuns: 500 },
    );
  });
});
