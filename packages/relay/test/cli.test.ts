// pigeonpost-queue: list/show read a spool beside a running relay; hold/release/delete/flush go to the
// running relay as control requests, or straight to the spool when none runs. Run as a real process too.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Relay, formatQueue, runQueueCommand, type CliIo, type Deliverer, type QueueEntry } from '../src/index.js';

const bin = fileURLToPath(new URL('../bin/pigeonpost-queue.js', import.meta.url));
const run = promisify(execFile);

const deferring: Deliverer = {
  destinationOf: (d) => d,
  deliver: (request) => Promise.resolve(request.recipients.map((r) => ({ address: r.address, status: 'deferred' as const, reply: { code: 451, enhanced: '4.3.0', text: 'try again later' }, remoteMta: 'mx.y.test' }))),
  close: () => Promise.resolve(),
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pigeonpost-queue-cli-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function io(): CliIo & { out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { stdout: { write: (t: string) => (out += t) }, stderr: { write: (t: string) => (err += t) }, env: {}, out: () => out, err: () => err };
}

describe('pigeonpost-queue', () => {
  it('lists and shows a queue while the relay runs, and sends it control requests', async () => {
    const relay = await Relay.open({ spoolDir: dir, deliverer: deferring, hostname: 'relay.test', fsync: false, controlPollMs: 20 });
    try {
      const { id } = await relay.enqueue({ from: 'alice@b.test', to: ['x@y.test', 'z@y.test'] }, 'Subject: hi\r\n\r\nbody\r\n');
      await relay.idle();

      const list = io();
      expect(await runQueueCommand(['--spool', dir, 'list'], list)).toBe(0);
      expect(list.out()).toContain(id);
      expect(list.out()).toContain('alice@b.test');
      expect(list.out()).toContain('(host mx.y.test said: 451 4.3.0 try again later)');
      expect(list.out()).toContain('-- 1 Kbytes in 1 Request.');

      const show = io();
      expect(await runQueueCommand(['--spool', dir, '--json', 'show', id], show)).toBe(0);
      const entry = JSON.parse(show.out()) as QueueEntry;
      expect(entry.recipients.map((r) => [r.address, r.status, r.attempts])).toEqual([
        ['x@y.test', 'deferred', 1],
        ['z@y.test', 'deferred', 1],
      ]);

      const hold = io();
      expect(await runQueueCommand(['--spool', dir, 'hold', id], hold)).toBe(0);
      expect(hold.out()).toContain(`requested from the relay (pid ${process.pid})`);
      await expect.poll(() => relay.show(id)?.held, { timeout: 2000 }).toBe(true);

      expect(await runQueueCommand(['--spool', dir, 'release', 'ALL'], io())).toBe(0);
      await expect.poll(() => relay.show(id)?.held, { timeout: 2000 }).toBe(false);

      expect(await runQueueCommand(['--spool', dir, 'delete', id], io())).toBe(0);
      await expect.poll(() => relay.list().length, { timeout: 2000 }).toBe(0);
    } finally {
      await relay.close();
    }
  });

  it('changes the spool directly when no relay runs, from a real process', async () => {
    const relay = await Relay.open({ spoolDir: dir, deliverer: deferring, hostname: 'relay.test', fsync: false });
    const { id } = await relay.enqueue({ from: 'alice@b.test', to: ['x@y.test'] }, 'Subject: hi\r\n\r\nbody\r\n');
    await relay.idle();
    await relay.close();

    const held = await run(process.execPath, [bin, '--spool', dir, 'hold', id]);
    expect(held.stdout).toContain('hold: 1 message(s)');
    const listed = await run(process.execPath, [bin, 'list'], { env: { ...process.env, PIGEONPOST_SPOOL: dir } });
    expect(listed.stdout).toContain(`${id}!`);
    await run(process.execPath, [bin, '--spool', dir, 'delete', 'ALL']);
    expect((await run(process.execPath, [bin, '--spool', dir, 'list'])).stdout).toBe('Mail queue is empty\n');
  });

  it('says how to use it, and fails cleanly', async () => {
    const none = io();
    expect(await runQueueCommand(['list'], none)).toBe(2);
    expect(none.err()).toContain('usage: pigeonpost-queue');
    const bad = io();
    expect(await runQueueCommand(['--spool', dir, 'frobnicate'], bad)).toBe(2);
    expect(bad.err()).toContain('unknown command frobnicate');
    const missing = io();
    expect(await runQueueCommand(['--spool', dir, 'show', 'NOPE'], missing)).toBe(1);
    expect(formatQueue([])).toBe('Mail queue is empty\n');
  });
});
