import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import nodemailer from 'nodemailer';
import { createHmac } from 'node:crypto';
import { encodeProxyHeaderV1, Secret } from '@pigeonpost/wire';
import type { SaslBackend } from '@pigeonpost/wire';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import type { DevCertificates } from '@pigeonpost/wire/node';
import { createSmtpServer } from '../../src/node/server.js';
import type { SmtpServer, SmtpServerOptions } from '../../src/node/server.js';
import type { SmtpEnvelope, SmtpSessionInfo } from '../../src/server/types.js';
import { rawConnect } from './helpers.js';

let certs: DevCertificates;
let tlsOptions: ReturnType<typeof createServerTlsOptions>;

beforeAll(async () => {
  certs = await createDevCertificates();
  tlsOptions = createServerTlsOptions({ key: certs.key, cert: certs.cert });
});

interface Received {
  envelope: SmtpEnvelope;
  session: SmtpSessionInfo;
  size: number;
  text: string;
}

const servers: SmtpServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close({ timeoutMs: 0 })));
});

async function start(extra: Partial<SmtpServerOptions> = {}): Promise<{ port: number; received: Received[]; server: ReturnType<typeof createSmtpServer> }> {
  const received: Received[] = [];
  const server = createSmtpServer({
    hostname: 'mx.example.org',
    tls: tlsOptions,
    onRcptTo: () => Promise.resolve(),
    onData: async (envelope, body, session) => {
      let size = 0;
      const head: Buffer[] = [];
      for await (const chunk of body) {
        // Streamed: keep only the first 64 KB, count the rest.
        if (size < 65536) head.push(Buffer.from(chunk));
        size += chunk.length;
      }
      received.push({ envelope, session, size, text: Buffer.concat(head).toString('utf8') });
    },
    ...extra,
  });
  servers.push(server);
  const address = await server.listen({ host: '127.0.0.1', port: 0 });
  return { port: address.port, received, server };
}

const ca = (): string => certs.caCert;

