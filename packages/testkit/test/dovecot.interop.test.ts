import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { ensureDevCertificates } from '@pigeonpost/wire/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupAlive } from '../src/cleanup.js';
import { connectImap, connectPop3, deliverLmtp, deliverWithLda, dovecotAvailable, startDovecot } from '../src/index.js';
import type { RunningDovecot } from '../src/index.js';

const peer = dovecotAvailable();
if (!peer.available) console.warn(`skipping Dovecot interop tests: ${peer.reason}`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const message = Buffer.from(
  [
    'From: Alice Example <alice@example.test>',
    'To: bob@example.test',
    'Subject: =?utf-8?q?caf=C3=A9?= test',
    'Date: Mon, 01 Jan 2024 10:00:00 +0000',
    'Message-ID: <m1@example.test>',
    'MIME-Version: 1.0',
    'Content-Type: multipart/mixed; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain; charset=utf-8',
    '',
    'Hello caf\u00e9',
    '.leading dot line',
    '--b1',
    'Content-Type: application/octet-stream',
    'Content-Transfer-Encoding: base64',
    '',
    'AAECAw==',
    '--b1--',
    '',
  ].join('\r\n'),
  'utf8',
);

describe.skipIf(!peer.available)('Dovecot via the test kit', () => {
  let dovecot: RunningDovecot;

  beforeAll(async () => {
    dovecot = await startDovecot();
  });
  afterAll(async () => {
    await dovecot?.stop();
  });

  it('APPENDs through RawImap and FETCHes the same bytes back, literals intact', async () => {
    await using imap = await connectImap({ port: dovecot.ports.imap });
    expect(imap.greeting.text).toMatch(/^\* OK /);
    await imap.login('alice', 'alice-password');
    const appended = await imap.append('INBOX', ['\\Flagged', '$Important'], message, '01-Jan-2024 10:00:00 +0000');
    expect(appended.text).toMatch(/^\[APPENDUID \d+ 1\]/);
    const selected = await imap.select('INBOX');
    expect(selected.untagged.map((r) => r.text)).toContain('* 1 EXISTS');

    const fetched = await imap.command('FETCH 1 (FLAGS ENVELOPE BODYSTRUCTURE RFC822.SIZE BODY[])');
    expect(fetched.status).toBe('OK');
    const response = fetched.untagged.find((r) => r.text.startsWith('* 1 FETCH'));
    expect(response).toBeDefined();
    const body = response!.literals.at(-1)!;
    expect(body.equals(message)).toBe(true);
    expect(response!.text).toContain(`RFC822.SIZE ${message.length}`);
    expect(response!.text).toContain('ENVELOPE ("Mon, 01 Jan 2024 10:00:00 +0000" "=?utf-8?q?caf=C3=A9?= test"');
    expect(response!.text).toMatch(/BODYSTRUCTURE \(\("text" "plain" \("charset" "utf-8"\)/);
    expect(response!.text).toMatch(/FLAGS \([^)]*\\Flagged/);
    // The exact bytes: the announcement, the literal, and the closing parenthesis.
    const literalAt = response!.bytes.indexOf(`BODY[] {${message.length}}\r\n`);
    expect(literalAt).toBeGreaterThan(0);
    expect(response!.bytes.subarray(response!.bytes.length - 3).toString('latin1')).toBe(')\r\n');

    const out = await imap.logout();
    expect(out.status).toBe('OK');
    expect(out.untagged[0]?.text).toMatch(/^\* BYE/);
  });

  it('POP3 LIST and RETR return the appended message, dot-stuffed on the wire', async () => {
    await using pop = await connectPop3({ port: dovecot.ports.pop3 });
    expect(pop.greeting).toMatch(/^\+OK/);
    await pop.login('alice', 'alice-password');
    const list = await pop.command('LIST', { multiline: true });
    expect(list.body.toString('latin1')).toBe(`1 ${message.length}\r\n`);
    const retr = await pop.command('RETR 1', { multiline: true });
    expect(retr.ok).toBe(true);
    expect(retr.body.equals(message)).toBe(true);
    expect(retr.raw.includes('\r\n..leading dot line\r\n')).toBe(true);
    expect(retr.raw.subarray(-5).toString('latin1')).toBe('\r\n.\r\n');
    const bad = await pop.command('RETR 99', { multiline: true });
    expect(bad.ok).toBe(false);
    await pop.quit();
  });

  it('LMTP and LDA deliveries are written by Dovecot and seen over IMAP', async () => {
    const replies = await deliverLmtp(dovecot, ['bob'], Buffer.from('Subject: via lmtp\r\n\r\n.dot\r\n'));
    expect(replies).toHaveLength(1);
    expect(replies[0]!.code).toBe(250);
    await deliverWithLda(dovecot, 'bob', Buffer.from('Subject: via lda\r\n\r\nbody\r\n'), { mailbox: 'Archive' });

    await using imap = await connectImap({ port: dovecot.ports.imap });
    await imap.login('bob', 'bob-password');
    await imap.select('INBOX');
    const inbox = await imap.command('FETCH 1:* (BODY.PEEK[])');
    expect(inbox.untagged).toHaveLength(1);
    const delivered = inbox.untagged[0]!.literals[0]!.toString('latin1');
    // Dovecot's LMTP adds Return-Path, Delivered-To and Received.
    expect(delivered).toMatch(/^Return-Path: <sender@example.test>\r\nDelivered-To: bob\r\n/);
    expect(delivered.endsWith('\r\nSubject: via lmtp\r\n\r\n.dot\r\n')).toBe(true);
    await imap.select('Archive');
    const archive = await imap.command('FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])');
    expect(archive.untagged[0]!.literals[0]!.toString('latin1')).toBe('Subject: via lda\r\n\r\n');

    // SELECT moved the message from new/ to cur/; Dovecot names it with both sizes.
    const files = await readdir(join(dovecot.maildir('bob'), 'cur'));
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(/,S=\d+,W=\d+:2,$/);
    await imap.logout();
  });

  it('reads a Maildir message written by the test (chownForDovecot)', async () => {
    const maildir = dovecot.maildir('alice');
    const folder = join(maildir, '.Imported');
    for (const sub of ['cur', 'new', 'tmp']) await mkdir(join(folder, sub), { recursive: true });
    await writeFile(join(folder, 'maildirfolder'), '');
    // LF line endings as Dovecot stores them: S= is the file size, W= the size with CRLF.
    // A wrong S= makes Dovecot log "Cached message size smaller than expected" and disconnect.
    await writeFile(join(folder, 'cur', '1700000000.M1P1.test,S=15,W=18:2,S'), 'Subject: x\n\nhi\n');
    await dovecot.chownForDovecot(folder);
    await using imap = await connectImap({ port: dovecot.ports.imap });
    await imap.login('alice', 'alice-password');
    const selected = await imap.select('Imported');
    expect(selected.untagged.map((r) => r.text)).toContain('* 1 EXISTS');
    const fetched = await imap.command('FETCH 1 (FLAGS RFC822.SIZE)');
    expect(fetched.untagged[0]!.text).toMatch(/FLAGS \(\\Seen \\Recent\)/);
    expect(fetched.untagged[0]!.text).toMatch(/RFC822.SIZE 18/);
    await imap.logout();
  });

  it('reports a NO as a result, and login failures as errors', async () => {
    await using imap = await connectImap({ port: dovecot.ports.imap });
    await expect(imap.login('alice', 'wrong')).rejects.toThrow(/LOGIN failed: NO/);
    await imap.login('alice', 'alice-password');
    const missing = await imap.command('SELECT "Nope"');
    expect(missing.status).toBe('NO');
    const bad = await imap.command('FROB');
    expect(bad.status).toBe('BAD');
  });
});

describe.skipIf(!peer.available)('Dovecot lifecycle', () => {
  it('runs two instances at once and stop() leaves no process and no folder behind', async () => {
    const [a, b] = await Promise.all([
      startDovecot({ protocols: ['imap'], users: [{ name: 'u1', password: 'p1' }] }),
      startDovecot({ protocols: ['imap', 'lmtp'], users: [{ name: 'u2', password: 'p2' }] }),
    ]);
    try {
      expect(a.ports.imap).not.toBe(b.ports.imap);
      expect(a.ports.pop3).toBe(0);
      expect(b.ports.lmtp).toBeGreaterThan(0);
      for (const [d, user, pass] of [
        [a, 'u1', 'p1'],
        [b, 'u2', 'p2'],
      ] as const) {
        await using imap = await connectImap({ port: d.ports.imap });
        await imap.login(user, pass);
        await imap.logout();
      }
      expect(a.logs()).toMatch(/starting up for imap/);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    for (const d of [a, b]) {
      expect(alive(d.pid)).toBe(false);
      // No straggler in Dovecot's process group either.
      expect(groupAlive(d.pid)).toBe(false);
      await expect(readFile(d.configPath)).rejects.toThrow();
    }
    await a.stop(); // idempotent
  });

  it('fails with the log when the config is wrong', async () => {
    await expect(startDovecot({ protocols: ['imap'], extraConfig: 'no_such_setting = 1' })).rejects.toThrow(/no_such_setting/);
  });

  it('serves implicit TLS (imaps, pop3s) with given PEM files', async () => {
    const certDir = await mkdtemp(join(tmpdir(), 'pp-testkit-certs-'));
    try {
      const certs = await ensureDevCertificates({ dir: certDir });
      await using dovecot = await startDovecot({ protocols: ['imap', 'pop3'], ssl: { cert: certs.paths.cert, key: certs.paths.key } });
      expect(dovecot.ports.imaps).toBeGreaterThan(0);
      expect(dovecot.ports.pop3s).toBeGreaterThan(0);
      for (const [port, prefix] of [
        [dovecot.ports.imaps, '* OK'],
        [dovecot.ports.pop3s, '+OK'],
      ] as const) {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: certs.caCert, servername: 'localhost' });
        const greeting = await new Promise<string>((resolve, reject) => {
          socket.once('data', (d: Buffer) => resolve(d.toString('latin1')));
          socket.once('error', reject);
        });
        expect(greeting.startsWith(prefix)).toBe(true);
        expect(['TLSv1.2', 'TLSv1.3']).toContain(socket.getProtocol());
        socket.destroy();
      }
      await using imap = await connectImap({ port: dovecot.ports.imap });
      expect(imap.greeting.text).toContain('STARTTLS');
    } finally {
      await rm(certDir, { recursive: true, force: true });
    }
  });

  it('does not delay a login after a failed one (auth penalty off)', async () => {
    await using dovecot = await startDovecot({ protocols: ['imap'] });
    await using imap = await connectImap({ port: dovecot.ports.imap });
    await expect(imap.login('alice', 'wrong')).rejects.toThrow(/NO/);
    const started = Date.now();
    await imap.login('alice', 'alice-password');
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
