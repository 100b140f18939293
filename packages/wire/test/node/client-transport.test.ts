import * as net from 'node:net';
import type * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PigeonpostError } from '../../src/errors.js';
import { connectClientSocket, openSocketTransport, SocketTransport } from '../../src/node/client-transport.js';
import type { ClientSocketErrorFactory } from '../../src/node/client-transport.js';
import { createDevCertificates } from '../../src/node/dev-certs.js';
import type { DevCertificates } from '../../src/node/dev-certs.js';
import { upgradeServerSocket } from '../../src/node/starttls.js';
import { createClientTlsOptions, createServerTlsOptions } from '../../src/node/tls.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { closedPort, connect, listen, Resources, settle, until } from '../tls/helpers.js';

const res = new Resources();
afterEach(() => res.close());

let dev: DevCertificates;
let serverTls: tls.TlsOptions;
beforeAll(async () => {
  dev = await createDevCertificates();
  serverTls = createServerTlsOptions({ key: dev.key, cert: dev.cert });
});

const createError: ClientSocketErrorFactory = (reason, message, cause) => new PigeonpostError(`ERR_TEST_${reason.toUpperCase()}`, message, { cause });

/** A loopback server; `accepted` resolves with the server side of the next connection. */
async function server(options: net.ServerOpts = {}): Promise<{ port: number; accepted: () => Promise<net.Socket> }> {
  const waiting: ((s: net.Socket) => void)[] = [];
  const queued: net.Socket[] = [];
  const srv = res.server(
    net.createServer(options, (s) => {
      const w = waiting.shift();
      if (w) w(s);
      else queued.push(s);
    }),
  );
  const port = await listen(srv);
  return { port, accepted: () => new Promise((resolve) => (queued.length > 0 ? resolve(queued.shift()!) : waiting.push(resolve))) };
}

async function pair(): Promise<{ transport: SocketTransport; peer: net.Socket; port: number }> {
  const s = await server();
  const peerP = s.accepted();
  const socket = res.socket(await connect(s.port));
  const peer = await peerP;
  return { transport: new SocketTransport(socket), peer, port: s.port };
}

async function readAll(transport: SocketTransport): Promise<string> {
  let out = '';
  for (let chunk = await transport.read(); chunk !== null; chunk = await transport.read()) out += Buffer.from(chunk).toString('latin1');
  return out;
}

describe('SocketTransport reads', () => {
  it('returns bytes written in separate chunks, in order, and null at end of stream', async () => {
    const { transport, peer } = await pair();
    const reading = readAll(transport);
    peer.write('250-first li');
    await new Promise((r) => setTimeout(r, 10));
    peer.write('ne\r\n250 sec');
    await new Promise((r) => setTimeout(r, 10));
    peer.end('ond\r\n');
    expect(await reading).toBe('250-first line\r\n250 second\r\n');
    expect(await transport.read()).toBeNull();
  });

  it('a read waiting for data wakes up on the next chunk', async () => {
    const { transport, peer } = await pair();
    const pending = transport.read();
    peer.write('+OK');
    expect(Buffer.from((await pending)!).toString()).toBe('+OK');
  });

  it('rejects a pending read with the error given to destroy(); without one, read() returns null', async () => {
    const a = await pair();
    const pending = a.transport.read();
    a.transport.destroy(new Error('boom'));
    await expect(pending).rejects.toThrow('boom');
    const b = await pair();
    const pendingB = b.transport.read();
    b.transport.destroy();
    expect(await pendingB).toBeNull();
  });
});

