/**
 * The client against nodemailer's smtp-server on 127.0.0.1 ephemeral ports:
 * plain, STARTTLS, implicit TLS, AUTH, PIPELINING, DSN, SMTPUTF8, 8BITMIME,
 * a 10 MB streamed body, rejections, reuse, LMTP — and a tiny fake server
 * for the STARTTLS response-injection attack.
 */
import { createHash } from 'node:crypto';
import * as net from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SMTPServer } from 'smtp-server';
import type { SMTPServerOptions, SMTPServerSession } from 'smtp-server';
import { Secret } from '@pigeonpost/wire';
import { createDevCertificates, createServerTlsOptions, upgradeServerSocket } from '@pigeonpost/wire/node';
import type { DevCertificates } from '@pigeonpost/wire/node';
import type { SmtpClientError } from '../../../src/errors.js';
import { SmtpClient } from '../../../src/node/client.js';

interface Received {
  readonly session: SMTPServerSession;
  readonly size: number;
  readonly sha256: string;
  readonly text: string;
}

let certs: DevCertificates;
beforeAll(async () => {
  certs = await createDevCertificates();
}, 30_000);

const servers: SMTPServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
});

/** Start smtp-server on 127.0.0.1:0; every message it receives lands in `received`. */
async function startServer(options: Partial<SMTPServerOptions> = {}): Promise<{ port: number; received: Received[] }> {
  const received: Received[] = [];
  const server = new SMTPServer({
    logger: false,
    key: certs.key,
    cert: certs.cert,
    authOptional: true,
    onAuth(auth, _session, callback) {
      const ok =
        auth.username === 'tim' &&
        (auth.method === 'XOAUTH2' ? auth.accessToken === 'token-1' : auth.method === 'CRAM-MD5' ? auth.validatePassword('tanstaaf') : auth.password === 'tanstaaf');
      callback(ok ? null : new Error('Invalid username or password'), ok ? { user: auth.username } : undefined);
    },
    onRcptTo(address, _session, callback) {
      if (address.address.startsWith('reject')) {
        const err = Object.assign(new Error('5.1.1 No such user'), { responseCode: 550 });
        callback(err);
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const hash = createHash('sha256');
      let size = 0;
      const head: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        if (size < 4096) head.push(chunk);
        size += chunk.length;
      });
      stream.on('end', () => {
        received.push({ session: structuredClone(session), size, sha256: hash.digest('hex'), text: Buffer.concat(head).toString('utf8') });
        callback();
      });
    },
    ...options,
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = (server as unknown as { server: net.Server }).server.address() as net.AddressInfo;
  return { port: address.port, received };
}

const password = new Secret('tanstaaf');

describe('SmtpClient with smtp-server', () => {
  it('plain connection with PIPELINING: dot-stuffing and bare LF arrive as CRLF text', async () => {
    const { port, received } = await startServer({ disabledCommands: ['STARTTLS'] });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', name: 'client.test' });
    expect(client.capabilities?.pipelining).toBe(true);
    const result = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'Subject: hi\n\n.leading dot\r\n.\nend');
    expect(result.pipelined).toBe(true);
    expect(result.accepted).toEqual(['b@example.net']);
    expect(received[0]?.text).toBe('Subject: hi\r\n\r\n.leading dot\r\n.\r\nend\r\n');
    expect(received[0]?.session.envelope.mailFrom && received[0].session.envelope.mailFrom.address).toBe('a@example.org');
  });

  it('STARTTLS (verified against the dev CA) and AUTH PLAIN — submission', async () => {
    const { port, received } = await startServer({ authMethods: ['PLAIN', 'LOGIN'] });
    await using client = await SmtpClient.connect({
      host: 'localhost',
      port,
      secure: 'starttls',
      tls: { ca: certs.caCert },
      auth: { username: 'tim', password },
    });
    expect(client.secure).toBe(true);
    expect(client.authenticated).toBe('PLAIN');
    await client.send({ from: 'tim@example.org', to: ['b@example.net'] }, 'x');
    expect(received[0]?.session.secure).toBe(true);
    expect(received[0]?.session.user).toBe('tim');
  });

  it('STARTTLS with an untrusted certificate fails (verification on by default)', async () => {
    const { port } = await startServer();
    const err = await SmtpClient.connect({ host: 'localhost', port, secure: 'opportunistic' }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('ERR_TLS_CERT_UNTRUSTED');
  });

  it('implicit TLS and AUTH LOGIN', async () => {
    const { port, received } = await startServer({ secure: true, authMethods: ['LOGIN'] });
    await using client = await SmtpClient.connect({ host: 'localhost', port, secure: 'implicit', tls: { ca: certs.caCert }, auth: { username: 'tim', password } });
    expect(client.authenticated).toBe('LOGIN');
    await client.send({ from: 'tim@example.org', to: ['b@example.net'] }, 'x');
    expect(received).toHaveLength(1);
  });

  it('AUTH CRAM-MD5 is preferred over PLAIN and LOGIN, and needs no TLS', async () => {
    const { port } = await startServer({ disabledCommands: ['STARTTLS'], authMethods: ['PLAIN', 'LOGIN', 'CRAM-MD5'], allowInsecureAuth: true });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', auth: { username: 'tim', password } });
    expect(client.authenticated).toBe('CRAM-MD5');
  });

  it('AUTH XOAUTH2 over STARTTLS; a wrong password is a typed 535', async () => {
    const { port } = await startServer({ authMethods: ['XOAUTH2', 'PLAIN'] });
    await using client = await SmtpClient.connect({ host: 'localhost', port, tls: { ca: certs.caCert }, auth: { username: 'tim', token: new Secret('token-1') } });
    expect(client.authenticated).toBe('XOAUTH2');
    const err = await SmtpClient.connect({ host: 'localhost', port, tls: { ca: certs.caCert }, auth: { username: 'tim', password: new Secret('wrong') } }).catch(
      (e: unknown) => e,
    );
    expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_AUTH_FAILED');
    expect((err as SmtpClientError).replyCode).toBe(535);
  });

  it('DSN, SMTPUTF8 and 8BITMIME reach the server', async () => {
    const { port, received } = await startServer({ disabledCommands: ['STARTTLS'], hideDSN: false, hideSMTPUTF8: false, hide8BITMIME: false });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none' });
    const result = await client.send(
      { from: 'jörg@example.org', to: ['用户@example.net', 'b@example.net'], dsn: { ret: 'HDRS', envid: 'env+1', notify: ['FAILURE', 'DELAY'] } },
      'Subject: grüße\r\n\r\nhé\r\n',
    );
    expect(result.smtputf8).toBe(true);
    expect(result.dsn).toBe(true);
    const envelope = received[0]!.session.envelope as unknown as {
      mailFrom: { address: string; args: Record<string, string | boolean> };
      rcptTo: { address: string; dsn?: { notify?: string[]; orcpt?: string } }[];
      dsn?: { ret?: string; envid?: string };
    };
    expect(envelope.mailFrom.address).toBe('jörg@example.org');
    expect(envelope.mailFrom.args['SMTPUTF8']).toBe(true);
    expect(envelope.mailFrom.args['BODY']).toBe('8BITMIME');
    expect(envelope.dsn).toMatchObject({ ret: 'HDRS', envid: 'env+1' });
    expect(envelope.rcptTo[0]?.address).toBe('用户@example.net');
    expect(envelope.rcptTo[1]?.dsn).toEqual({ notify: ['FAILURE', 'DELAY'], orcpt: 'rfc822;b@example.net' });
    expect(received[0]?.text).toContain('grüße');
  });

  it('streams a 10 MB body from an async iterable (never buffered whole)', async () => {
    const { port, received } = await startServer({ disabledCommands: ['STARTTLS'], size: 20 * 1024 * 1024 });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none' });
    const chunk = Buffer.from(`${'0123456789abcdef'.repeat(63)}xyz\r\n`.repeat(64)); // 64 KiB of 1 KiB lines
    const hash = createHash('sha256');
    const total = 160; // 10 MiB
    for (let i = 0; i < total; i++) hash.update(chunk);
    async function* body(): AsyncGenerator<Uint8Array> {
      // A real stream hands out chunks asynchronously.
      for (let i = 0; i < total; i++) yield await Promise.resolve(chunk);
    }
    const result = await client.send({ from: 'a@example.org', to: ['b@example.net'], size: chunk.length * total }, body());
    expect(result.accepted).toEqual(['b@example.net']);
    expect(received[0]?.size).toBe(chunk.length * total);
    expect(received[0]?.sha256).toBe(hash.digest('hex'));
  });

  it('per-recipient rejections and an all-rejected message', async () => {
    const { port, received } = await startServer({ disabledCommands: ['STARTTLS'] });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none' });
    const result = await client.send({ from: 'a@example.org', to: ['ok@example.net', 'reject-1@example.net'] }, 'x');
    expect(result.accepted).toEqual(['ok@example.net']);
    expect(result.recipients[1]).toMatchObject({ address: 'reject-1@example.net', accepted: false, rcptReply: { code: 550, enhanced: '5.1.1' } });
    const err = await client.send({ from: 'a@example.org', to: ['reject-2@example.net'] }, 'x').catch((e: unknown) => e);
    expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED');
    expect((err as SmtpClientError).replyCode).toBe(550);
    await client.send({ from: 'a@example.org', to: ['ok@example.net'] }, 'y');
    expect(received.map((r) => r.text)).toEqual(['x\r\n', 'y\r\n']);
  });

  it('reuses one connection for 100 messages (RSET between them)', async () => {
    const { port, received } = await startServer({ disabledCommands: ['STARTTLS'] });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none' });
    const sends: Promise<unknown>[] = [];
    // Queued calls run one after another on the one connection.
    for (let i = 0; i < 100; i++) sends.push(client.send({ from: 'a@example.org', to: [`r${i}@example.net`] }, `message ${i}`));
    await Promise.all(sends);
    expect(received).toHaveLength(100);
    expect(received[99]?.text).toBe('message 99\r\n');
    expect(new Set(received.map((r) => r.session.id)).size).toBe(1);
  });

  it('pipelineDepth: 200 messages pipelined across messages, refusals in the mix, all in order on one connection', async () => {
    const { port, received } = await startServer({ disabledCommands: ['STARTTLS'] });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', pipelineDepth: 8 });
    const outcomes = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) => client.send({ from: 'a@example.org', to: [i % 50 === 7 ? `reject${i}@example.net` : `r${i}@example.net`] }, `.message ${i}\n`)),
    );
    const refused = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [[i, (o.reason as SmtpClientError).code]] : []));
    expect(refused).toEqual([7, 57, 107, 157].map((i) => [i, 'ERR_SMTP_CLIENT_RECIPIENTS_REJECTED']));
    expect(outcomes.filter((o) => o.status === 'fulfilled' && o.value.pipelined && o.value.transfer === 'DATA')).toHaveLength(196);
    expect(received.map((r) => r.text)).toEqual(Array.from({ length: 200 }, (_, i) => i).filter((i) => i % 50 !== 7).map((i) => `.message ${i}\r\n`));
    expect(new Set(received.map((r) => r.session.id)).size).toBe(1);
  });

  it('LMTP: one reply per recipient after the data', async () => {
    const { port } = await startServer({
      lmtp: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, _session, callback) {
        stream.resume();
        stream.on('end', () => callback(null, ['delivered', Object.assign(new Error('4.2.2 Mailbox full'), { responseCode: 452 })]));
      },
    });
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', lmtp: true });
    const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'full@example.net'] }, 'x');
    expect(result.accepted).toEqual(['b@example.net']);
    expect(result.rejected).toEqual(['full@example.net']);
    expect(result.recipients[1]?.dataReply).toMatchObject({ code: 452 });
  });

  it('STARTTLS response injection: "220 go\\r\\n250 injected\\r\\n" in one write is dropped', async () => {
    const tlsOptions = createServerTlsOptions({ key: certs.key, cert: certs.cert });
    const seen: string[] = [];
    const fake = net.createServer((socket) => {
      socket.write('220 fake ESMTP\r\n');
      let buffered = '';
      const onData = (chunk: Buffer): void => {
        buffered += chunk.toString('latin1');
        for (let i = buffered.indexOf('\r\n'); i >= 0; i = buffered.indexOf('\r\n')) {
          const line = buffered.slice(0, i);
          buffered = buffered.slice(i + 2);
          seen.push(line);
          if (line.startsWith('EHLO')) socket.write('250-fake\r\n250 STARTTLS\r\n');
          if (line === 'STARTTLS') {
            socket.off('data', onData);
            // The attack: a fake reply right behind the go-ahead, in the same segment.
            socket.write('220 go\r\n250 injected\r\n');
            void upgradeServerSocket(socket, tlsOptions).then(({ socket: secure }) => {
              secure.on('error', () => undefined);
              secure.on('data', (c: Buffer) => {
                for (const l of c.toString('latin1').split('\r\n').filter(Boolean)) {
                  seen.push(`tls: ${l}`);
                  if (l.startsWith('EHLO')) secure.write('250-fake over tls\r\n250 SIZE 1000\r\n');
                  if (l === 'QUIT') secure.end('221 bye\r\n');
                }
              });
            });
          }
        }
      };
      socket.on('data', onData);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', () => resolve()));
    try {
      const port = (fake.address() as net.AddressInfo).port;
      const client = await SmtpClient.connect({ host: 'localhost', port, secure: 'starttls', tls: { ca: certs.caCert }, name: 'client.test' });
      expect(client.secure).toBe(true);
      // The EHLO reply over TLS, not the injected 250, gave the capabilities.
      expect(client.capabilities?.size).toBe(1000);
      expect(client.discardedAfterStartTls).toBeGreaterThan(0);
      await client.quit();
      expect(seen).toEqual(['EHLO client.test', 'STARTTLS', 'tls: EHLO client.test', 'tls: QUIT']);
    } finally {
      await new Promise<void>((resolve) => fake.close(() => resolve()));
    }
  });
});
