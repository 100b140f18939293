import * as net from 'node:net';
import type * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDevCertificates } from '../../src/node/dev-certs.js';
import type { DevCertificates } from '../../src/node/dev-certs.js';
import { upgradeClientSocket, upgradeServerSocket } from '../../src/node/starttls.js';
import type { StartTlsResult } from '../../src/node/starttls.js';
import { createClientTlsOptions, createServerTlsOptions } from '../../src/node/tls.js';
import { collectLines, connect, Lines, listen, Resources, until } from './helpers.js';

let dev: DevCertificates;
let serverOptions: tls.TlsOptions;
let clientOptions: tls.ConnectionOptions;

beforeAll(async () => {
  dev = await createDevCertificates();
  serverOptions = createServerTlsOptions({ key: dev.key, cert: dev.cert });
  clientOptions = createClientTlsOptions({ servername: 'localhost', ca: dev.caCert });
});

const res = new Resources();
afterEach(() => res.close());

/**
 * A minimal line-based server: answers `250 plain <line>` before TLS, `220
 * ready` to STARTTLS (then upgrades, handing the framer's leftover over), and
 * `250 tls <line>` after. It records every line it processed, on which side.
 */
function lineServer(ready = '220 ready\r\n') {
  const state = {
    firstChunk: '' as string,
    plain: [] as string[],
    secure: [] as string[],
    upgraded: undefined as Promise<StartTlsResult> | undefined,
  };
  const server = res.server(
    net.createServer((socket) => {
      socket.setNoDelay(true);
      const lines = new Lines();
      socket.on('data', (chunk: Buffer) => {
        if (state.firstChunk === '') state.firstChunk = chunk.toString('latin1');
        lines.push(chunk);
        for (let line = lines.next(); line !== undefined; line = lines.next()) {
          if (line === 'STARTTLS') {
            socket.write(ready);
            // Stop this framer: what it still holds arrived in plaintext and is handed over to be dropped.
            state.upgraded = upgradeServerSocket(socket, serverOptions, { bufferedPlaintext: lines.take(), timeoutMs: 5000 });
            state.upgraded.then(
              ({ socket: secure }) => {
                res.socket(secure);
                const secureLines = new Lines();
                secure.on('data', (c: Buffer) => {
                  secureLines.push(c);
                  for (let l = secureLines.next(); l !== undefined; l = secureLines.next()) {
                    state.secure.push(l);
                    secure.write(`250 tls ${l}\r\n`);
                  }
                });
              },
              () => {},
            );
            return;
          }
          state.plain.push(line);
          socket.write(`250 plain ${line}\r\n`);
        }
      });
    }),
  );
  return { server, state };
}

/** Read one CRLF line from a plain socket, leaving the rest of the chunk with the caller. */
function readReply(socket: net.Socket): Promise<{ line: string; chunk: string; rest: Buffer }> {
  return new Promise((resolve) => {
    const lines = new Lines();
    const onData = (chunk: Buffer) => {
      lines.push(chunk);
      const line = lines.next();
      if (line === undefined) return;
      socket.off('data', onData);
      resolve({ line, chunk: chunk.toString('latin1'), rest: lines.take() });
    };
    socket.on('data', onData);
  });
}

describe('server side: plaintext pipelined after STARTTLS (CVE-2011-0411)', () => {
  it('drops a command sent in the same segment as STARTTLS and reports it', async () => {
    const { server, state } = lineServer();
    const port = await listen(server);
    const client = res.socket(await connect(port));
    client.setNoDelay(true);
    const reply = readReply(client);
    client.write('STARTTLS\r\nINJECTED-COMMAND\r\n');
    const { line, rest } = await reply;
    expect(line).toBe('220 ready');
    expect(rest.length).toBe(0);
    // The attack only means something if both arrived together; check that they did.
    expect(state.firstChunk).toBe('STARTTLS\r\nINJECTED-COMMAND\r\n');

    const { socket: secure } = await upgradeClientSocket(client, clientOptions);
    res.socket(secure);
    const replies = collectLines(secure);
    secure.write('NOOP\r\n');
    await until(() => replies.length === 1);
    expect(replies).toEqual(['250 tls NOOP']);
    const upgraded = await state.upgraded!;
    expect(upgraded.discardedBytes).toBe('INJECTED-COMMAND\r\n'.length);
    expect(state.plain).toEqual([]);
    expect(state.secure).toEqual(['NOOP']);
  });

  it('drops plaintext still in the socket buffer (it must not reach OpenSSL either)', async () => {
    let upgraded: Promise<StartTlsResult> | undefined;
    const server = res.server(
      net.createServer((socket) => {
        // A protocol layer that stopped reading: the bytes wait in the socket's readable buffer.
        socket.pause();
        socket.once('readable', () => {
          void until(() => socket.readableLength >= 'STARTTLS\r\nINJECTED\r\n'.length).then(() => {
            socket.write('220 ready\r\n');
            upgraded = upgradeServerSocket(socket, serverOptions, { timeoutMs: 5000 });
          });
        });
      }),
    );
    const port = await listen(server);
    const client = res.socket(await connect(port));
    const reply = readReply(client);
    client.write('STARTTLS\r\nINJECTED\r\n');
    expect((await reply).line).toBe('220 ready');
    // Had the drained bytes been fed to OpenSSL as the start of a ClientHello, this handshake would fail.
    const { socket: secure } = await upgradeClientSocket(client, clientOptions);
    res.socket(secure);
    const result = await upgraded!;
    res.socket(result.socket);
    expect(result.discardedBytes).toBe('STARTTLS\r\nINJECTED\r\n'.length);
    const received = collectLines(result.socket);
    secure.write('AFTER\r\n');
    await until(() => received.length === 1);
    expect(received).toEqual(['AFTER']);
  });

  it('reports nothing discarded for a well-behaved client', async () => {
    const { server, state } = lineServer();
    const port = await listen(server);
    const client = res.socket(await connect(port));
    const first = readReply(client);
    client.write('EHLO me\r\n');
    expect((await first).line).toBe('250 plain EHLO me');
    const reply = readReply(client);
    client.write('STARTTLS\r\n');
    expect((await reply).line).toBe('220 ready');
    const { socket: secure, discardedBytes } = await upgradeClientSocket(client, clientOptions);
    res.socket(secure);
    expect(discardedBytes).toBe(0);
    expect((await state.upgraded!).discardedBytes).toBe(0);
    expect(secure.authorized).toBe(true);
  });
});

