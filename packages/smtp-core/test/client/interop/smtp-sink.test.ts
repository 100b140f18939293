/**
 * Interop with Postfix's smtp-sink (Debian package `postfix`): a C SMTP/LMTP
 * receiver. Skipped with the reason outside CI when it is missing; under
 * CI=true `findPeer` throws instead. A real Postfix smtpd with STARTTLS and
 * SASL is not covered yet.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Secret } from '@pigeonpost/wire';
import { findPeer } from '@pigeonpost/wire/testing';
import type { SmtpClientError } from '../../../src/errors.js';
import { SmtpClient } from '../../../src/node/client.js';

// smtp-sink has no version flag: with no arguments it prints its usage and exits, which is enough to know it runs.
const peer = findPeer('smtp-sink', { versionArgs: [], debianPackage: 'postfix' });
if (!peer.available) console.warn(`skipping smtp-sink interop tests: ${peer.reason}`);

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const running: { child: ChildProcess; dir: string | undefined }[] = [];
afterEach(async () => {
  for (const { child, dir } of running.splice(0)) {
    if (child.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
});

/** Start smtp-sink on a free port with extra flags; resolves once it accepts connections. */
async function startSink(flags: string[] = [], dump = false): Promise<{ port: number; dir: string | undefined }> {
  const path = peer.available ? peer.path : 'smtp-sink';
  const dir = dump ? await mkdtemp(join(tmpdir(), 'smtp-sink-')) : undefined;
  const port = await freePort();
  const args = ['-u', 'nobody', ...(dir === undefined ? [] : ['-d', `${dir}/%H%M%S.`]), ...flags, `127.0.0.1:${port}`, '100'];
  if (dir !== undefined) {
    // smtp-sink writes the dump files as the unprivileged user.
    const { chmod } = await import('node:fs/promises');
    await chmod(dir, 0o777);
  }
  const child = spawn(path, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.push({ child, dir });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) return { port, dir };
    if (child.exitCode !== null) throw new Error(`smtp-sink exited with ${child.exitCode}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('smtp-sink did not start');
}

describe.skipIf(!peer.available)('SmtpClient with Postfix smtp-sink', () => {
  it('pipelined message with DSN; the dump holds the unstuffed body', async () => {
    const { port, dir } = await startSink([], true);
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', name: 'client.test' });
    expect(client.capabilities?.dsn).toBe(true);
    const result = await client.send(
      { from: 'a@example.org', to: ['b@example.net', 'c@example.net'], dsn: { ret: 'HDRS', notify: ['FAILURE'] } },
      'Subject: sink\r\n\r\n.dotted line\nlast',
    );
    expect(result.pipelined).toBe(true);
    expect(result.accepted).toEqual(['b@example.net', 'c@example.net']);
    expect(result.reply.code).toBe(250);
    await client.quit();
    const files = await readdir(dir!);
    expect(files.length).toBe(1);
    const dump = await readFile(join(dir!, files[0]!), 'latin1');
    // The dump stores lines with LF endings; the period at the start is the body's own, unstuffed.
    expect(dump).toMatch(/\n\.dotted line\r?\nlast\r?\n/);
    expect(dump).toContain('X-Rcpt-Args: <b@example.net> NOTIFY=FAILURE ORCPT=rfc822;b@example.net');
  });

  it('without PIPELINING (-p): one command at a time; AUTH PLAIN when explicitly allowed in plaintext', async () => {
    const { port } = await startSink(['-p']);
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', auth: { username: 'u', password: new Secret('p'), allowPlaintextAuth: true } });
    expect(client.capabilities?.pipelining).toBe(false);
    expect(client.authenticated).toBe('PLAIN');
    const result = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x');
    expect(result.pipelined).toBe(false);
  });

  it('connection reuse for 50 messages', async () => {
    const { port } = await startSink();
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none' });
    for (let i = 0; i < 50; i++) await client.send({ from: 'a@example.org', to: [`r${i}@example.net`] }, `m${i}`);
  });

  it('soft-rejected RCPT (-r RCPT): typed 4xx error, session still usable', async () => {
    const { port } = await startSink(['-r', 'RCPT']);
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none' });
    const err = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x').catch((e: unknown) => e);
    expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED');
    expect((err as SmtpClientError).replyCode).toBe(450);
    expect((err as SmtpClientError).enhancedCode).toBe('4.3.0');
    await client.noop();
  });

  it('LMTP (-L): per-recipient replies after the data', async () => {
    const { port } = await startSink(['-L']);
    await using client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', lmtp: true });
    const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'c@example.net'] }, 'x');
    expect(result.accepted).toEqual(['b@example.net', 'c@example.net']);
    expect(result.recipients.every((r) => r.dataReply?.code === 250)).toBe(true);
  });

  it("secure: 'starttls' refuses smtp-sink, which has no STARTTLS", async () => {
    const { port } = await startSink();
    const err = await SmtpClient.connect({ host: '127.0.0.1', port }).catch((e: unknown) => e);
    expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_STARTTLS_UNAVAILABLE');
  });
});
