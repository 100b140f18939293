/**
 * Interop with Postfix, both directions:
 * - Postfix's `smtp-source` load generator → our server;
 * - our client → a private Postfix `smtpd` (STARTTLS verified against the dev
 *   CA, AUTH PLAIN and LOGIN through Dovecot), which relays to our server;
 * - Postfix's `smtp` client (mail submitted with `sendmail -C`) → our server
 *   over STARTTLS (`smtp_tls_security_level = encrypt`, the dev CA trusted).
 * Gated with `postfixAvailable()`: outside CI a missing Postfix (or not being
 * root) skips with the reason; under CI=true it fails the run.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postfixAvailable, startPostfix } from '@pigeonpost/testkit';
import type { RunningPostfix } from '@pigeonpost/testkit';
import { Secret } from '@pigeonpost/wire';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import type { DevCertificates } from '@pigeonpost/wire/node';
import { SmtpClient } from '../../src/node/client.js';
import { createSmtpServer } from '../../src/node/server.js';
import type { SmtpServer } from '../../src/node/server.js';
import type { SmtpEnvelope, SmtpSessionInfo } from '../../src/server/types.js';

const peer = postfixAvailable();
const skipReason = peer.available ? '' : ` (skipped: ${peer.reason})`;
if (!peer.available) console.warn(`skipping Postfix interop tests: ${peer.reason}`);

interface Received {
  readonly envelope: SmtpEnvelope;
  readonly session: SmtpSessionInfo;
  readonly body: Buffer;
}

interface Sink {
  readonly server: SmtpServer;
  readonly port: number;
  readonly received: Received[];
  /** Resolves once `count` messages have arrived in total. */
  waitFor(count: number, timeoutMs?: number): Promise<void>;
}

/** Our server, accepting every recipient and keeping every message. */
async function startSink(options: { tls?: DevCertificates } = {}): Promise<Sink> {
  const received: Received[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = createSmtpServer({
    hostname: 'mx.example.org',
    ...(options.tls !== undefined ? { tls: createServerTlsOptions({ key: options.tls.key, cert: options.tls.cert }) } : {}),
    maxConnections: 500,
    maxConnectionsPerIp: 500,
    onRcptTo: () => Promise.resolve(),
    onData: async (envelope, body, session) => {
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.from(chunk));
      received.push({ envelope, session, body: Buffer.concat(chunks) });
      for (const w of waiters) if (received.length >= w.count) w.resolve();
    },
  });
  const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
  return {
    server,
    port,
    received,
    waitFor: (count, timeoutMs = 15_000) =>
      received.length >= count
        ? Promise.resolve()
        : new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`${received.length} of ${count} messages arrived within ${timeoutMs} ms`)), timeoutMs);
            waiters.push({
              count,
              resolve: () => {
                clearTimeout(timer);
                resolve();
              },
            });
          }),
  };
}

function run(command: string, args: readonly string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, [...args], { timeout: 30_000, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, output: stdout + stderr });
    });
  });
}

/** The message with the header block Postfix prepends (`Received:` and its continuation lines) taken off. */
function withoutTrace(message: Buffer): { trace: string; rest: Buffer } {
  const text = message.toString('latin1');
  const match = /^(?:Received:[^\r\n]*\r\n(?:[ \t][^\r\n]*\r\n)*)+/.exec(text);
  const length = match?.[0].length ?? 0;
  return { trace: text.slice(0, length), rest: message.subarray(length) };
}

