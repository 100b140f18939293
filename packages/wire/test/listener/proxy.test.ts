import { afterEach, describe, expect, it } from 'vitest';
import { encodeProxyHeaderV1, encodeProxyHeaderV2, ProxyTlvType } from '../../src/codec/proxy-protocol.js';
import { channels } from '../../src/diagnostics.js';
import type { Connection, ListenerOptions, RejectInfo } from '../../src/node/listener.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { connect, Opened, settle, until } from './helpers.js';

const opened = new Opened();
afterEach(() => opened.close());

interface Seen {
  connection: Connection;
  data: string;
}

/** A session that reports who it talks to and echoes the first bytes it reads. */
function reporter(seen: Seen[]) {
  return (connection: Connection): void => {
    const entry: Seen = { connection, data: '' };
    seen.push(entry);
    connection.socket.write(`220 ${connection.remoteAddress}:${connection.remotePort} via ${connection.peer.remoteAddress}\r\n`);
    connection.socket.on('data', (chunk: Buffer) => {
      entry.data += chunk.toString('latin1');
      if (entry.data.endsWith('\r\n')) connection.socket.write(`250 got ${entry.data.length} bytes\r\n`);
    });
  };
}

const rejectMessage = (info: RejectInfo): string => `421 4.7.0 refused: ${info.reason}${info.error === undefined ? '' : ` ${(info.error as { code?: string }).code}`}\r\n`;

async function proxyListener(seen: Seen[], options: Partial<ListenerOptions> = {}) {
  return opened.listener({ onConnection: reporter(seen), proxyProtocol: { trustedProxies: ['127.0.0.1', '127.0.0.16/28'] }, rejectMessage, ...options });
}

const v1 = (src: string, sport: number, dst = '192.0.2.25', dport = 25): Uint8Array =>
  encodeProxyHeaderV1({ addresses: { family: src.includes(':') ? 'IPv6' : 'IPv4', sourceAddress: src, sourcePort: sport, destinationAddress: dst, destinationPort: dport } });

