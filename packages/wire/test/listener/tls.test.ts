import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { encodeProxyHeaderV1, encodeProxyHeaderV2 } from '../../src/codec/proxy-protocol.js';
import { channels } from '../../src/diagnostics.js';
import { createDevCertificates } from '../../src/node/dev-certs.js';
import type { DevCertificates } from '../../src/node/dev-certs.js';
import type { Connection, RejectInfo } from '../../src/node/listener.js';
import { acceptTls, createServerTlsOptions } from '../../src/node/tls.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { connect, lines, Opened, settle, until, watch } from './helpers.js';
import type { Client } from './helpers.js';

const opened = new Opened();
afterEach(() => opened.close());

let certs: DevCertificates;
let serverTls: tls.TlsOptions;
beforeAll(async () => {
  certs = await createDevCertificates();
  serverTls = createServerTlsOptions({ key: certs.key, cert: certs.cert });
});

/** Echo lines back, saying who and how. */
function echo(seen: Connection[]) {
  return (connection: Connection): void => {
    seen.push(connection);
    connection.socket.write(`220 ${connection.remoteAddress} secure=${String(connection.secure)}\r\n`);
    lines(connection, (line) => connection.socket.write(`250 ${line}\r\n`));
  };
}

/** TLS client over an existing socket (after a PROXY header) or a new connection. */
function tlsClient(options: { port: number; socket?: net.Socket }): Promise<Client> {
  return new Promise((resolve, reject) => {
    const base: tls.ConnectionOptions = { ca: certs.caCert, servername: 'localhost', minVersion: 'TLSv1.2' };
    const socket = options.socket === undefined ? tls.connect({ ...base, host: '127.0.0.1', port: options.port }) : tls.connect({ ...base, socket: options.socket });
    opened.socket(socket);
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve(watch(socket));
    });
  });
}

const refuse = (info: RejectInfo): string => `421 4.7.0 ${info.reason}\r\n`;

