import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquireDotlock } from '../src/maildir/dotlock.js';
import { createMaildirStore } from '../src/maildir/index.js';
import type { MailStore, StoreChange } from '../src/types.js';
import { systemClock } from '@pigeonpost/wire/node';

const msg = (n: number): Buffer => Buffer.from(`Subject: ${n}\r\n\r\nbody ${n}\r\n`);

describe('maildir backend behaviour', () => {
  let root: string;
  let stores: MailStore[];
  const open = (extra: Partial<Parameters<typeof createMaildirStore>[0]> = {}): MailStore => {
    const s = createMaildirStore({ root, fsync: false, pollIntervalMs: 50, ...extra });
    stores.push(s);
    return s;
  };
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pp-maildir-'));
    stores = [];
    await open().createUser('bob', { mailboxes: [] });
  });
  afterEach(async () => {
    for (const s of stores) await s.close();
    await rm(root, { recursive: true, force: true });
  });

  it('two stores in one process contend for the uidlist lock and never share a UID', async () => {
    const a = open();
    const b = open();
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).deliver({ user: 'bob', body: msg(i) })));
    const uids = results.map((r) => r.uid).sort((x, y) => x - y);
    expect(uids).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const status = await (await a.user('bob')).status('INBOX');
    expect(status.messages).toBe(20);
    expect(status.uidNext).toBe(21);
  });

  it('overrides a stale lock: dead PID, or unchanged past the stale timeout', async () => {
    const lockPath = join(root, 'bob/Maildir/dovecot-uidlist.lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid;
    await writeFile(lockPath, `${dead}:${hostname()}`);
    // Each store is closed before the test writes a lock file: a store may still be done with the
    // lock after deliver() resolved, and its release would remove the file written here.
    const first = open();
    const r = await first.deliver({ user: 'bob', body: msg(1) });
    expect(r.uid).toBe(1);
    await first.close();
    // Another host's lock: only time tells. Old enough → overridden.
    await writeFile(lockPath, '4242:other.host.example');
    const old = new Date(Date.now() - 10 * 60_000);
    await utimes(lockPath, old, old);
    await utimes(join(root, 'bob/Maildir/dovecot-uidlist'), old, old);
    const second = open();
    expect((await second.deliver({ user: 'bob', body: msg(2) })).uid).toBe(2);
    await second.close();
    // A fresh foreign lock is respected until the timeout.
    await writeFile(lockPath, '4242:other.host.example');
    await expect(open({ lockTimeoutMs: 100 }).deliver({ user: 'bob', body: msg(3) })).rejects.toMatchObject({ code: 'ERR_STORE_IN_USE' });
    await unlink(lockPath);
  });

  it.each([false, true])('a lock held in this process is waited for, not overridden (synchronous calls: %s)', async (sync) => {
    const path = join(root, 'x.lock');
    const first = await acquireDotlock(path, { clock: systemClock, staleTimeoutMs: 120_000, timeoutMs: 1000, sync });
    let second = false;
    const p = acquireDotlock(path, { clock: systemClock, staleTimeoutMs: 120_000, timeoutMs: 5000, sync }).then((l) => {
      second = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(second).toBe(false);
    await first.release();
    await (await p).release();
    expect(second).toBe(true);
  });

  it.each([false, true])('a lock overridden by another process (judged stale) is left alone by release() and never replaces its target (synchronous calls: %s)', async (sync) => {
    const path = join(root, 'y.lock');
    const target = join(root, 'y');
    await writeFile(target, 'old content');
    const ours = await acquireDotlock(path, { clock: systemClock, staleTimeoutMs: 120_000, timeoutMs: 1000, sync });
    // Another process found ours stale, removed it and took the lock (a new file: another inode).
    await unlink(path);
    await writeFile(path, '4242:other.host.example');
    await ours.release();
    expect(await readFile(path, 'utf8')).toBe('4242:other.host.example');
    const again = await acquireDotlock(path, { clock: systemClock, staleTimeoutMs: 0, timeoutMs: 1000, sync });
    await writeFile(path, 'new content');
    await unlink(path);
    await writeFile(path, '4343:third.host.example');
    await expect(again.replaceWith!(target)).rejects.toMatchObject({ code: 'ERR_STORE_IN_USE' });
    expect(await readFile(target, 'utf8')).toBe('old content');
    expect(await readFile(path, 'utf8')).toBe('4343:third.host.example');
    await unlink(path);
    // Our own lock, untouched by anyone: released (removed) as always.
    const mine = await acquireDotlock(path, { clock: systemClock, staleTimeoutMs: 120_000, timeoutMs: 1000, sync });
    await mine.release();
    await expect(readFile(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('picks up files dropped into new/ and cur/ by other programs', async () => {
    const s = open();
    await s.deliver({ user: 'bob', body: msg(1) });
    const maildir = join(root, 'bob/Maildir');
    await writeFile(join(maildir, 'new', '1700000000.M1P99.mx'), 'Subject: postfix\n\nhi\n');
    await writeFile(join(maildir, 'cur', '1700000001.M1P99.mx:2,S'), 'Subject: seen\n\nhi\n');
    const st = await (await s.user('bob')).status('INBOX');
    expect(st).toMatchObject({ messages: 3, uidNext: 4, unseen: 2 });
    expect(await readdir(join(maildir, 'new'))).toEqual([]);
    const h = await (await s.user('bob')).open('INBOX');
    expect(h.messages().map((m) => m.size)).toEqual([msg(1).length, 24, 21]);
    const uidlist = await readFile(join(maildir, 'dovecot-uidlist'), 'utf8');
    expect(uidlist).toContain('2 :1700000000.M1P99.mx\n');
    expect(uidlist).toContain('3 :1700000001.M1P99.mx\n');
  });

  it('rebuilds the index when it is deleted or corrupted: same UIDs, MODSEQs above the old ones', async () => {
    const s = open();
    for (let i = 0; i < 3; i++) await s.deliver({ user: 'bob', body: msg(i), flags: i === 1 ? ['$Work'] : [] });
    const u = await s.user('bob');
    const before = await u.open('INBOX');
    const oldHighest = before.status.highestModSeq;
    const index = join(root, 'bob/Maildir/pigeonpost-index.log');
    for (const damage of ['delete', 'corrupt'] as const) {
      if (damage === 'delete') await unlink(index);
      else {
        const text = await readFile(index);
        text[20] = text[20]! ^ 0x55;
        await writeFile(index, text);
      }
      const fresh = open();
      const h = await (await fresh.user('bob')).open('INBOX');
      expect(h.messages().map((m) => m.uid)).toEqual([1, 2, 3]);
      expect(h.messages()[1]!.flags).toEqual(['$Work']);
      expect(h.status.uidValidity).toBe(before.status.uidValidity);
      expect(h.status.highestModSeq).toBeGreaterThan(oldHighest);
      expect(Math.min(...h.messages().map((m) => m.modSeq))).toBeGreaterThan(oldHighest);
      // QRESYNC from before the rebuild: everything not present is reported vanished (RFC 7162 allows extra UIDs).
      expect(await h.vanishedSince(oldHighest)).toEqual([]);
    }
  });

  it('watch() sees changes made by another store (another process) through the index, from when it is ready', async () => {
    // Many folders the watching store has not looked at yet: its first look (every folder synced, each
    // index log's end taken) takes a while, and a delivery made before it ends would be its starting point.
    const setup = open();
    const bob = await setup.user('bob');
    for (let i = 0; i < 40; i++) await bob.create(`Folder ${i}`);
    await setup.close();
    const watcherStore = open();
    const writer = open();
    const ac = new AbortController();
    const seen: StoreChange[] = [];
    const u = await watcherStore.user('bob');
    const watch = u.watch({ signal: ac.signal });
    const done = (async () => {
      for await (const c of watch) {
        seen.push(c);
        if (c.type === 'append') break;
      }
    })();
    await watch.ready;
    await writer.deliver({ user: 'bob', body: msg(1) });
    await Promise.race([done, new Promise((r) => setTimeout(r, 3000))]);
    ac.abort();
    expect(seen.find((c) => c.type === 'append')).toMatchObject({ mailbox: 'INBOX', uids: [1] });
  });

  it('keeps every path inside the root', async () => {
    const s = open();
    for (const bad of ['../x', '.hidden', 'a/b', 'a..b', '']) await expect(s.createUser(bad)).rejects.toMatchObject({ code: 'ERR_STORE_INVALID_NAME' });
    const u = await s.user('bob');
    for (const bad of ['../x', 'a/../../b', '~root', 'a.b', 'x/cur']) await expect(u.create(bad)).rejects.toMatchObject({ code: 'ERR_STORE_INVALID_NAME' });
  });
});