describe('PROXY protocol through a listener', () => {
  it('v1 TCP4 in the same write as the first command: proxied addresses, application bytes intact', async () => {
    const seen: Seen[] = [];
    const proxyEvents = opened.channel(channels.proxy);
    const { port } = await proxyListener(seen);
    const client = await connect(opened, port);
    client.socket.write(Buffer.concat([v1('203.0.113.9', 40000), Buffer.from('EHLO client.example\r\n')]));
    await client.waitFor('250 got 21 bytes');
    expect(client.text()).toMatch(/^220 203\.0\.113\.9:40000 via 127\.0\.0\.1\r\n/);
    const c = seen[0]!.connection;
    expect(seen[0]!.data).toBe('EHLO client.example\r\n');
    expect(c).toMatchObject({ remoteAddress: '203.0.113.9', remotePort: 40000, localAddress: '192.0.2.25', localPort: 25, secure: false });
    expect(c.peer.remoteAddress).toBe('127.0.0.1');
    expect(c.proxy).toMatchObject({ version: 1, family: 'IPv4' });
    expect(proxyEvents).toMatchObject([{ connection: c, proxy: { version: 1 } }]);
  });

  it('v1 TCP6 and UNKNOWN', async () => {
    const seen: Seen[] = [];
    const { port } = await proxyListener(seen);
    const six = await connect(opened, port);
    six.socket.write(v1('2001:db8::7', 1, '2001:db8::25', 25));
    await six.waitFor('220 2001:db8::7:1 via');
    const unknown = await connect(opened, port);
    unknown.socket.write('PROXY UNKNOWN\r\n');
    await unknown.waitFor('220 127.0.0.1:');
    expect(seen[1]!.connection.proxy).toMatchObject({ family: 'unspec', addresses: undefined });
  });

  it('v2 with TLVs, arriving one byte at a time, followed by application bytes', async () => {
    const seen: Seen[] = [];
    const { port } = await proxyListener(seen);
    const header = encodeProxyHeaderV2({
      addresses: { family: 'IPv6', sourceAddress: '2001:db8::1', sourcePort: 50000, destinationAddress: '2001:db8::2', destinationPort: 143 },
      tlvs: [{ type: ProxyTlvType.AUTHORITY, value: new TextEncoder().encode('imap.example.org') }],
      crc32c: true,
    });
    const client = await connect(opened, port);
    client.socket.setNoDelay(true);
    for (const byte of header) {
      client.socket.write(Uint8Array.of(byte));
      if (byte % 8 === 0) await settle(1);
    }
    client.socket.write('a1 CAPABILITY\r\n');
    await client.waitFor('250 got 15 bytes');
    const c = seen[0]!.connection;
    expect(c.remoteAddress).toBe('2001:db8::1');
    expect(c.proxy).toMatchObject({ version: 2, authority: 'imap.example.org' });
    expect(seen[0]!.data).toBe('a1 CAPABILITY\r\n');
  });

  it('v2 LOCAL: the real endpoints apply', async () => {
    const seen: Seen[] = [];
    const { port } = await proxyListener(seen);
    const client = await connect(opened, port);
    client.socket.write(encodeProxyHeaderV2({ command: 'local' }));
    await client.waitFor('220 127.0.0.1:');
    expect(seen[0]!.connection.proxy).toMatchObject({ command: 'local' });
  });

  it('refuses peers that are not trusted proxies; trusts CIDRs', async () => {
    const seen: Seen[] = [];
    const rejects = opened.channel(channels.reject);
    const { port } = await proxyListener(seen);
    const stranger = await connect(opened, port, '127.0.0.2');
    stranger.socket.write(v1('203.0.113.9', 1));
    expect(await stranger.closed).toBe('421 4.7.0 refused: untrusted-proxy\r\n');
    expect(rejects).toMatchObject([{ reason: 'untrusted-proxy', remoteAddress: '127.0.0.2' }]);
    const inSubnet = await connect(opened, port, '127.0.0.17');
    inSubnet.socket.write(v1('203.0.113.10', 2));
    await inSubnet.waitFor('220 203.0.113.10:2 via 127.0.0.17');
  });

  it('applies the per-IP limit to the proxied address', async () => {
    const seen: Seen[] = [];
    const { listener, port } = await proxyListener(seen, { maxConnectionsPerIp: 1 });
    const a = await connect(opened, port);
    a.socket.write(v1('198.51.100.1', 1));
    await a.waitFor('220 198.51.100.1');
    const b = await connect(opened, port);
    b.socket.write(v1('198.51.100.2', 1));
    await b.waitFor('220 198.51.100.2');
    const c = await connect(opened, port);
    c.socket.write(v1('198.51.100.1', 2));
    expect(await c.closed).toBe('421 4.7.0 refused: max-connections-per-ip\r\n');
    expect(listener.stats().perIp).toEqual(new Map([['198.51.100.1', 1], ['198.51.100.2', 1]]));
  });

  it.each([
    ['a command instead of a header', 'EHLO x\r\n', 'ERR_PROXY_MISSING'],
    ['a malformed v1 header', 'PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['a v1 header over 107 bytes', `PROXY UNKNOWN ${'x'.repeat(100)}\r\n`, 'ERR_PROXY_TOO_LARGE'],
  ])('refuses %s', async (_name, bytes, code) => {
    const seen: Seen[] = [];
    const { listener, port } = await proxyListener(seen);
    const client = await connect(opened, port);
    client.socket.write(bytes);
    expect(await client.closed).toBe(`421 4.7.0 refused: proxy-header ${code}\r\n`);
    expect(seen).toHaveLength(0);
    await until(() => listener.stats().total === 0, 'slot freed');
  });

  it('refuses a v2 header longer than maxV2HeaderBytes from its prefix', async () => {
    const seen: Seen[] = [];
    const { port } = await proxyListener(seen, { maxV2HeaderBytes: 64 });
    const header = encodeProxyHeaderV2({ tlvs: [{ type: 0xe0, value: new Uint8Array(100) }] });
    const client = await connect(opened, port);
    client.socket.write(header.subarray(0, 16)); // only the prefix: the length alone decides
    expect(await client.closed).toBe('421 4.7.0 refused: proxy-header ERR_PROXY_TOO_LARGE\r\n');
  });

  it('times out an incomplete header on the clock, and handles a peer that gives up', async () => {
    const clock = new VirtualClock();
    const seen: Seen[] = [];
    const { listener, port } = await proxyListener(seen, { clock, headerTimeoutMs: 500 });
    const slow = await connect(opened, port);
    slow.socket.write('PROXY TCP4 203.0.113.9 ');
    await settle();
    clock.advance(499);
    await settle();
    expect(slow.isClosed()).toBe(false);
    expect(listener.stats().total).toBe(1);
    clock.advance(1);
    expect(await slow.closed).toBe('421 4.7.0 refused: proxy-header ERR_PROXY_TIMEOUT\r\n');

    const rejects = opened.channel(channels.reject);
    const quitter = await connect(opened, port);
    quitter.socket.end(encodeProxyHeaderV2().subarray(0, 10));
    // The peer's FIN ends our side too (no half-open sockets), so no message is written.
    await quitter.closed;
    await until(() => rejects.length === 1, 'reject event');
    expect(rejects).toMatchObject([{ reason: 'proxy-header', error: { code: 'ERR_PROXY_TRUNCATED' } }]);
    await until(() => listener.stats().total === 0, 'slots freed');
    expect(clock.pending).toBe(0);
  });

  it('close() drops connections still waiting for their header', async () => {
    const seen: Seen[] = [];
    const { listener, port } = await proxyListener(seen);
    const waiting = await connect(opened, port);
    waiting.socket.write('PROXY ');
    await until(() => listener.stats().total === 1, 'accepted');
    await listener.close();
    await waiting.closed;
    expect(listener.stats().total).toBe(0);
  });
});