describe('nodemailer → our server', () => {
  it('plain SMTP, with the socket in no-delay mode', async () => {
    const spy = vi.spyOn(net.Socket.prototype, 'setNoDelay');
    const { port, received } = await start({ tls: undefined });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true });
    const info = await transport.sendMail({ from: 'a@client.example', to: ['b@example.org', 'c@example.org'], subject: 'hi', text: 'hello' });
    expect(info.accepted).toEqual(['b@example.org', 'c@example.org']);
    expect(received[0]?.envelope.rcptTo.map((r) => r.address.address)).toEqual(['b@example.org', 'c@example.org']);
    expect(received[0]?.text).toContain('Subject: hi');
    expect(spy).toHaveBeenCalledWith(true);
    spy.mockRestore();
  });

  it('STARTTLS with the dev certificates', async () => {
    const { port, received } = await start();
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: false, requireTLS: true, tls: { ca: ca(), servername: 'localhost' } });
    await transport.sendMail({ from: 'a@client.example', to: 'b@example.org', text: 'over tls' });
    expect(received[0]?.session.secure).toBe(true);
  });

  it('implicit TLS', async () => {
    const { port, received } = await start({ secure: true });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, secure: true, tls: { ca: ca(), servername: 'localhost' } });
    await transport.sendMail({ from: 'a@client.example', to: 'b@example.org', text: 'implicit' });
    expect(received[0]?.session.secure).toBe(true);
  });

  describe('submission with AUTH', () => {
    const auth = {
      mechanisms: ['PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2'] as const,
      backend: {
        verifyPassword: ({ authcid, password }) => Promise.resolve(authcid === 'tim' && password.expose() === 'pass'),
        getCramMd5Secret: ({ authcid }) => Promise.resolve(authcid === 'tim' ? new Secret('pass') : undefined),
        verifyOAuthToken: ({ user, token }) => Promise.resolve(user === 'tim' && token.expose() === 'tok' ? { ok: true } : { ok: false, status: 'invalid_token' }),
      } satisfies SaslBackend,
    };
    for (const method of ['PLAIN', 'LOGIN', 'CRAM-MD5'] as const) {
      it(`AUTH ${method}`, async () => {
        const { port, received } = await start({ submission: true, auth });
        const transport = nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, tls: { ca: ca(), servername: 'localhost' }, auth: { user: 'tim', pass: 'pass' }, authMethod: method });
        await transport.sendMail({ from: 'tim@client.example', to: 'b@example.org', text: method });
        expect(received[0]?.session.user).toMatchObject({ mechanism: method, authcid: 'tim' });
      });
    }

    it('AUTH XOAUTH2', async () => {
      const { port, received } = await start({ submission: true, auth });
      const transport = nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, tls: { ca: ca(), servername: 'localhost' }, auth: { type: 'OAuth2', user: 'tim', accessToken: 'tok' } });
      await transport.sendMail({ from: 'tim@client.example', to: 'b@example.org', text: 'oauth' });
      expect(received[0]?.session.user?.mechanism).toBe('XOAUTH2');
    });

    it('wrong password is refused, and MAIL without AUTH gets 530', async () => {
      const { port } = await start({ submission: true, auth, authFailureDelayMs: 0 });
      const bad = nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, tls: { ca: ca(), servername: 'localhost' }, auth: { user: 'tim', pass: 'nope' } });
      await expect(bad.sendMail({ from: 'tim@client.example', to: 'b@example.org', text: 'x' })).rejects.toMatchObject({ responseCode: 535 });
      const none = nodemailer.createTransport({ host: '127.0.0.1', port, requireTLS: true, tls: { ca: ca(), servername: 'localhost' } });
      await expect(none.sendMail({ from: 'tim@client.example', to: 'b@example.org', text: 'x' })).rejects.toMatchObject({ responseCode: 530 });
    });
  });

  it('DSN parameters reach onData', async () => {
    const { port, received } = await start({ extensions: { dsn: true } });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
    // nodemailer supports `dsn`; its type definitions do not list it.
    const mail = { from: 'a@client.example', to: 'b@example.org', text: 'dsn', dsn: { id: 'env-42', return: 'headers', notify: ['success', 'failure'], recipient: 'a@client.example' } };
    await transport.sendMail(mail);
    expect(received[0]?.envelope.mailParams).toMatchObject({ ret: 'HDRS', envid: 'env-42' });
    expect(received[0]?.envelope.rcptTo[0]?.params).toMatchObject({ notify: ['SUCCESS', 'FAILURE'], orcpt: { type: 'rfc822', address: 'a@client.example' } });
  });

  it('SMTPUTF8 addresses', async () => {
    const { port, received } = await start();
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
    await transport.sendMail({ from: 'jösé@bücher.example', to: 'ünï@example.org', text: 'utf8' });
    expect(received[0]?.envelope.mailParams.smtputf8).toBe(true);
    expect(received[0]?.envelope.rcptTo[0]?.address.address).toBe('ünï@example.org');
  });

  it('a 10 MB attachment, streamed', async () => {
    const { port, received } = await start({ maxMessageBytes: 20 * 1024 * 1024 });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
    const attachment = Buffer.alloc(10 * 1024 * 1024, 'a');
    await transport.sendMail({ from: 'a@client.example', to: 'b@example.org', text: 'big', attachments: [{ filename: 'big.bin', content: attachment }] });
    // base64 makes it ~13.7 MB on the wire.
    expect(received[0]?.size).toBeGreaterThan(13_000_000);
  });

  it('a message over the SIZE limit is refused by SIZE= at MAIL', async () => {
    const { port, received } = await start({ maxMessageBytes: 1000 });
    const transport = nodemailer.createTransport({ host: '127.0.0.1', port, ignoreTLS: true });
    await expect(transport.sendMail({ from: 'a@client.example', to: 'b@example.org', text: 'x'.repeat(5000) })).rejects.toMatchObject({ responseCode: 552 });
    expect(received).toHaveLength(0);
  });
});

