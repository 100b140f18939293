import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCertificates } from '@pigeonpost/wire/node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { groupAlive } from '../src/cleanup.js';
import { connectSmtp, postfixAvailable, startPostfix } from '../src/index.js';
import type { RunningPostfix } from '../src/index.js';

const peer = postfixAvailable();
if (!peer.available) console.warn(`skipping Postfix interop tests: ${peer.reason}`);

/** A plaintext SMTP exchange: the greeting, then each command's reply (multi-line replies whole). */
async function smtp(port: number, commands: readonly string[]): Promise<string[]> {
  await using client = await connectSmtp({ port });
  const replies = [client.greeting.raw];
  for (const command of commands) replies.push((await client.command(command)).raw);
  return replies;
}

describe.skipIf(!peer.available)('Postfix via the test kit', () => {
  let dir: string;
  let postfix: RunningPostfix | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pp-postfix-kit-'));
    const certs = await createDevCertificates({ hostnames: ['postfix.test'] });
    writeFileSync(join(dir, 'cert.pem'), certs.cert);
    writeFileSync(join(dir, 'key.pem'), certs.key);
    postfix = await startPostfix({
      tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') },
      sasl: { users: [{ name: 'carol', password: 'carol-password' }] },
      submission: true,
      mydestination: ['local.test'],
    });
  }, 60_000);
  afterAll(async () => {
    await postfix?.stop();
    rmSync(dir, { recursive: true, force: true });
    // The SASL Dovecot goes with it.
    if (postfix?.dovecot !== undefined) expect(groupAlive(postfix.dovecot.pid)).toBe(false);
  });

  it('listens on 127.0.0.1, offers STARTTLS, and AUTH only on the submission port after TLS', async () => {
    const pf = postfix!;
    expect(pf.host).toBe('127.0.0.1');
    expect(pf.ports.smtp).toBeGreaterThan(1024);
    expect(pf.ports.submission).toBeGreaterThan(1024);
    const [greeting, ehlo] = await smtp(pf.ports.smtp, ['EHLO client.test', 'QUIT']);
    expect(greeting).toBe('220 postfix.test ESMTP\r\n');
    expect(ehlo).toMatch(/^250-postfix\.test\r\n/);
    expect(ehlo).toMatch(/250-STARTTLS\r\n/);
    expect(ehlo).toMatch(/250.CHUNKING\r\n/);
    expect(ehlo).not.toMatch(/AUTH/); // smtpd_tls_auth_only
    expect(pf.users).toEqual([{ name: 'carol', password: 'carol-password' }]);
    expect(pf.dovecot?.pid).toBeGreaterThan(0);
  });

  it('accepts mail over SMTP and discards it after queueing (default_transport = discard)', async () => {
    const pf = postfix!;
    const replies = await smtp(pf.ports.smtp, [
      'EHLO client.test',
      'MAIL FROM:<a@client.test>',
      'RCPT TO:<someone@elsewhere.test>',
      'RCPT TO:<postmaster@local.test>',
      'DATA',
      'Subject: discard me\r\n\r\nbody\r\n.',
      'QUIT',
    ]);
    expect(replies.slice(2, 5)).toEqual(['250 2.1.0 Ok\r\n', '250 2.1.5 Ok\r\n', '250 2.1.5 Ok\r\n']);
    const queued = /^250 2\.0\.0 Ok: queued as (\w+)\r\n$/.exec(replies[6] ?? '');
    expect(queued, replies.join('')).not.toBeNull();
    const id = queued![1]!;
    await pf.waitForLog(new RegExp(`${id}: to=<someone@elsewhere\\.test>, relay=none, [^\\n]*status=sent \\(elsewhere\\.test\\)`));
    await pf.waitForLog(new RegExp(`${id}: to=<postmaster@local\\.test>, relay=none, [^\\n]*status=sent \\(local\\.test\\)`));
    await pf.waitForLog(new RegExp(`${id}: removed`));
  });

  it('takes mail from sendmail -C (pickup)', async () => {
    const pf = postfix!;
    await pf.sendmail('root@postfix.test', ['x@elsewhere.test'], 'Subject: from sendmail\n\nbody\n');
    await pf.waitForLog(/to=<x@elsewhere\.test>, relay=none, [^\n]*status=sent/);
    expect(pf.logs()).toMatch(/postfix\/pickup\[\d+\]: \w+: uid=0 from=<root@postfix\.test>/);
  });

  it('waitForLog rejects with the log on timeout', async () => {
    await expect(postfix!.waitForLog(/never logged/, 100)).rejects.toThrow(/did not match \/never logged\/ within 100 ms; log:\n.*daemon started/s);
  });

  it('stop() ends every process of the instance and Dovecot, removes the folder, and is idempotent', async () => {
    const pf = await startPostfix({ mainCf: 'smtpd_banner = $myhostname ESMTP kit-test' });
    const [greeting] = await smtp(pf.ports.smtp, ['QUIT']);
    expect(greeting).toBe('220 postfix.test ESMTP kit-test\r\n');
    expect(groupAlive(pf.pid)).toBe(true);
    expect(pf.dovecot).toBeUndefined();
    await Promise.all([pf.stop(), pf.stop()]);
    expect(groupAlive(pf.pid)).toBe(false);
    expect(existsSync(pf.dir)).toBe(false);
    await pf[Symbol.asyncDispose]();
  });
});

describe('postfixAvailable', () => {
  it('reports a missing binary outside CI, throws under CI=true', () => {
    const missing = postfixAvailable({ binary: '/nonexistent/postfix', env: {} });
    expect(missing.available).toBe(false);
    expect(missing.available ? '' : missing.reason).toMatch(/apt-get install postfix/);
    expect(() => postfixAvailable({ binary: '/nonexistent/postfix', env: { CI: 'true' } })).toThrow(/CI=true/);
  });
});