describe('SocketTransport writes', () => {
  it('resolves only once the peer takes the bytes (back-pressure), then delivers all of them', async () => {
    const { transport, peer } = await pair();
    peer.pause();
    const big = new Uint8Array(16 * 1024 * 1024).fill(0x61);
    let done = false;
    const writing = transport.write(big).then(() => (done = true));
    // Give the loop many turns: the kernel buffers cannot take 16 MiB from a paused reader.
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    expect(transport.socket.writableNeedDrain).toBe(true);
    let received = 0;
    peer.on('data', (chunk: Buffer) => (received += chunk.length));
    peer.resume();
    await writing;
    expect(done).toBe(true);
    await until(() => received === big.length);
  });

  it('sends writes made in one turn (also through promise jobs) in one writev, in order', async () => {
    const { transport, peer } = await pair();
    const socket = transport.socket as net.Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void };
    const calls: string[] = [];
    const write = socket._write.bind(socket);
    const writev = socket._writev.bind(socket);
    socket._write = (...a: unknown[]) => {
      calls.push('write');
      write(...a);
    };
    socket._writev = (...a: unknown[]) => {
      calls.push(`writev ${(a[0] as unknown[]).length}`);
      writev(...a);
    };
    let received = '';
    peer.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    // A pipelining client's commands: each written after the previous write's promise settles.
    let chain = Promise.resolve();
    for (let i = 1; i <= 5; i++) chain = chain.then(() => transport.write(Buffer.from(`RETR ${i}\r\n`)));
    await chain;
    await until(() => received.length === 40);
    expect(received).toBe('RETR 1\r\nRETR 2\r\nRETR 3\r\nRETR 4\r\nRETR 5\r\n');
    expect(calls).toEqual(['writev 5']);
    // A write in a later turn is sent on its own, and the socket is not left corked.
    await transport.write(Buffer.from('QUIT\r\n'));
    await until(() => received.endsWith('QUIT\r\n'));
    expect(calls).toEqual(['writev 5', 'write']);
    expect(socket.writableCorked).toBe(0);
  });

  it('rejects when the socket is closed, before or during a write', async () => {
    const a = await pair();
    a.transport.destroy();
    await expect(a.transport.write(new Uint8Array([1]))).rejects.toThrow('socket closed');
    const b = await pair();
    b.peer.pause();
    const writing = settle(b.transport.write(new Uint8Array(16 * 1024 * 1024)));
    await new Promise((r) => setImmediate(r));
    b.transport.socket.destroy();
    const result = await writing;
    expect(result.ok).toBe(false);
  });
});

describe('SocketTransport.end', () => {
  it('resolves once the peer closes too', async () => {
    const { transport, peer } = await pair();
    peer.on('end', () => peer.end());
    await transport.end();
    expect(transport.socket.destroyed).toBe(true);
  });

  it('destroys the socket when the peer never closes its side (endTimeoutMs on the clock)', async () => {
    // The peer keeps its side open after our FIN.
    const s = await server({ allowHalfOpen: true });
    const peerP = s.accepted();
    const clock = new VirtualClock(0);
    const socket = res.socket(await connect(s.port));
    const peer = await peerP;
    const transport = new SocketTransport(socket, { clock, endTimeoutMs: 1000 });
    let ended = false;
    const ending = transport.end().then(() => (ended = true));
    await new Promise<void>((resolve) => peer.once('end', resolve));
    clock.advance(999);
    await new Promise((r) => setTimeout(r, 20));
    expect(ended).toBe(false);
    expect(socket.destroyed).toBe(false);
    clock.advance(1);
    await ending;
    expect(socket.destroyed).toBe(true);
  });
});

