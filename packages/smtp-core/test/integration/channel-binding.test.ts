/**
 * SCRAM-SHA-256-PLUS on the Node server: channel binding from the TLS
 * connection (RFC 9266 tls-exporter on TLS 1.3, RFC 5929
 * tls-server-end-point), offered only over TLS, checked against what the
 * client bound to. Real sockets on 127.0.0.1, our own client.
 */
import { createHash } from 'node:crypto';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSaslClient, deriveScramCredentials, Secret } from '@pigeonpost/wire';
import type { SaslBackend } from '@pigeonpost/wire';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import type { DevCertificates } from '@pigeonpost/wire/node';
import { SmtpClient } from '../../src/node/client.js';
import { createSmtpServer, serverChannelBindings } from '../../src/node/server.js';
import type { SmtpServer } from '../../src/node/server.js';
import { rawConnect } from './helpers.js';

let certs: DevCertificates;
const servers: SmtpServer[] = [];
beforeAll(async () => {
  certs = await createDevCertificates();
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close({ timeoutMs: 0 })));
});

const credentials = deriveScramCredentials(new Secret('correct horse'), { hash: 'SHA-256', iterations: 4096 });
const backend: SaslBackend = {
  getScramCredentials: async ({ authcid }) => (authcid === 'alice' ? credentials : undefined),
};

async function start(): Promise<number> {
  const server = createSmtpServer({
    hostname: 'mx.example.org',
    tls: createServerTlsOptions({ key: certs.key, cert: certs.cert }),
    submission: true,
    auth: { mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS'], backend },
    onRcptTo: () => Promise.resolve(),
    onData: async (_envelope, body) => {
      for await (const chunk of body) void chunk;
    },
  });
  servers.push(server);
  return (await server.listen({ host: '127.0.0.1', port: 0 })).port;
}

describe('SCRAM-SHA-256-PLUS (channel binding) on the Node server', () => {
  it('is offered only after STARTTLS, and our client logs in with it (tls-exporter, TLS 1.3)', async () => {
    const port = await start();
    const raw = await rawConnect(port);
    await raw.waitFor(/^220 /);
    raw.send('EHLO client.example\r\n');
    const plain = await raw.waitFor(/250 HELP\r\n/);
    expect(plain).not.toContain('AUTH');
    raw.socket.destroy();

    await using client = await SmtpClient.connect({
      host: '127.0.0.1',
      port,
      secure: 'starttls',
      tls: { ca: certs.caCert, servername: 'localhost' },
      auth: { username: 'alice', password: new Secret('correct horse') },
    });
    expect(client.capabilities?.authMechanisms).toEqual(['SCRAM-SHA-256', 'SCRAM-SHA-256-PLUS']);
    expect(client.authenticated).toBe('SCRAM-SHA-256-PLUS');
    const result = await client.send({ from: 'alice@example.org', to: ['bob@example.net'] }, 'Subject: x\r\n\r\nhi\r\n');
    expect(result.reply.code).toBe(250);
  });

  it('a client bound to another channel is refused (a relayed exchange cannot log in)', async () => {
    const port = await start();
    const raw = await rawConnect(port);
    await raw.waitFor(/^220 /);
    raw.send('EHLO client.example\r\nSTARTTLS\r\n');
    await raw.waitFor(/220 2\.0\.0 /);
    await raw.startTls(certs.caCert);
    raw.send('EHLO client.example\r\n');
    await raw.waitFor(/SCRAM-SHA-256-PLUS\r\n(.|\r\n)*250 HELP\r\n$/);
    // A man in the middle terminates TLS itself: the binding the client sees is not the server's.
    const sasl = createSaslClient('SCRAM-SHA-256-PLUS', {
      username: 'alice',
      password: new Secret('correct horse'),
      channelBinding: { type: 'tls-exporter', data: new Uint8Array(32).fill(7) },
    });
    const mark = raw.received().length;
    raw.send(`AUTH SCRAM-SHA-256-PLUS ${sasl.initialResponseEncoded() ?? ''}\r\n`);
    const challenge = /334 (\S+)\r\n$/.exec((await raw.waitFor(/334 \S+\r\n$/)).slice(mark))?.[1] ?? '';
    raw.send(`${await sasl.respondEncoded(challenge)}\r\n`);
    const answer = (await raw.waitFor(/\r\n5\d\d [^\r]*\r\n$/)).slice(mark);
    expect(answer).toMatch(/535 5\.7\.8 /);
    raw.socket.destroy();
  });

  it('serverChannelBindings: tls-exporter on TLS 1.3 and tls-server-end-point = SHA-256 of our certificate', async () => {
    const server = tls.createServer(createServerTlsOptions({ key: certs.key, cert: certs.cert }));
    const bindings = new Promise<ReturnType<typeof serverChannelBindings>>((resolve) => server.once('secureConnection', (s) => resolve(serverChannelBindings(s))));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const socket = tls.connect({ port, host: '127.0.0.1', ca: certs.caCert, servername: 'localhost' });
    await new Promise<void>((resolve) => socket.once('secureConnect', resolve));
    const got = await bindings;
    const exporter = socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
    const der = socket.getPeerCertificate().raw;
    socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    expect(got.map((b) => b.type)).toEqual(['tls-exporter', 'tls-server-end-point']);
    expect(Buffer.from(got[0]?.data ?? []).equals(exporter)).toBe(true);
    expect(Buffer.from(got[1]?.data ?? []).equals(createHash('sha256').update(der).digest())).toBe(true);
  });
});
