/**
 * Interop: real POP3 clients from Debian against our server over loopback —
 * fetchmail (plain, STLS, implicit TLS, keep and delete, UIDL-based fetch of
 * only new messages), mpop, getmail6, Python's poplib, curl (pop3://,
 * pop3s://), and Thunderbird's session replayed byte for byte. The mail
 * lives in a `@pigeonpost/mailbox-store` memory store behind
 * `mailStoreBackend`. Each peer is found with `findPeer`: outside CI a
 * missing one skips with the reason, under CI=true it fails the run.
 */
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMemoryStore } from '@pigeonpost/mailbox-store';
import type { MailStore } from '@pigeonpost/mailbox-store';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import { findPeer } from '@pigeonpost/wire/testing';
import type { PeerStatus } from '@pigeonpost/wire/testing';
import { mailStoreBackend } from '../../src/server/mail-store.js';
import { createPop3Server } from '../../src/node/server.js';
import type { Pop3Server } from '../../src/node/server.js';

const fetchmail = findPeer('fetchmail', { versionArgs: ['--version'], debianPackage: 'fetchmail' });
const mpop = findPeer('mpop', { versionArgs: ['--version'], debianPackage: 'mpop' });
const getmail = findPeer('getmail', { versionArgs: ['--version'], debianPackage: 'getmail6' });
const curl = findPeer('curl', { versionArgs: ['--version'], debianPackage: 'curl' });
const python = findPeer('python3', { versionArgs: ['--version'], debianPackage: 'python3' });

/** The program's path (only called inside a suite that is skipped when the peer is missing). */
const bin = (peer: PeerStatus): string => (peer.available ? peer.path : 'missing');

const USERS = { alice: 'alice-password' };
let dir: string;
let caFile: string;
let caPem: string;
let store: MailStore;
let plain: { server: Pop3Server; port: number };
let implicit: { server: Pop3Server; port: number };

function run(command: string, args: string[], options: { input?: string; env?: Record<string, string> } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 45_000, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024, env: { ...process.env, ...options.env } }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

function mail(i: number): string {
  return `From: sender@example.org\r\nTo: alice@example.org\r\nSubject: message ${i}\r\nMessage-ID: <m${i}@example.org>\r\n\r\nBody of message ${i}.\r\n.line starting with a dot\r\n`;
}

async function deliver(...numbers: number[]): Promise<void> {
  for (const i of numbers) await store.deliver({ user: 'alice', body: Buffer.from(mail(i)) });
}

async function inbox(): Promise<{ uid: number; flags: readonly string[] }[]> {
  const box = await (await store.user('alice')).open('INBOX');
  try {
    return box.messages().map((m) => ({ uid: m.uid, flags: m.flags }));
  } finally {
    await box.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pop3-interop-'));
  const certs = await createDevCertificates();
  caPem = certs.caCert;
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, certs.caCert);
  const tlsOptions = createServerTlsOptions({ key: certs.key, cert: certs.cert });
  store = createMemoryStore();
  await store.createUser('alice');
  const backend = mailStoreBackend({ store, users: USERS });
  const make = async (secure: boolean) => {
    const server = createPop3Server({ hostname: 'pop.example.org', backend, tls: tlsOptions, secure, authFailureDelayMs: 0, allowInsecureAuth: !secure });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    return { server, port };
  };
  plain = await make(false);
  implicit = await make(true);
});

