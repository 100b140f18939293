/**
 * Interop: our client against Dovecot's POP3 server (a private instance from
 * @pigeonpost/testkit on loopback): STLS with a verified certificate, SASL
 * (SCRAM-SHA-256 as the strongest shared mechanism, PLAIN, LOGIN), USER/PASS,
 * implicit TLS, every command, pipelining, and deletions applied at QUIT.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dovecotAvailable, startDovecot } from '@pigeonpost/testkit';
import type { RunningDovecot } from '@pigeonpost/testkit';
import { createDevCertificates } from '@pigeonpost/wire/node';
import { Pop3ClientError } from '../../src/errors.js';
import { Pop3Client } from '../../src/node/client.js';

const dovecot = dovecotAvailable();
if (!dovecot.available) console.warn(`skipping Dovecot POP3 interop tests: ${dovecot.reason}`);

const bodies = Array.from({ length: 12 }, (_, i) => `From: a@example.org\r\nSubject: message ${i + 1}\r\n\r\nline one\r\n.starts with a dot\r\n${'x'.repeat(i * 100)}\r\n`);

describe.skipIf(!dovecot.available)("our client against Dovecot's POP3", () => {
  let server: RunningDovecot;
  let dir: string;
  let ca: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pop3-dovecot-'));
    chmodSync(dir, 0o755);
    const certs = await createDevCertificates();
    ca = certs.caCert;
    writeFileSync(join(dir, 'cert.pem'), certs.cert, { mode: 0o644 });
    writeFileSync(join(dir, 'key.pem'), certs.key, { mode: 0o644 });
    server = await startDovecot({
      protocols: ['pop3'],
      ssl: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
      extraConfig: ['auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256'],
    });
    const maildir = server.maildir('alice');
    for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true });
    bodies.forEach((body, i) => writeFileSync(join(maildir, 'cur', `17000000${10 + i}.M${i}P1.test,S=${body.length},W=${body.length}:2,`), body));
    await server.chownForDovecot(join(server.mailRoot));
  });

  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const connect = (extra: Partial<Parameters<typeof Pop3Client.connect>[0]> = {}) =>
    Pop3Client.connect({ host: '127.0.0.1', port: server.ports.pop3, secure: 'starttls', tls: { ca, servername: 'localhost' }, auth: { username: 'alice', password: 'alice-password' }, ...extra });

  it('STLS, then SCRAM-SHA-256; CAPA, STAT, LIST, UIDL, TOP, RETR, NOOP, DELE, RSET, QUIT', async () => {
    const client = await connect();
    try {
      expect(client.secure).toBe(true);
      expect(client.authMethod).toBe('SCRAM-SHA-256');
      expect(client.pipelining).toBe(true);
      expect(await client.stat()).toEqual({ count: 12, size: bodies.reduce((n, b) => n + b.length, 0) });
      expect(await client.list()).toEqual(bodies.map((b, i) => ({ number: i + 1, size: b.length })));
      expect(await client.list(3)).toEqual({ number: 3, size: bodies[2]!.length });
      const uidls = await client.uidl();
      expect(uidls).toHaveLength(12);
      expect(new Set(uidls.map((u) => u.uidl)).size).toBe(12);
      expect(await client.uidl(2)).toEqual(uidls[1]);
      expect((await (await client.top(1, 1)).bytes()).toString()).toBe('From: a@example.org\r\nSubject: message 1\r\n\r\nline one\r\n');
      expect((await (await client.retr(5)).bytes()).toString()).toBe(bodies[4]);
      await client.noop();
      await client.dele(1);
      const gone = await client.retr(1).catch((e: unknown) => e);
      expect(Pop3ClientError.isInstance(gone) && gone.code).toBe('ERR_POP3_CLIENT_REPLY');
      await client.rset();
      expect((await client.stat()).count).toBe(12);
    } finally {
      await client.quit();
    }
  });

  it('pipelines every RETR at once, answers in order', async () => {
    const client = await connect({ auth: { username: 'alice', password: 'alice-password', method: 'PLAIN' } });
    try {
      expect(client.authMethod).toBe('PLAIN');
      const all = await Promise.all(bodies.map((_, i) => client.retr(i + 1).then((s) => s.bytes())));
      expect(all.map((b) => b.toString())).toEqual(bodies);
    } finally {
      await client.quit();
    }
  });

  it('LOGIN and USER/PASS; implicit TLS; a wrong password is a typed error', async () => {
    const login = await connect({ auth: { username: 'alice', password: 'alice-password', method: 'LOGIN' } });
    await login.quit();
    const user = await connect({ auth: { username: 'alice', password: 'alice-password', method: 'USER' } });
    expect(user.authMethod).toBe('USER');
    await user.quit();
    const implicit = await Pop3Client.connect({ host: '127.0.0.1', port: server.ports.pop3s, secure: 'implicit', tls: { ca, servername: 'localhost' }, auth: { username: 'alice', password: 'alice-password' } });
    expect(implicit.secure).toBe(true);
    await implicit.quit();
    const wrong = await connect({ auth: { username: 'alice', password: 'wrong', method: 'PLAIN' } }).catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(wrong) && [wrong.code, wrong.responseCode]).toEqual(['ERR_POP3_CLIENT_AUTH_FAILED', 'AUTH']);
  });

  it('DELE then QUIT removes the messages (Dovecot UPDATE state)', async () => {
    const client = await connect();
    await client.dele(12);
    await client.dele(11);
    await client.quit();
    const again = await connect();
    expect((await again.stat()).count).toBe(10);
    await again.quit();
  });
});