describe('client side: responses injected after the STARTTLS go-ahead', () => {
  /** A server that answers STARTTLS with the go-ahead and a fake response in one segment, then upgrades. */
  async function injectingServer() {
    const { server, state } = lineServer('220 ready\r\n250 INJECTED\r\n');
    const port = await listen(server);
    return { port, state };
  }

  it('drops the injected response and never shows it after the handshake', async () => {
    const { port, state } = await injectingServer();
    const client = res.socket(await connect(port));
    const reply = readReply(client);
    client.write('STARTTLS\r\n');
    const { line, chunk, rest } = await reply;
    expect(line).toBe('220 ready');
    expect(chunk).toBe('220 ready\r\n250 INJECTED\r\n');
    const { socket: secure, discardedBytes } = await upgradeClientSocket(client, clientOptions, { bufferedPlaintext: rest });
    res.socket(secure);
    expect(discardedBytes).toBe('250 INJECTED\r\n'.length);
    const replies = collectLines(secure);
    secure.write('NOOP\r\n');
    await until(() => replies.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(replies).toEqual(['250 tls NOOP']);
    expect(state.secure).toEqual(['NOOP']);
  });

  it('fails the upgrade instead with failOnDiscard', async () => {
    const { port } = await injectingServer();
    const client = res.socket(await connect(port));
    const reply = readReply(client);
    client.write('STARTTLS\r\n');
    const { rest } = await reply;
    await expect(upgradeClientSocket(client, clientOptions, { bufferedPlaintext: rest, failOnDiscard: true })).rejects.toMatchObject({
      code: 'ERR_STARTTLS_PLAINTEXT_INJECTION',
    });
    expect(client.destroyed).toBe(true);
  });
});

describe('upgrade errors', () => {
  it('refuses to upgrade a socket that already speaks TLS', async () => {
    const { server } = lineServer();
    const port = await listen(server);
    const plain = res.socket(await connect(port));
    const reply = readReply(plain);
    plain.write('STARTTLS\r\n');
    await reply;
    const { socket: secure } = await upgradeClientSocket(plain, clientOptions);
    res.socket(secure);
    await expect(upgradeClientSocket(secure, clientOptions)).rejects.toMatchObject({ code: 'ERR_TLS_ALREADY_SECURE' });
  });

  it('verifies the server certificate on upgrade', async () => {
    const { server } = lineServer();
    const port = await listen(server);
    const plain = res.socket(await connect(port));
    const reply = readReply(plain);
    plain.write('STARTTLS\r\n');
    await reply;
    const wrongName = createClientTlsOptions({ servername: 'mx.example.org', ca: dev.caCert });
    await expect(upgradeClientSocket(plain, wrongName)).rejects.toMatchObject({ code: 'ERR_TLS_CERT_NAME_MISMATCH' });
    expect(plain.destroyed).toBe(true);
  });

  it('times out when the peer never starts the handshake', async () => {
    const server = res.server(net.createServer(() => {}));
    const port = await listen(server);
    const plain = res.socket(await connect(port));
    // The client waits for a ClientHello that a silent server will never answer.
    await expect(upgradeClientSocket(plain, clientOptions, { timeoutMs: 100 })).rejects.toMatchObject({ code: 'ERR_TLS_HANDSHAKE_TIMEOUT' });
    const plain2 = res.socket(await connect(port));
    const controller = new AbortController();
    const pending = upgradeClientSocket(plain2, clientOptions, { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });
});