afterAll(async () => {
  await Promise.all([plain, implicit].filter(Boolean).map((s) => s.server.close({ timeoutMs: 0 })));
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function emptyInbox(): Promise<void> {
  const box = await (await store.user('alice')).open('INBOX');
  const uids = box.messages().map((m) => m.uid);
  if (uids.length > 0) {
    await box.setFlags(uids, { mode: 'add', flags: ['\\Deleted'] });
    await box.expunge();
  }
  await box.close();
}

describe.skipIf(!fetchmail.available)('fetchmail', { timeout: 60_000 }, () => {
  beforeEach(emptyInbox);

  /** Run fetchmail with an rc file; messages go to a BSMTP file we count. */
  async function runFetchmail(name: string, options: string, port: number, extra = ''): Promise<{ code: number; out: string; messages: number; bsmtp: string }> {
    const home = join(dir, `fetchmail-${name}`);
    mkdirSync(home, { recursive: true });
    const rc = join(home, 'fetchmailrc');
    const bsmtp = join(home, 'out.bsmtp');
    writeFileSync(
      rc,
      `set no syslog\nset idfile "${join(home, 'fetchids')}"\npoll 127.0.0.1 with proto POP3 port ${port} ${extra}\n  user "alice" there with password "alice-password" is "root" here\n  options ${options} bsmtp "${bsmtp}"\n`,
    );
    chmodSync(rc, 0o600);
    const result = await run(bin(fetchmail), ['-f', rc, '-v', '--nosyslog'], { env: { HOME: home, FETCHMAILHOME: home } });
    let text = '';
    try {
      text = readFileSync(bsmtp, 'utf8');
    } catch {
      // no message fetched
    }
    return { code: result.code, out: result.stdout + result.stderr, messages: (text.match(/^MAIL FROM:/gm) ?? []).length, bsmtp: text };
  }

  it('plain, keep: fetches every message, deletes nothing, sets \\Seen', async () => {
    await deliver(1, 2, 3);
    const r = await runFetchmail('plain', "keep sslproto ''", plain.port);
    expect(r.out).toMatch(/3 messages/);
    expect(r.code).toBe(0);
    expect(r.messages).toBe(3);
    // fetchmail un-stuffs the leading dot; BSMTP stuffs it again.
    expect(r.bsmtp).toContain('Subject: message 2');
    const box = await inbox();
    expect(box).toHaveLength(3);
    expect(box.every((m) => m.flags.includes('\\Seen'))).toBe(true);
  });

  it('STLS with a verified certificate, delete mode: the maildrop is empty afterwards', async () => {
    await deliver(1, 2);
    const r = await runFetchmail('stls', `sslproto 'tls1.2+' sslcertck sslcertfile "${caFile}" sslcommonname localhost`, plain.port);
    expect(r.out).toMatch(/STLS/);
    expect(r.code).toBe(0);
    expect(r.messages).toBe(2);
    expect(await inbox()).toHaveLength(0);
  });

  it('implicit TLS (pop3s)', async () => {
    await deliver(1);
    const r = await runFetchmail('implicit', `ssl sslcertck sslcertfile "${caFile}" sslcommonname localhost keep`, implicit.port);
    expect(r.code).toBe(0);
    expect(r.messages).toBe(1);
    expect(await inbox()).toHaveLength(1);
  });

  it('UIDL, keep: a second run fetches only the new message', async () => {
    await deliver(1, 2);
    const first = await runFetchmail('uidl', "keep sslproto ''", plain.port, 'uidl');
    expect(first.messages).toBe(2);
    await deliver(3);
    const second = await runFetchmail('uidl', "keep sslproto ''", plain.port, 'uidl');
    expect(second.out).toMatch(/3 messages \(2 seen\)/);
    expect(second.messages - first.messages).toBe(1);
    expect(second.bsmtp.match(/Subject: message 3/g)).toHaveLength(1);
  });
});

describe.skipIf(!python.available)("Python's poplib", { timeout: 60_000 }, () => {
  beforeEach(emptyInbox);

  it('STLS, CAPA, STAT, LIST, UIDL, TOP, RETR, DELE, RSET, NOOP, QUIT; then implicit TLS', async () => {
    await deliver(1, 2);
    const script = `
import poplib, ssl, json, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
out = {}
p = poplib.POP3('127.0.0.1', int(sys.argv[2]))
out['greeting'] = p.getwelcome().decode()
p.stls(context=ctx)
out['capa'] = sorted(p.capa().keys())
p.user('alice'); p.pass_('alice-password')
out['stat'] = p.stat()
out['list'] = [l.decode() for l in p.list()[1]]
out['uidl'] = [l.decode() for l in p.uidl()[1]]
out['top'] = [l.decode() for l in p.top(1, 0)[1]]
out['retr'] = [l.decode() for l in p.retr(2)[1]]
out['dele'] = p.dele(1).decode()
out['rset'] = p.rset().decode()
out['noop'] = p.noop().decode()
p.dele(2)
out['quit'] = p.quit().decode()
s = poplib.POP3_SSL('127.0.0.1', int(sys.argv[3]), context=ctx)
s.user('alice'); s.pass_('alice-password')
out['after'] = s.stat()
s.quit()
print(json.dumps(out))
`;
    const r = await run(bin(python), ['-c', script, caFile, String(plain.port), String(implicit.port)]);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as Record<string, unknown>;
    const size = mail(1).length;
    expect(out.capa).toEqual(expect.arrayContaining(['PIPELINING', 'RESP-CODES', 'SASL', 'TOP', 'UIDL', 'USER']));
    expect(out.stat).toEqual([2, size * 2]);
    expect(out.list).toEqual([`1 ${size}`, `2 ${size}`]);
    expect((out.uidl as string[])[0]).toMatch(/^1 [0-9a-f]{16}$/);
    expect(out.top).toEqual(['From: sender@example.org', 'To: alice@example.org', 'Subject: message 1', 'Message-ID: <m1@example.org>', '']);
    expect(out.retr).toEqual(mail(2).split('\r\n').slice(0, -1));
    expect(out.quit).toMatch(/^\+OK/);
    expect(out.after).toEqual([1, size]);
  });
});

describe.skipIf(!curl.available)('curl', { timeout: 60_000 }, () => {
  beforeEach(emptyInbox);

  it('pop3:// with --ssl-reqd lists and retrieves; pop3s:// too', async () => {
    await deliver(1, 2);
    const base = ['-s', '--cacert', caFile, '-u', 'alice:alice-password'];
    const list = await run(bin(curl), [...base, '--ssl-reqd', `pop3://localhost:${plain.port}/`]);
    expect(list.code).toBe(0);
    expect(list.stdout).toBe(`1 ${mail(1).length}\r\n2 ${mail(2).length}\r\n`);
    const retr = await run(bin(curl), [...base, '--ssl-reqd', `pop3://localhost:${plain.port}/2`]);
    expect(retr.stdout).toBe(mail(2));
    const secure = await run(bin(curl), [...base, `pop3s://localhost:${implicit.port}/1`]);
    expect(secure.stdout).toBe(mail(1));
    const dele = await run(bin(curl), [...base, '-X', 'DELE', '-I', `pop3s://localhost:${implicit.port}/1`]);
    expect(dele.code).toBe(0);
    expect(await inbox()).toHaveLength(1);
  });
});

describe.skipIf(!mpop.available)('mpop', { timeout: 60_000 }, () => {
  beforeEach(emptyInbox);

  it('STLS with a verified certificate, delivers to a Maildir, keeps nothing', async () => {
    await deliver(1, 2, 3);
    const home = join(dir, 'mpop');
    const maildir = join(home, 'Maildir');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
    const rc = join(home, 'mpoprc');
    writeFileSync(
      rc,
      `account default\nhost localhost\nport ${plain.port}\nuser alice\npassword alice-password\ntls on\ntls_starttls on\ntls_trust_file ${caFile}\ndelivery maildir ${maildir}\nkeep off\nuidls_file ${join(home, 'uidls')}\n`,
    );
    chmodSync(rc, 0o600);
    const r = await run(bin(mpop), ['-C', rc, '-q']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const got = readdirSync(join(maildir, 'new'));
    expect(got).toHaveLength(3);
    expect(await inbox()).toHaveLength(0);
  });
});

describe.skipIf(!getmail.available)('getmail6', { timeout: 60_000 }, () => {
  beforeEach(emptyInbox);

  it('SimplePOP3SSLRetriever, only new messages by UIDL (read_all = false)', async () => {
    await deliver(1, 2);
    const home = join(dir, 'getmail');
    const out = join(home, 'out');
    mkdirSync(out, { recursive: true });
    // An external MDA: getmail refuses to deliver into a Maildir as root.
    writeFileSync(
      join(home, 'getmailrc'),
      `[retriever]\ntype = SimplePOP3SSLRetriever\nserver = localhost\nport = ${implicit.port}\nusername = alice\npassword = alice-password\nca_certs = ${caFile}\n\n` +
        `[destination]\ntype = MDA_external\npath = /bin/sh\narguments = ("-c", "cat > ${out}/msg.$$$$")\nallow_root_commands = true\n\n[options]\nread_all = false\ndelete = false\n`,
    );
    const args = ['--getmaildir', home, '--rcfile', 'getmailrc', '--quiet'];
    const first = await run(bin(getmail), args);
    expect(first.stderr).toBe('');
    expect(readdirSync(out)).toHaveLength(2);
    await deliver(3);
    await run(bin(getmail), args);
    const files = readdirSync(out).map((f) => readFileSync(join(out, f), 'utf8'));
    expect(files).toHaveLength(3);
    expect(files.filter((f) => f.includes('Subject: message 3'))).toHaveLength(1);
    expect(await inbox()).toHaveLength(3);
  });
});

describe("Thunderbird's session, byte for byte", { timeout: 60_000 }, () => {
  beforeEach(emptyInbox);

  it('CAPA → STLS → CAPA → AUTH PLAIN (no initial response) → STAT/LIST/UIDL → TOP → RETR → DELE → QUIT', async () => {
    await deliver(1);
    const size = mail(1).length;
    const { connect } = await import('node:net');
    const socket = connect({ host: '127.0.0.1', port: plain.port });
    let buffer = '';
    let stream: NodeJS.ReadWriteStream & { write(s: string): boolean } = socket;
    const onData = (d: Buffer): void => {
      buffer += d.toString('latin1');
    };
    socket.on('data', onData);
    const expectLines = async (pattern: RegExp): Promise<string> => {
      for (let i = 0; i < 500 && !pattern.test(buffer); i++) await new Promise((r) => setTimeout(r, 10));
      const got = buffer;
      buffer = '';
      expect(got).toMatch(pattern);
      return got;
    };
    await expectLines(/^\+OK POP3 server ready <[^>]+>\r\n$/);
    stream.write('CAPA\r\n');
    expect(await expectLines(/\r\n\.\r\n$/)).toMatch(/\r\nSTLS\r\n/);
    stream.write('STLS\r\n');
    await expectLines(/^\+OK Begin TLS negotiation\r\n$/);
    socket.off('data', onData);
    const secure = tls.connect({ socket, servername: 'localhost', ca: caPem });
    await new Promise<void>((resolve, reject) => secure.once('secureConnect', resolve).once('error', reject));
    secure.on('data', onData);
    stream = secure;
    stream.write('CAPA\r\n');
    expect(await expectLines(/\r\n\.\r\n$/)).toMatch(/\r\nSASL PLAIN LOGIN\r\n/);
    stream.write('AUTH PLAIN\r\n');
    await expectLines(/^\+ \r\n$/);
    stream.write(`${Buffer.from('\0alice\0alice-password').toString('base64')}\r\n`);
    await expectLines(/^\+OK Logged in, maildrop has 1 messages \(\d+ octets\)\r\n$/);
    stream.write('STAT\r\n');
    expect(await expectLines(/\r\n$/)).toBe(`+OK 1 ${size}\r\n`);
    stream.write('LIST\r\n');
    expect(await expectLines(/\r\n\.\r\n$/)).toBe(`+OK 1 messages (${size} octets)\r\n1 ${size}\r\n.\r\n`);
    stream.write('UIDL\r\n');
    expect(await expectLines(/\r\n\.\r\n$/)).toMatch(/^\+OK Unique-ID listing follows\r\n1 [0-9a-f]{16}\r\n\.\r\n$/);
    stream.write('TOP 1 0\r\n');
    expect(await expectLines(/\r\n\.\r\n$/)).toBe(`+OK Top of message follows\r\n${mail(1).split('\r\n\r\n')[0]}\r\n\r\n.\r\n`);
    stream.write('RETR 1\r\n');
    expect(await expectLines(/\r\n\.\r\n$/)).toBe(`+OK ${size} octets\r\n${mail(1).replace('\r\n.line', '\r\n..line')}.\r\n`);
    stream.write('DELE 1\r\n');
    expect(await expectLines(/\r\n$/)).toBe('+OK Message 1 deleted\r\n');
    stream.write('QUIT\r\n');
    expect(await expectLines(/\r\n$/)).toBe('+OK pop.example.org POP3 server signing off (0 messages left)\r\n');
    secure.destroy();
    expect(await inbox()).toHaveLength(0);
  });
});
