import { describe, expect, it } from 'vitest';
import type { SmtpEnvelope, SmtpSessionInfo } from '@pigeonpost/smtp-core';
import { receivedHeader, returnPathHeader } from '../src/delivery.js';

const envelope = (rcpts: string[]): SmtpEnvelope =>
  ({
    mailFrom: null,
    mailParams: {},
    transfer: 'DATA',
    rcptTo: rcpts.map((address) => ({ address: { address }, params: {} })),
  }) as unknown as SmtpEnvelope;

const session = (over: Partial<SmtpSessionInfo>): SmtpSessionInfo => ({ id: 's1', remoteAddress: '192.0.2.1', secure: false, helo: 'client.example', protocol: 'ESMTP', user: undefined, ...over });

describe('trace headers', () => {
  const at = Date.UTC(2026, 0, 2, 3, 4, 5);

  it('names the client, us, the RFC 3848 protocol, the id and the one recipient', () => {
    const h = receivedHeader(session({ secure: true, user: { mechanism: 'PLAIN', authcid: 'a', authzid: 'a' } }), envelope(['b@example.org']), 'mx.example.org', 'ABC', at);
    expect(h).toBe('Received: from client.example ([192.0.2.1])\r\n\tby mx.example.org (Pigeonpost) with ESMTPSA id ABC\r\n\tfor <b@example.org>;\r\n\tFri, 2 Jan 2026 03:04:05 +0000\r\n');
  });

  it('writes IPv6 clients as an IPv6 literal, leaves "for" out for several recipients, and says SMTP after HELO', () => {
    const h = receivedHeader(session({ remoteAddress: '2001:db8::1', protocol: 'SMTP' }), envelope(['a@x.test', 'b@x.test']), 'mx', 'ID', at);
    expect(h).toMatch(/^Received: from client\.example \(\[IPv6:2001:db8::1\]\)\r\n\tby mx \(Pigeonpost\) with SMTP id ID;\r\n/);
  });

  it('cannot be broken by what the client sends as its EHLO name', () => {
    const h = receivedHeader(session({ helo: 'evil)\r\nX-Injected: yes (' }), envelope(['a@x.test']), 'mx', 'ID', at);
    expect(h.split('\r\n')[0]).toBe('Received: from evil???X-Injected:?yes?? ([192.0.2.1])');
    expect(h).not.toMatch(/\r\nX-Injected/);
    expect(returnPathHeader('')).toBe('Return-Path: <>\r\n');
  });
});
