/**
 * TLS on real sockets: STLS with plaintext injected after the command (it
 * must never be read as a command, RFC 2595 §4), implicit TLS, and our client
 * against our server over both.
 */
import { connect } from 'node:net';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import { Pop3Client } from '../../src/node/client.js';
import { createPop3Server } from '../../src/node/server.js';
import type { Pop3Server } from '../../src/node/server.js';
import { createMemoryPop3Backend } from '../../src/testing/index.js';

let ca: string;
let plain: Pop3Server;
let implicit: Pop3Server;
let plainPort: number;
let implicitPort: number;
const backend = createMemoryPop3Backend();
backend.add('alice', 'Subject: tls\r\n\r\nover TLS\r\n');

beforeAll(async () => {
  const certs = await createDevCertificates();
  ca = certs.caCert;
  const options = { backend, tls: createServerTlsOptions({ key: certs.key, cert: certs.cert }), authFailureDelayMs: 0 };
  plain = createPop3Server(options);
  implicit = createPop3Server({ ...options, secure: true });
  plainPort = (await plain.listen({ host: '127.0.0.1', port: 0 })).port;
  implicitPort = (await implicit.listen({ host: '127.0.0.1', port: 0 })).port;
});

afterAll(async () => {
  await plain?.close({ timeoutMs: 0 });
  await implicit?.close({ timeoutMs: 0 });
});

function reader(stream: NodeJS.ReadableStream): (pattern: RegExp) => Promise<string> {
  let buffer = '';
  stream.on('data', (d: Buffer) => (buffer += d.toString('latin1')));
  return async (pattern) => {
    for (let i = 0; i < 500 && !pattern.test(buffer); i++) await new Promise((r) => setTimeout(r, 10));
    const got = buffer;
    buffer = '';
    return got;
  };
}

describe('STLS on a real socket', () => {
  it('drops commands injected in the same packet as STLS', async () => {
    const socket = connect({ host: '127.0.0.1', port: plainPort });
    const readPlain = reader(socket);
    expect(await readPlain(/\r\n$/)).toMatch(/^\+OK POP3 server ready/);
    // An attacker on the path appends commands to the client's STLS.
    socket.write('STLS\r\nUSER alice\r\nPASS alice-password\r\nDELE 1\r\n');
    expect(await readPlain(/\r\n$/)).toBe('+OK Begin TLS negotiation\r\n');
    socket.removeAllListeners('data');
    const secure = tls.connect({ socket, servername: 'localhost', ca });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    const read = reader(secure);
    secure.write('STAT\r\n');
    expect(await read(/\r\n$/)).toBe('-ERR Not logged in\r\n');
    secure.write('QUIT\r\n');
    expect(await read(/\r\n$/)).toMatch(/^\+OK /);
    secure.destroy();
    expect(backend.maildrops.get('alice')).toHaveLength(1);
  });
});

describe('our client against our server', () => {
  it('STLS (the default) with certificate verification, then AUTH PLAIN', async () => {
    await using client = await Pop3Client.connect({ host: '127.0.0.1', port: plainPort, tls: { ca, servername: 'localhost' }, auth: { username: 'alice', password: 'alice-password' } });
    expect(client.secure).toBe(true);
    expect(client.authMethod).toBe('PLAIN');
    expect((await (await client.retr(1)).bytes()).toString()).toBe('Subject: tls\r\n\r\nover TLS\r\n');
  });

  it('implicit TLS; an untrusted certificate is refused', async () => {
    await using client = await Pop3Client.connect({ host: '127.0.0.1', port: implicitPort, secure: 'implicit', tls: { ca, servername: 'localhost' }, auth: { username: 'alice', password: 'alice-password' } });
    expect(await client.stat()).toEqual({ count: 1, size: 26 });
    const untrusted = await Pop3Client.connect({ host: '127.0.0.1', port: implicitPort, secure: 'implicit', tls: { servername: 'localhost' } }).catch((e: unknown) => e);
    expect(untrusted).toBeInstanceOf(Error);
  });
});
