import { describe, expect, it } from 'vitest';
import { backoffDelay, buildDsn, domainOf, headerBlock, nextHopFor, retryDefaults, rfc5322Date } from '../src/index.js';

describe('backoffDelay', () => {
  const options = { ...retryDefaults, jitter: 0 };
  it('doubles from the minimum up to the maximum (Postfix defaults 300 s and 4000 s)', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map((n) => backoffDelay(n, options))).toEqual([300_000, 600_000, 1_200_000, 2_400_000, 4_000_000, 4_000_000, 4_000_000]);
  });
  it('spreads by the jitter and never passes the maximum', () => {
    const j = { ...retryDefaults, jitter: 0.1 };
    expect(backoffDelay(1, j, () => 0)).toBe(270_000);
    expect(backoffDelay(1, j, () => 0.9999999)).toBe(330_000);
    expect(backoffDelay(10, j, () => 0.9999999)).toBe(4_000_000);
  });
});

describe('routing', () => {
  const routing = {
    transport: { 'example.com': { host: '10.0.0.1', port: 2525 }, '.example.com': { host: 'sub-relay.test', mx: true } },
    relayHost: { host: 'smarthost.test', port: 587 },
  };
  it('matches the domain, then parent domains, then the relay host', () => {
    expect(nextHopFor('EXAMPLE.com.', routing)?.host).toBe('10.0.0.1');
    expect(nextHopFor('a.b.example.com', routing)?.host).toBe('sub-relay.test');
    expect(nextHopFor('other.org', routing)?.host).toBe('smarthost.test');
    expect(nextHopFor('other.org', {})).toBeUndefined();
    expect(nextHopFor('other.org', { transport: { '*': { host: 'x.test' } } })?.host).toBe('x.test');
    expect(domainOf('Bob@Example.COM')).toBe('example.com');
    expect(domainOf('"a@b"@c.test')).toBe('c.test');
  });
});

describe('DSN', () => {
  it('formats RFC 5322 dates with a numeric zone', () => {
    expect(rfc5322Date(Date.UTC(2026, 10, 28, 9, 5, 7))).toBe('Sat, 28 Nov 2026 09:05:07 +0000');
  });
  it('finds the header block with CRLF or bare LF', () => {
    expect(headerBlock(Buffer.from('A: 1\r\nB: 2\r\n\r\nbody')).toString()).toBe('A: 1\r\nB: 2\r\n\r\n');
    expect(headerBlock(Buffer.from('A: 1\nB: 2\n\nbody')).toString()).toBe('A: 1\nB: 2\n\n');
    expect(headerBlock(Buffer.from('no body')).toString()).toBe('no body');
  });
  it('uses message/global-delivery-status for UTF-8 addresses (RFC 6533) and CRLF everywhere', () => {
    const dsn = buildDsn({
      kind: 'failure',
      reportingMta: 'relay.test',
      to: 'sender@example.test',
      queueId: 'Q1',
      arrivalDate: 0,
      now: 0,
      recipients: [{ address: 'jörg@example.test', action: 'failed', status: '5.1.1', reply: { code: 550, enhanced: '5.1.1', text: 'unknown' } }],
      original: Buffer.from('Subject: x\nMessage-ID: <a@b>\n\nbare LF body\n'),
      originalComplete: true,
      random: (n) => Buffer.alloc(n, 1),
    }).toString('utf8');
    expect(dsn).toContain('Content-Type: message/global-delivery-status');
    expect(dsn).toContain('Final-Recipient: utf-8; jörg@example.test');
    expect(dsn).toContain('Content-Type: message/global');
    expect(dsn).toContain('boundary="Q1.010101010101/relay.test"');
    expect(/[^\r]\n/.test(dsn)).toBe(false);
    expect(dsn.endsWith('\r\n--Q1.010101010101/relay.test--\r\n')).toBe(true);
    expect(dsn).toContain('Auto-Submitted: auto-replied');
  });
});
