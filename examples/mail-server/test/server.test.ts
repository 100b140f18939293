import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestDnsServer } from '@pigeonpost/mx-resolver/testing';
import type { TestDnsServer } from '@pigeonpost/mx-resolver/testing';
import { Pop3Client } from '@pigeonpost/pop3-core/node';
import type { RelayEvent } from '@pigeonpost/relay';
import { SmtpClientError, smtpReply } from '@pigeonpost/smtp-core';
import type { RecipientResult, SmtpEnvelope, SmtpSessionInfo } from '@pigeonpost/smtp-core';
import { createSmtpServer, SmtpClient } from '@pigeonpost/smtp-core/node';
import type { SmtpClientConnectOptions, SmtpServer } from '@pigeonpost/smtp-core/node';
import { hashPassword, Secret } from '@pigeonpost/wire';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import type { MailServerConfig, ServiceName } from '../src/config.js';
import { defaultConfig } from '../src/config.js';
import type { RunningMailServer } from '../src/server.js';
import { startMailServer } from '../src/server.js';

function readAll(socket: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** A message with a line that starts with a dot, 8-bit text and trailing spaces: every byte must survive. */
function message(subject: string, to: string): Buffer {
  return Buffer.from(
    `From: Alice <alice@localhost.test>\r\nTo: <${to}>\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n.a line that starts with a dot\r\n..two dots\r\nGrüße, trailing space \r\n.\r\nend\r\n`,
    'utf8',
  );
}

const passwords = { alice: 'alice-correct-horse', bob: 'bob-battery-staple' };

interface FakeMx {
  readonly server: SmtpServer;
  readonly port: number;
  readonly received: { envelope: SmtpEnvelope; session: SmtpSessionInfo; body: Buffer }[];
  /** Resolves with the next message the fake MX takes. */
  next(): Promise<{ envelope: SmtpEnvelope; session: SmtpSessionInfo; body: Buffer }>;
}

/** A remote MTA on 127.0.0.2: smtp-core with STARTTLS; `refused@remote.test` does not exist there. */
async function startFakeMx(): Promise<FakeMx> {
  const certs = await createDevCertificates({ hostnames: ['mx.remote.test'], ipAddresses: ['127.0.0.2'] });
  const received: FakeMx['received'] = [];
  const waiters: ((m: FakeMx['received'][number]) => void)[] = [];
  const server = createSmtpServer({
    hostname: 'mx.remote.test',
    tls: createServerTlsOptions({ key: certs.key, cert: certs.cert }),
    onRcptTo: (to) => (to.address === 'refused@remote.test' ? Promise.reject(smtpReply(550, '5.1.1', 'No such user at remote')) : Promise.resolve()),
    onData: async (envelope, body, session) => {
      const m = { envelope, session, body: await collect(body) };
      received.push(m);
      waiters.shift()?.(m);
    },
  });
  const { port } = await server.listen({ host: '127.0.0.2', port: 0 });
  return { server, port, received, next: () => new Promise((resolve) => waiters.push(resolve)) };
}

describe('example mail server', () => {
  let dir: string;
  let server: RunningMailServer;
  let dns: TestDnsServer;
  let fakeMx: FakeMx;
  const relayEvents: RelayEvent[] = [];
  const relayWaiters: { test: (e: RelayEvent) => boolean; resolve: (e: RelayEvent) => void }[] = [];

  function relayEvent(test: (e: RelayEvent) => boolean): Promise<RelayEvent> {
    const seen = relayEvents.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => relayWaiters.push({ test, resolve }));
  }

  const port = (name: ServiceName): number => server.services.find((s) => s.config.name === name)!.addresses[0]!.port;

  function submitOptions(name: 'submission' | 'smtps', user: 'alice' | 'bob', password = passwords[user]): SmtpClientConnectOptions {
    return {
      host: '127.0.0.1',
      port: port(name),
      secure: name === 'smtps' ? 'implicit' : 'starttls',
      tls: { ca: server.caCert, servername: 'localhost' },
      auth: { username: `${user}@localhost.test`, password: new Secret(password) },
      name: 'client.test',
    };
  }

  async function pop3Fetch(user: 'alice' | 'bob', name: 'pop3' | 'pop3s' = 'pop3', remove = true): Promise<Buffer[]> {
    await using client = await Pop3Client.connect({
      host: '127.0.0.1',
      port: port(name),
      secure: name === 'pop3s' ? 'implicit' : 'starttls',
      tls: { ca: server.caCert, servername: 'localhost' },
      auth: { username: `${user}@localhost.test`, password: passwords[user] },
    });
    expect(client.secure).toBe(true);
    const out: Buffer[] = [];
    for (const { number } of await client.list()) {
      out.push(await (await client.retr(number)).bytes());
      if (remove) await client.dele(number);
    }
    return out;
  }

  const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

  /** The trace headers our server prepends, then exactly the submitted bytes. */
  function expectDeliveredCopy(stored: Buffer, original: Buffer, options: { from: string; with: string; for?: string }): void {
    const text = stored.toString('latin1');
    const header = new RegExp(
      `^Return-Path: <${escape(options.from)}>\\r\\nReceived: from client\\.test \\(\\[127\\.0\\.0\\.1\\]\\)\\r\\n\\tby localhost \\(Pigeonpost\\) with ${options.with} id [0-9A-F]{16}${options.for ? `\\r\\n\\tfor <${escape(options.for)}>` : ''};\\r\\n\\t[A-Z][a-z]{2}, \\d{1,2} [A-Z][a-z]{2} \\d{4} \\d\\d:\\d\\d:\\d\\d [+-]\\d{4}\\r\\n`,
    );
    const match = header.exec(text);
    expect(match, text.slice(0, 300)).not.toBeNull();
    expect(stored.subarray(match![0].length).equals(original)).toBe(true);
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pigeonpost-server-'));
    fakeMx = await startFakeMx();
    dns = await startTestDnsServer({
      zones: ['remote.test'],
      records: [
        { name: 'remote.test', type: 'MX', data: { preference: 10, exchange: 'mx.remote.test' } },
        { name: 'mx.remote.test', type: 'A', data: '127.0.0.2' },
      ],
    });
    const config: MailServerConfig = {
      ...defaultConfig,
      dataDir: dir,
      fsync: false,
      users: [
        { address: 'alice@localhost.test', passwordHash: await hashPassword(new Secret(passwords.alice), { ln: 10 }), aliases: ['postmaster@localhost.test'] },
        { address: 'bob@localhost.test', passwordHash: await hashPassword(new Secret(passwords.bob), { ln: 10 }) },
      ],
      services: defaultConfig.services.map((s) => ({ ...s, port: 0 })),
      relay: { mxPort: fakeMx.port, tlsPolicy: 'opportunistic', allowPrivateAddresses: true, dnsServers: [dns.address] },
    };
    server = await startMailServer(config, undefined, {
      onRelayEvent: (event) => {
        relayEvents.push(event);
        for (const w of relayWaiters.splice(0)) {
          if (w.test(event)) w.resolve(event);
          else relayWaiters.push(w);
        }
      },
    });
  });

  afterAll(async () => {
    await server?.close();
    await fakeMx?.server.close();
    await dns?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes development certificates with a private key only its owner reads', async () => {
    const mode = (await stat(join(dir, 'certs', 'key.pem'))).mode & 0o777;
    expect(mode).toBe(0o600);
    expect(server.caCert).toContain('BEGIN CERTIFICATE');
  });

  it('submission (STARTTLS + AUTH) to a local user, fetched over POP3 (STLS + AUTH): the same bytes under the trace headers', async () => {
    const original = message('to bob', 'bob@localhost.test');
    {
      await using client = await SmtpClient.connect(submitOptions('submission', 'alice'));
      expect(client.secure).toBe(true);
      expect(client.authenticated).toBe('PLAIN');
      const result = await client.send({ from: 'alice@localhost.test', to: ['bob@localhost.test'] }, original);
      expect(result.reply.code).toBe(250);
    }
    const [stored, ...more] = await pop3Fetch('bob');
    expect(more).toHaveLength(0);
    expectDeliveredCopy(stored!, original, { from: 'alice@localhost.test', with: 'ESMTPSA', for: 'bob@localhost.test' });
    // The Maildir on disk holds it too (Dovecot layout), and POP3 deleted it on QUIT.
    expect(await readdir(join(dir, 'mail', 'bob@localhost.test', 'Maildir', 'cur'))).toEqual([]);
  });

  it('implicit TLS submission (2465) and POP3 (2995) work the same way, aliases included', async () => {
    const original = message('to the postmaster', 'postmaster@localhost.test');
    {
      await using client = await SmtpClient.connect(submitOptions('smtps', 'bob'));
      await client.send({ from: 'bob@localhost.test', to: ['postmaster@localhost.test'] }, original);
    }
    const [stored] = await pop3Fetch('alice', 'pop3s');
    expectDeliveredCopy(stored!, original, { from: 'bob@localhost.test', with: 'ESMTPSA', for: 'postmaster@localhost.test' });
  });

  it('submission refuses a wrong password, mail without AUTH, a sender the user does not own, and unknown local users', async () => {
    await expect(SmtpClient.connect(submitOptions('submission', 'alice', 'wrong'))).rejects.toMatchObject({ code: 'ERR_SMTP_CLIENT_AUTH_FAILED', replyCode: 535 });

    const { auth: _auth, ...anonymous } = submitOptions('submission', 'alice');
    {
      await using client = await SmtpClient.connect(anonymous);
      await expect(client.send({ from: 'alice@localhost.test', to: ['bob@localhost.test'] }, 'Subject: x\r\n\r\nx\r\n')).rejects.toMatchObject({ replyCode: 530, enhancedCode: '5.7.0' });
    }
    await using client = await SmtpClient.connect(submitOptions('submission', 'alice'));
    await expect(client.send({ from: 'bob@localhost.test', to: ['bob@localhost.test'] }, 'Subject: x\r\n\r\nx\r\n')).rejects.toMatchObject({
      code: 'ERR_SMTP_CLIENT_MAIL_REJECTED',
      replyCode: 553,
      enhancedCode: '5.7.1',
    });
    const error: unknown = await client.send({ from: 'alice@localhost.test', to: ['nobody@localhost.test'] }, 'Subject: x\r\n\r\nx\r\n').catch((e: unknown) => e);
    if (!SmtpClientError.isInstance(error)) throw new Error(`expected an SmtpClientError, got ${String(error)}`);
    expect(error.code).toBe('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED');
    expect((error.recipients?.[0] as RecipientResult | undefined)?.rcptReply).toMatchObject({ code: 550, enhanced: '5.1.1' });
  });

  it('MX (2525) takes mail for local users without AUTH over STARTTLS, and is no open relay', async () => {
    const mxOptions: SmtpClientConnectOptions = { host: '127.0.0.1', port: port('smtp'), secure: 'starttls', tls: { ca: server.caCert, servername: 'localhost' }, name: 'client.test' };
    await using client = await SmtpClient.connect(mxOptions);
    expect(client.capabilities?.authMechanisms ?? []).toEqual([]); // no AUTH on the MX port
    const original = message('inbound', 'alice@localhost.test');
    const result = await client.send({ from: 'someone@remote.test', to: ['alice@localhost.test', 'nobody@localhost.test', 'victim@remote.test', 'x@example.com'] }, original);
    const replies = result.recipients.map((r) => [r.address, r.rcptReply.code, r.rcptReply.enhanced]);
    expect(replies).toEqual([
      ['alice@localhost.test', 250, '2.1.5'],
      ['nobody@localhost.test', 550, '5.1.1'],
      ['victim@remote.test', 550, '5.7.1'],
      ['x@example.com', 550, '5.7.1'],
    ]);
    const [stored] = await pop3Fetch('alice');
    expectDeliveredCopy(stored!, original, { from: 'someone@remote.test', with: 'ESMTPS', for: 'alice@localhost.test' });
    expect(fakeMx.received).toHaveLength(0);
    expect(relayEvents.filter((e) => e.type === 'queued')).toHaveLength(0);
  });

  it('a remote recipient goes through the relay queue to the MX that DNS names, over opportunistic STARTTLS; local copies are delivered at once', async () => {
    const original = message('out and in', 'carol@remote.test');
    const arrived = fakeMx.next();
    {
      await using client = await SmtpClient.connect(submitOptions('submission', 'alice'));
      const result = await client.send({ from: 'alice@localhost.test', to: ['carol@remote.test', 'bob@localhost.test'] }, original);
      expect(result.reply.lines.join(' ')).toMatch(/1 delivered, queued as /);
    }
    const remote = await arrived;
    expect(remote.envelope.mailFrom?.address).toBe('alice@localhost.test');
    expect(remote.envelope.rcptTo.map((r) => r.address.address)).toEqual(['carol@remote.test']);
    expect(remote.session.secure).toBe(true);
    expect(remote.session.helo).toBe('localhost');
    const text = remote.body.toString('latin1');
    expect(text).toMatch(/^Received: from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby localhost \(Pigeonpost\) with ESMTPSA id [0-9A-F]{16};\r\n\t[^\r]+\r\n/);
    expect(remote.body.subarray(remote.body.length - original.length).equals(original)).toBe(true);
    expect(dns.queries.some((q) => q.name === 'remote.test' && q.type === 'MX')).toBe(true);
    await relayEvent((e) => e.type === 'delivered' && e.recipients.includes('carol@remote.test'));

    const [local] = await pop3Fetch('bob');
    expect(local!.toString('latin1')).toMatch(/^Return-Path: <alice@localhost\.test>\r\nReceived: /);
    expect(local!.subarray(local!.length - original.length).equals(original)).toBe(true);
  });

  it('a remote refusal comes back to the local sender as a DSN in INBOX (the relay delivers locally too)', async () => {
    {
      await using client = await SmtpClient.connect(submitOptions('submission', 'alice'));
      await client.send({ from: 'alice@localhost.test', to: ['refused@remote.test'] }, message('will bounce', 'refused@remote.test'));
    }
    await relayEvent((e) => e.type === 'bounced' && e.recipients.includes('refused@remote.test'));
    await relayEvent((e) => e.type === 'delivered' && e.recipients.includes('alice@localhost.test'));
    const [dsn] = await pop3Fetch('alice');
    const text = dsn!.toString('latin1');
    expect(text).toMatch(/^Return-Path: <>\r\n/);
    expect(text).toMatch(/Content-Type: multipart\/report; report-type=delivery-status/i);
    expect(text).toMatch(/Final-Recipient: rfc822; ?refused@remote\.test/i);
    expect(text).toMatch(/Status: 5\.1\.1/);
  });

  it('a local delivery that fails: the client hears it when it was the only copy; after another copy is durable, the relay bounces it', async () => {
    const bob = await server.store.user('bob@localhost.test');
    await bob.setQuota({ storage: 10 });
    try {
      await using client = await SmtpClient.connect(submitOptions('submission', 'alice'));
      await expect(client.send({ from: 'alice@localhost.test', to: ['bob@localhost.test'] }, message('too big for bob', 'bob@localhost.test'))).rejects.toMatchObject({
        code: 'ERR_SMTP_CLIENT_DATA_REJECTED',
        replyCode: 552,
        enhancedCode: '5.2.2',
      });
      const original = message('to both', 'bob@localhost.test');
      const result = await client.send({ from: 'alice@localhost.test', to: ['alice@localhost.test', 'bob@localhost.test'] }, original);
      expect(result.reply.code).toBe(250);
      expect(result.reply.lines.join(' ')).toMatch(/1 delivered, queued as /);
      await relayEvent((e) => e.type === 'bounced' && e.recipients.includes('bob@localhost.test'));
      const notified = await relayEvent((e) => e.type === 'notified' && e.recipients.includes('bob@localhost.test'));
      // 'notified' is the DSN queued; it is in alice's mailbox once the relay has delivered it.
      const notice = notified.type === 'notified' ? notified.notice : '';
      await relayEvent((e) => e.type === 'delivered' && e.id === notice);
      const messages = (await pop3Fetch('alice')).map((m) => m.toString('latin1'));
      expect(messages).toHaveLength(2);
      expect(messages[0]!.endsWith(original.toString('latin1'))).toBe(true);
      expect(messages[1]).toMatch(/Final-Recipient: rfc822; ?bob@localhost\.test/i);
      expect(messages[1]).toMatch(/Status: 5\.2\.2/);
    } finally {
      await bob.setQuota({});
    }
    expect(await pop3Fetch('bob')).toEqual([]);
  });

  it('IMAP ports say honestly that IMAP is not available yet, in plaintext and over TLS', async () => {
    const plain = await readAll(netConnect(port('imap'), '127.0.0.1'));
    expect(plain).toMatch(/^\* BYE \[UNAVAILABLE\] .*IMAP is not available yet.*\r\n$/);
    const socket = tlsConnect({ port: port('imaps'), host: '127.0.0.1', servername: 'localhost', ca: server.caCert });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.authorized).toBe(true);
    expect(socket.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    expect(await readAll(socket)).toMatch(/^\* BYE \[UNAVAILABLE\] /);
  });

  it('POP3 refuses a password before STLS on the plaintext port', async () => {
    const socket = netConnect(port('pop3'), '127.0.0.1');
    socket.write('USER alice@localhost.test\r\nQUIT\r\n');
    const text = await readAll(socket);
    expect(text).toMatch(/^\+OK /);
    expect(text.split('\r\n')[1]).toMatch(/^-ERR /);
  });
});