describe.skipIf(!peer.available)(`Postfix smtp-source → our server${skipReason}`, () => {
  let sink: Sink | undefined;
  beforeAll(async () => {
    sink = await startSink();
  });
  afterAll(async () => {
    await sink?.server.close({ timeoutMs: 0 });
  });

  const cases = [
    { sessions: 1, messages: 50, size: 1024 },
    { sessions: 10, messages: 200, size: 1024 },
    { sessions: 1, messages: 50, size: 102400 },
    { sessions: 10, messages: 200, size: 102400 },
  ];
  for (const { sessions, messages, size } of cases) {
    for (const reuse of [false, true]) {
      it(`-s ${sessions} -m ${messages} -l ${size}${reuse ? ' -d (one connection per session)' : ' (one connection per message)'}`, async () => {
        const s = sink!;
        const before = s.received.length;
        const sessionsBefore = new Set(s.received.map((r) => r.session.id)).size;
        const args = ['-s', String(sessions), '-m', String(messages), '-l', String(size), '-M', 'source.example', '-f', 'load@source.example', '-t', 'sink@example.org'];
        if (reuse) args.push('-d');
        const r = await run('/usr/sbin/smtp-source', [...args, `inet:127.0.0.1:${s.port}`]);
        expect(r.code, r.output).toBe(0);
        await s.waitFor(before + messages);
        const got = s.received.slice(before);
        expect(got).toHaveLength(messages);

        // smtp-source's message: four header lines, a blank line, then `size` bytes of body
        // (lines of a digit and 77 X, the last one shorter or, at a multiple of 80, 80 X), then a final CRLF.
        const bodyBytes = size + 2;
        const ids = new Set<string>();
        for (const { envelope, session, body } of got) {
          expect(envelope.mailFrom?.address).toBe('load@source.example');
          expect(envelope.rcptTo.map((t) => t.address.address)).toEqual(['sink@example.org']);
          expect(session.helo).toBe('source.example');
          const text = body.toString('latin1');
          const split = text.indexOf('\r\n\r\n');
          const headers = text.slice(0, split + 2);
          expect(headers).toMatch(/^From: <load@source\.example>\r\nTo: <sink@example\.org>\r\nDate: [^\r\n]+\r\nMessage-Id: <([0-9a-f.]+@source\.example)>\r\n$/);
          ids.add(/Message-Id: <([^>]+)>/.exec(headers)?.[1] ?? '');
          const content = text.slice(split + 4);
          expect(content.length).toBe(bodyBytes);
          expect(body.length).toBe(headers.length + 2 + bodyBytes);
          expect(content).toMatch(/^(?:\dX{77}\r\n)*\d?X*\r\n$/);
        }
        expect(ids.size).toBe(messages);
        // Without -d each message has its own connection; with -d each session keeps one.
        const connections = new Set(got.map((g) => g.session.id)).size;
        expect(connections).toBe(reuse ? sessions : messages);
        expect(new Set(s.received.map((g) => g.session.id)).size).toBe(sessionsBefore + connections);
      });
    }
  }
});