describe('SocketTransport.startTls', () => {
  it('drops plaintext the socket holds after the go-ahead, counts it, and reads only TLS data afterwards', async () => {
    const s = await server();
    const peerP = s.accepted();
    const socket = res.socket(await connect(s.port));
    const peer = await peerP;
    const transport = new SocketTransport(socket, { startTlsOptions: createClientTlsOptions({ servername: 'localhost', ca: dev.caCert }) });
    peer.write('+OK go ahead\r\n');
    expect(Buffer.from((await transport.read())!).toString()).toBe('+OK go ahead\r\n');
    // A man in the middle appends a fake response after the go-ahead.
    peer.write('+OK fake\r\n');
    await until(() => socket.readableLength === 10);
    expect(transport.channelBinding()).toBeUndefined();
    const upgraded = upgradeServerSocket(peer, serverTls).then(({ socket: secure }) => res.socket(secure));
    const result = await transport.startTls(3);
    expect(result.discardedBytes).toBe(13);
    expect(transport.secure).toBe(true);
    expect(result.channelBinding?.type).toBe('tls-exporter');
    expect(transport.channelBinding()?.data).toEqual(result.channelBinding?.data);
    const secure = await upgraded;
    secure.write('+OK secure\r\n');
    expect(Buffer.from((await transport.read())!).toString()).toBe('+OK secure\r\n');
  });
});

describe('connectClientSocket', () => {
  it('connects (Nagle off) to a listening port', async () => {
    const s = await server();
    const socket = res.socket(await connectClientSocket({ host: '127.0.0.1', port: s.port, timeoutMs: 5000, createError }));
    expect(socket.remotePort).toBe(s.port);
  });

  it('reports a refused connection through createError("connection")', async () => {
    const port = await closedPort();
    const error = await connectClientSocket({ host: '127.0.0.1', port, timeoutMs: 5000, createError }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PigeonpostError);
    expect((error as PigeonpostError).code).toBe('ERR_TEST_CONNECTION');
    expect((error as Error).message).toContain(`cannot connect to 127.0.0.1:${port}`);
    expect((error as Error).cause).toBeDefined();
  });

  it('gives up after timeoutMs on the clock', async () => {
    const s = await server();
    const clock = new VirtualClock(0);
    const connecting = connectClientSocket({ host: '127.0.0.1', port: s.port, timeoutMs: 1000, clock, createError });
    clock.advance(1000);
    await expect(connecting).rejects.toMatchObject({ code: 'ERR_TEST_TIMEOUT', message: `no connection to 127.0.0.1:${s.port} within 1000 ms` });
  });

  it('stops on an abort signal, also one aborted before the call', async () => {
    const s = await server();
    const controller = new AbortController();
    const connecting = connectClientSocket({ host: '127.0.0.1', port: s.port, timeoutMs: 0, signal: controller.signal, createError });
    controller.abort(new Error('user gave up'));
    await expect(connecting).rejects.toMatchObject({ code: 'ERR_TEST_ABORTED', cause: controller.signal.reason });
    await expect(connectClientSocket({ host: '127.0.0.1', port: s.port, timeoutMs: 0, signal: controller.signal, createError })).rejects.toMatchObject({ code: 'ERR_TEST_ABORTED' });
  });
});

describe('openSocketTransport', () => {
  it('implicit TLS: secure from the first byte, with a channel binding', async () => {
    const srv = res.server(
      net.createServer((plain) => {
        void upgradeServerSocket(plain, serverTls).then(({ socket }) => res.socket(socket).end('+OK tls\r\n'));
      }),
    );
    const port = await listen(srv);
    const transport = await openSocketTransport({ host: '127.0.0.1', port, tlsMode: 'implicit', tls: { servername: 'localhost', ca: dev.caCert }, timeoutMs: 5000, createError });
    res.socket(transport.socket);
    expect(transport.secure).toBe(true);
    expect(transport.channelBinding()?.type).toBe('tls-exporter');
    expect(await readAll(transport)).toBe('+OK tls\r\n');
  });

  it('plain: not secure; connect errors come from createError', async () => {
    const s = await server();
    const transport = await openSocketTransport({ host: '127.0.0.1', port: s.port, tlsMode: 'plain', timeoutMs: 5000, createError });
    res.socket(transport.socket);
    expect(transport.secure).toBe(false);
    const port = await closedPort();
    await expect(openSocketTransport({ host: '127.0.0.1', port, tlsMode: 'starttls', timeoutMs: 5000, createError })).rejects.toMatchObject({ code: 'ERR_TEST_CONNECTION' });
  });
});