describe('Node adapter', () => {
  it('STARTTLS: a command pipelined in plaintext after STARTTLS is not executed over TLS', async () => {
    const { port } = await start();
    const c = await rawConnect(port);
    await c.waitFor(/^220 /);
    c.send('EHLO a.example\r\n');
    await c.waitFor(/250 HELP\r\n/);
    c.send('STARTTLS\r\nNOOP');
    await c.waitFor(/220 2\.0\.0 Ready to start TLS\r\n/);
    await c.startTls(ca());
    const before = c.received().length;
    c.send('\r\nEHLO a.example\r\n');
    const text = (await c.waitFor(/250 HELP\r\n[\s\S]*250 HELP\r\n/)).slice(before);
    expect(text).not.toMatch(/^250 2\.0\.0 OK/m);
    c.socket.destroy();
  });

  it('PROXY protocol: the session sees the proxied client', async () => {
    let seen = '';
    const { port } = await start({ proxyProtocol: { trustedProxies: ['127.0.0.1'] }, onConnect: (s) => ((seen = s.remoteAddress), Promise.resolve()) });
    const c = await rawConnect(port);
    c.socket.write(encodeProxyHeaderV1({ addresses: { family: 'IPv4', sourceAddress: '203.0.113.9', sourcePort: 40000, destinationAddress: '192.0.2.25', destinationPort: 25 } }));
    await c.waitFor(/^220 /);
    expect(seen).toBe('203.0.113.9');
    c.socket.destroy();
  });

  it('XCLIENT only from trusted networks', async () => {
    const { port } = await start({ xclient: { trustedNetworks: ['127.0.0.0/8'] } });
    const c = await rawConnect(port);
    await c.waitFor(/^220 /);
    c.send('EHLO a\r\n');
    expect(await c.waitFor(/250 HELP\r\n/)).toMatch(/250-XCLIENT /);
    c.socket.destroy();
    const { port: p2 } = await start({ xclient: { trustedNetworks: ['10.0.0.0/8'] } });
    const d = await rawConnect(p2);
    await d.waitFor(/^220 /);
    d.send('XCLIENT ADDR=1.2.3.4\r\n');
    expect(await d.waitFor(/500 /)).toMatch(/500 5\.5\.1/);
    d.socket.destroy();
  });

  it('connections per IP are limited (421)', async () => {
    const { port } = await start({ maxConnectionsPerIp: 1 });
    const a = await rawConnect(port);
    await a.waitFor(/^220 /);
    const b = await rawConnect(port);
    expect(await b.waitFor(/421/)).toMatch(/^421 4\.7\.0 /);
    a.socket.destroy();
  });

  it('total connections are limited (421)', async () => {
    const { port } = await start({ maxConnections: 1 });
    const a = await rawConnect(port);
    await a.waitFor(/^220 /);
    const b = await rawConnect(port);
    expect(await b.waitFor(/421/)).toMatch(/^421 4\.7\.0 /);
    a.socket.destroy();
  });

  it('the idle timeout does not fire while a hook runs', async () => {
    // The hook takes 2.5 times the idle timeout; the timeout is long enough (600 ms) that a loaded
    // machine reads the pipelined commands before it.
    const { port } = await start({
      idleTimeoutMs: 600,
      onData: async (_e, body) => {
        for await (const c of body) void c;
        await new Promise((r) => setTimeout(r, 1500));
      },
    });
    const c = await rawConnect(port);
    c.send('EHLO a\r\nMAIL FROM:<a@a.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n');
    const text = await c.waitFor(/250 2\.0\.0 |421 /);
    expect(text).toMatch(/250 2\.0\.0 Message accepted/);
    expect(await c.waitFor(/421 /)).toMatch(/421 4\.4\.2/); // and idle again afterwards
  });

  it('idle timeout says 421 4.4.2', async () => {
    const { port } = await start({ idleTimeoutMs: 150 });
    const c = await rawConnect(port);
    expect(await c.waitFor(/421 /)).toMatch(/421 4\.4\.2 .*Idle timeout/);
  });

  it('graceful close says 421 4.3.2 to idle sessions', async () => {
    const { port, server } = await start();
    const c = await rawConnect(port);
    await c.waitFor(/^220 /);
    c.send('EHLO a\r\n');
    await c.waitFor(/250 HELP\r\n/);
    const closing = server.close();
    expect(await c.waitFor(/421 /)).toMatch(/421 4\.3\.2 /);
    await closing;
  });

  it('await using closes the server', async () => {
    let port: number;
    {
      await using server = createSmtpServer({ onRcptTo: () => Promise.resolve() });
      port = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
    }
    await expect(rawConnect(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('CRAM-MD5 helper sanity', () => {
    expect(createHmac('md5', 'k').update('x').digest('hex')).toHaveLength(32);
  });
});