describe.skipIf(!peer.available)(`our client → Postfix smtpd → Postfix smtp → our server${skipReason}`, () => {
  let dir: string | undefined;
  let certs: DevCertificates;
  let relay: Sink | undefined;
  let postfix: RunningPostfix | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pp-postfix-interop-'));
    // One CA; its server certificate names Postfix (postfix.test) and our server (mx.example.org).
    certs = await createDevCertificates({ hostnames: ['postfix.test', 'mx.example.org', 'localhost'], ipAddresses: ['127.0.0.1'] });
    for (const [name, pem] of [
      ['ca.pem', certs.caCert],
      ['cert.pem', certs.cert],
      ['key.pem', certs.key],
    ] as const) {
      writeFileSync(join(dir, name), pem, { mode: 0o600 });
    }
    relay = await startSink({ tls: certs });
    postfix = await startPostfix({
      hostname: 'postfix.test',
      tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
      sasl: true,
      submission: true,
      relay: { host: '127.0.0.1', port: relay.port, tlsLevel: 'encrypt', caFile: join(dir, 'ca.pem') },
    });
  }, 60_000);

  afterAll(async () => {
    const results = await Promise.allSettled([postfix?.stop(), relay?.server.close({ timeoutMs: 0 })]);
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  });

  const message = (n: number, mechanism: string): Buffer =>
    Buffer.from(
      [
        'From: Alice <alice@example.org>',
        'To: Bob <bob@example.net>, Carol <carol@example.net>',
        `Subject: Postfix interop ${mechanism} #${n}`,
        'Date: Mon, 01 Jan 2024 10:00:00 +0000',
        `Message-ID: <${mechanism}-${n}@pigeonpost.test>`,
        'MIME-Version: 1.0',
        'Content-Type: text/plain; charset=utf-8',
        'Content-Transfer-Encoding: 8bit',
        '',
        `Message ${n}, sent with AUTH ${mechanism}.`,
        '.a line that starts with a dot',
        '..and one with two',
        'caf\u00e9 \u2014 8-bit text',
        '',
        'the end',
        '',
      ].join('\r\n'),
      'utf8',
    );

  // Postfix offers CHUNKING: one connection sends with BDAT, the other with DATA.
  for (const [mechanism, chunking] of [
    ['PLAIN', true],
    ['LOGIN', false],
  ] as const) {
    it(`STARTTLS (dev CA, name postfix.test), AUTH ${mechanism}, ${chunking ? 'BDAT' : 'DATA'}: 3 messages on one connection arrive byte-for-byte`, async () => {
      const pf = postfix!;
      const sink = relay!;
      const before = sink.received.length;
      await using client = await SmtpClient.connect({
        host: '127.0.0.1',
        port: pf.ports.submission,
        secure: 'starttls',
        name: 'client.example',
        tls: { ca: certs.caCert, servername: 'postfix.test' },
        auth: { username: 'alice', password: new Secret('alice-password'), mechanism },
        chunking,
      });
      expect(client.secure).toBe(true);
      expect(client.authenticated).toBe(mechanism);

      const sent = new Map<string, Buffer>();
      const queueIds: string[] = [];
      for (let n = 1; n <= 3; n++) {
        const body = message(n, mechanism);
        const result = await client.send({ from: 'alice@example.org', to: ['bob@example.net', 'carol@example.net'] }, body);
        expect(result.recipients.map((r) => [r.address, r.accepted, r.rcptReply.code])).toEqual([
          ['bob@example.net', true, 250],
          ['carol@example.net', true, 250],
        ]);
        expect(result.accepted).toEqual(['bob@example.net', 'carol@example.net']);
        expect(result.reply.code).toBe(250);
        expect(result.transfer).toBe(chunking ? 'BDAT' : 'DATA');
        expect(result.pipelined).toBe(true);
        const queued = /queued as ([0-9A-Za-z]+)/.exec(result.reply.lines.join(' '));
        expect(queued, result.reply.lines.join(' ')).not.toBeNull();
        queueIds.push(queued![1]!);
        sent.set(`<${mechanism}-${n}@pigeonpost.test>`, body);
      }

      for (const id of queueIds) {
        await pf.waitForLog(new RegExp(`${id}: client=localhost\\[127\\.0\\.0\\.1\\], sasl_method=${mechanism}, sasl_username=alice`));
        await pf.waitForLog(new RegExp(`${id}: to=<carol@example\\.net>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${sink.port},[^\\n]*status=sent`));
        await pf.waitForLog(new RegExp(`${id}: to=<bob@example\\.net>, relay=127\\.0\\.0\\.1\\[127\\.0\\.0\\.1\\]:${sink.port},[^\\n]*status=sent`));
      }
      // Postfix delivers both recipients of a message in one transaction.
      await sink.waitFor(before + 3);
      const got = sink.received.slice(before);
      expect(got).toHaveLength(3);
      for (const r of got) {
        const { trace, rest } = withoutTrace(r.body);
        const id = /^Message-ID: (<[^>]+>)\r$/m.exec(rest.toString('latin1'))?.[1] ?? '';
        const original = sent.get(id);
        expect(original, `unexpected message ${id}`).toBeDefined();
        // Postfix added one Received: line, saying it got the message over TLS with AUTH.
        expect(trace).toMatch(/^Received: from client\.example \(localhost \[127\.0\.0\.1\]\)\r\n/);
        expect(trace).toMatch(/by postfix\.test \(Postfix\) with ESMTPSA id /);
        expect(trace).toMatch(/\(using TLSv1\.[23] with cipher /);
        expect(rest.equals(original!), `${id} changed in transit`).toBe(true);
        expect(r.envelope.mailFrom?.address).toBe('alice@example.org');
        expect(r.envelope.rcptTo.map((t) => t.address.address).sort()).toEqual(['bob@example.net', 'carol@example.net']);
        // Postfix's smtp client used STARTTLS towards our server.
        expect(r.session.secure).toBe(true);
        expect(r.session.helo).toBe('postfix.test');
        sent.delete(id);
      }
      expect(sent.size).toBe(0);
      await pf.waitForLog(/Trusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]/);
    });
  }

  it('submission refuses a wrong password and relaying without AUTH', async () => {
    const pf = postfix!;
    await expect(
      SmtpClient.connect({
        host: '127.0.0.1',
        port: pf.ports.submission,
        name: 'client.example',
        tls: { ca: certs.caCert, servername: 'postfix.test' },
        auth: { username: 'alice', password: new Secret('wrong'), mechanism: 'PLAIN' },
      }),
    ).rejects.toMatchObject({ code: 'ERR_SMTP_CLIENT_AUTH_FAILED', replyCode: 535 });

    await using anonymous = await SmtpClient.connect({ host: '127.0.0.1', port: pf.ports.submission, name: 'client.example', tls: { ca: certs.caCert, servername: 'postfix.test' } });
    await expect(anonymous.send({ from: 'alice@example.org', to: ['bob@example.net'] }, 'Subject: x\r\n\r\nx\r\n')).rejects.toMatchObject({
      code: 'ERR_SMTP_CLIENT_RECIPIENTS_REJECTED',
    });
  });

  it('a certificate for another name is refused by our client', async () => {
    const pf = postfix!;
    await expect(
      SmtpClient.connect({ host: '127.0.0.1', port: pf.ports.smtp, name: 'client.example', tls: { ca: certs.caCert, servername: 'other.example' } }),
    ).rejects.toMatchObject({ code: 'ERR_TLS_CERT_NAME_MISMATCH' });
  });

  it('sendmail -C → pickup → Postfix smtp client → our server over STARTTLS, intact', async () => {
    const pf = postfix!;
    const sink = relay!;
    const before = sink.received.length;
    const body = Buffer.from(
      [
        'From: Postmaster <postmaster@postfix.test>',
        'To: dave@example.org',
        'Subject: via sendmail',
        'Date: Mon, 01 Jan 2024 10:00:00 +0000',
        'Message-ID: <sendmail-1@pigeonpost.test>',
        '',
        'Line one.',
        '.Line two starts with a dot.',
        'x'.repeat(900),
        '',
      ].join('\r\n'),
    );
    // sendmail reads LF or CRLF lines; give it LF (its native form) and expect CRLF on the wire.
    await pf.sendmail('postmaster@postfix.test', ['dave@example.org'], body.toString('latin1').replace(/\r\n/g, '\n'));
    await sink.waitFor(before + 1);
    const [r] = sink.received.slice(before);
    const { trace, rest } = withoutTrace(r!.body);
    expect(trace).toMatch(/^Received: by postfix\.test \(Postfix, from userid 0\)\r\n/);
    expect(rest.equals(body), rest.toString('latin1')).toBe(true);
    expect(r!.session.secure).toBe(true);
    expect(r!.envelope.mailFrom?.address).toBe('postmaster@postfix.test');
    expect(r!.envelope.rcptTo.map((t) => t.address.address)).toEqual(['dave@example.org']);
    await pf.waitForLog(/to=<dave@example\.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+,[^\n]*status=sent/);
    expect(pf.logs()).toMatch(/Trusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:\d+: TLSv1\.[23]/);
  });
});