describe('example mail server: defaults and shutdown', () => {
  it('creates development users with stored passwords, serves them, and closes every listener and the queue on close()', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pigeonpost-server-'));
    try {
      const config: MailServerConfig = { ...defaultConfig, dataDir: dir, fsync: false, services: defaultConfig.services.map((s) => ({ ...s, port: 0 })) };
      const first = await startMailServer(config);
      const alice = first.devUsers?.find((u) => u.address === 'alice@localhost.test');
      expect(first.devUsers?.map((u) => u.address)).toEqual(['alice@localhost.test', 'bob@localhost.test']);
      expect((await stat(join(dir, 'dev-users.json'))).mode & 0o777).toBe(0o600);
      expect(first.directory.storeUserFor('postmaster@localhost.test')).toBe('alice@localhost.test'); // RFC 5321 §4.5.1
      const pop3Port = first.services.find((s) => s.config.name === 'pop3s')!.addresses[0]!.port;
      {
        await using client = await Pop3Client.connect({ host: '127.0.0.1', port: pop3Port, secure: 'implicit', tls: { ca: first.caCert, servername: 'localhost' }, auth: { username: alice!.address, password: alice!.password } });
        expect(await client.stat()).toEqual({ count: 0, size: 0 });
      }
      await first.close();
      for (const s of first.services) {
        const error = await new Promise<unknown>((resolve) => netConnect(s.addresses[0]!.port, '127.0.0.1').once('error', resolve).once('connect', () => resolve(undefined)));
        expect((error as NodeJS.ErrnoException | undefined)?.code, s.config.name).toBe('ECONNREFUSED');
      }
      // Same data directory again: the queue lock was released, the passwords are the same.
      const second = await startMailServer(config);
      expect(second.devUsers).toEqual(first.devUsers);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