describe('implicit TLS through the listener', () => {
  it('wraps every connection before the session starts', async () => {
    const seen: Connection[] = [];
    const { listener, port } = await opened.listener({ onConnection: echo(seen), tls: serverTls });
    const client = await tlsClient({ port });
    await client.waitFor('220 127.0.0.1 secure=true\r\n');
    client.socket.write('NOOP\r\n');
    await client.waitFor('250 NOOP\r\n');
    expect(seen[0]!.socket).toBeInstanceOf(tls.TLSSocket);
    client.socket.end();
    await client.closed;
    await until(() => listener.stats().total === 0, 'slot freed');
  });

  it.each([
    ['in the same packet as the ClientHello', true],
    ['in a packet of its own', false],
  ])('reads a PROXY header before the handshake, %s', async (_name, samePacket) => {
    const seen: Connection[] = [];
    const { port } = await opened.listener({ onConnection: echo(seen), tls: serverTls, proxyProtocol: { trustedProxies: ['127.0.0.1'] } });
    const raw = opened.socket(net.connect({ port, host: '127.0.0.1' }));
    await new Promise((resolve) => raw.once('connect', resolve));
    const header = encodeProxyHeaderV1({ addresses: { family: 'IPv4', sourceAddress: '203.0.113.5', sourcePort: 5555, destinationAddress: '192.0.2.1', destinationPort: 465 } });
    if (samePacket) {
      // Corked: the header and the TLS client's first flight leave in one write.
      raw.cork();
      raw.write(header);
      process.nextTick(() => raw.uncork());
    } else {
      raw.write(header);
      await settle();
    }
    const client = await tlsClient({ port, socket: raw });
    await client.waitFor('220 203.0.113.5 secure=true\r\n');
    client.socket.write('NOOP\r\n');
    await client.waitFor('250 NOOP\r\n');
    expect(seen[0]!.proxy).toMatchObject({ version: 1 });
  });

  it('sends the reject message over TLS, and drops failed handshakes', async () => {
    const rejects: RejectInfo[] = [];
    const { listener, port } = await opened.listener({
      onConnection: echo([]),
      tls: serverTls,
      maxConnections: 1,
      rejectMessage: (info) => {
        rejects.push(info);
        return refuse(info);
      },
    });
    const first = await tlsClient({ port });
    await first.waitFor('220');
    const second = await tlsClient({ port });
    expect(await second.closed).toBe('421 4.7.0 max-connections\r\n');

    first.socket.end();
    await until(() => listener.stats().total === 0, 'slot freed');
    const rejectEvents = opened.channel(channels.reject);
    const garbage = await connect(opened, port);
    garbage.socket.write('EHLO not-tls\r\n');
    expect(await garbage.closed).toBe('');
    await until(() => rejectEvents.length === 1, 'reject event');
    expect(rejectEvents).toMatchObject([{ reason: 'tls-handshake', error: { code: 'ERR_TLS_HANDSHAKE' } }]);
    expect(rejects.map((r) => r.reason)).toEqual(['max-connections']); // never asked for tls-handshake
    expect(listener.stats().total).toBe(0);
  });

  it('times out a handshake on the clock, and close() aborts one in flight', async () => {
    const clock = new VirtualClock();
    const { listener, port } = await opened.listener({ onConnection: echo([]), tls: serverTls, clock, tlsHandshakeTimeoutMs: 1000 });
    const silent = await connect(opened, port);
    await until(() => listener.stats().total === 1, 'accepted');
    clock.advance(999);
    await settle();
    expect(silent.isClosed()).toBe(false);
    clock.advance(1);
    await silent.closed;
    await until(() => listener.stats().total === 0, 'slot freed');

    const stuck = await connect(opened, port);
    await until(() => listener.stats().total === 1, 'accepted');
    await listener.close();
    await stuck.closed;
    expect(listener.stats().total).toBe(0);
  });

  it('a PROXY v2 header, then TLS, then a STARTTLS-style replaceSocket keeps accounting and idle tracking', async () => {
    const clock = new VirtualClock();
    let connection: Connection | undefined;
    const { listener, port } = await opened.listener({
      clock,
      idleTimeoutMs: 1000,
      proxyProtocol: { trustedProxies: ['127.0.0.1'] },
      onConnection: (c) => {
        connection = c;
        c.socket.write('220 plain\r\n');
        const onData = (chunk: Buffer): void => {
          if (!chunk.toString().includes('STARTTLS')) return;
          c.socket.off('data', onData);
          c.socket.write('220 go ahead\r\n');
          void acceptTls(c.socket, serverTls).then((secure) => {
            c.replaceSocket(secure);
            c.onIdle = () => void c.socket.write('421 idle\r\n');
            secure.on('data', (d: Buffer) => secure.write(`250 ${d.toString().trim()}\r\n`));
          });
        };
        c.socket.on('data', onData);
      },
    });
    const raw = opened.socket(net.connect({ port, host: '127.0.0.1' }));
    const plain = watch(raw);
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write(Buffer.concat([encodeProxyHeaderV2({ addresses: { family: 'IPv4', sourceAddress: '198.51.100.3', sourcePort: 1, destinationAddress: '192.0.2.1', destinationPort: 587 } })]));
    await plain.waitFor('220 plain');
    raw.write('STARTTLS\r\n');
    await plain.waitFor('220 go ahead');
    raw.removeAllListeners('data');
    const secure = await tlsClient({ port, socket: raw });
    await until(() => connection?.secure === true, 'replaceSocket');
    expect(connection!.remoteAddress).toBe('198.51.100.3');
    clock.advance(900);
    secure.socket.write('NOOP\r\n');
    await secure.waitFor('250 NOOP');
    clock.advance(900); // 1800: only 900 since the last bytes on the new socket
    await settle();
    expect(secure.isClosed()).toBe(false);
    clock.advance(100);
    expect(await secure.closed).toContain('421 idle\r\n');
    await until(() => listener.stats().total === 0, 'slot freed');
  });
});

describe('close() racing the implicit-TLS handshake', () => {
  it('starts no session for a connection whose handshake finished in the tick close() ran', async () => {
    const seen: Connection[] = [];
    const { listener, port } = await opened.listener({ onConnection: echo(seen), tls: serverTls });
    let closing: Promise<void> | undefined;
    // Runs inside the handshake's settlement, before acceptTls' promise resolves: close() and the destroy it does happen first.
    const onSecure = (): void => {
      closing ??= listener.close({ timeoutMs: 0 });
    };
    subscribe(channels.tlsSecure, onSecure);
    try {
      const client = tlsClient({ port }).catch(() => undefined);
      await until(() => closing !== undefined, 'handshake done');
      await closing;
      await client;
      await settle();
      expect(seen).toEqual([]);
      expect(listener.stats()).toMatchObject({ total: 0, sessions: 0 });
    } finally {
      unsubscribe(channels.tlsSecure, onSecure);
    }
  });
});
