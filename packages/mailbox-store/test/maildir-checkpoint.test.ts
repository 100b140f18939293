// The binary checkpoint of the index (pigeonpost-index.bin): used when it stands for the index log as it
// is, ignored in every other case (missing, truncated, damaged, another version, another or rewritten log),
// and never a source of wrong data. Whether it was used shows through INTERNALDATE: the checkpoint keeps
// the dates it learnt, so a file whose mtime changed afterwards keeps its old date only when it was used.
import { mkdir, mkdtemp, readFile, rename, rm, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { systemClock } from '@pigeonpost/wire/node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CHECKPOINT_VERSION, decodeCheckpoint, encodeCheckpoint, peekCheckpointScan } from '../src/maildir/checkpoint.js';
import { splitInfo } from '../src/maildir/filename.js';
import { createMaildirStore } from '../src/maildir/index.js';
import { decodeRecords, encodeRecord, IndexState } from '../src/maildir/index-log.js';
import { parseUidlist } from '../src/maildir/uidlist.js';
import { computeStructure } from '../src/structure.js';

const N = 12;
const DAY = 86_400_000;
const flagsOfInfo = (info: string): readonly string[] => splitInfo(info).flags;

let root: string;
let maildir: string;
const files: string[] = [];

function crlfSize(body: string): number {
  return Buffer.byteLength(body) + (body.match(/(?<!\r)\n/g)?.length ?? 0);
}

const body = (i: number): string => `Subject: message ${i}\nFrom: a@example.org\n\nbody ${i}\n`;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'pp-checkpoint-'));
  maildir = join(root, 'tim', 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) await mkdir(join(maildir, d), { recursive: true });
  files.length = 0;
  const names: string[] = [];
  for (let i = 0; i < N; i++) {
    const base = `${1700000000 + i}.M${i}P1.host,S=${Buffer.byteLength(body(i))},W=${crlfSize(body(i))}`;
    names.push(base);
    const path = join(maildir, 'cur', `${base}:2,${i % 3 === 0 ? 'S' : ''}`);
    files.push(path);
    await writeFile(path, body(i));
    await utimes(path, new Date(Date.UTC(2024, 0, 1) + i * DAY), new Date(Date.UTC(2024, 0, 1) + i * DAY));
  }
  await writeFile(join(maildir, 'dovecot-uidlist'), `3 V1700000000 N${N + 1} G0123456789abcdef0123456789abcdef\n${names.map((n, i) => `${i + 1} :${n}\n`).join('')}`);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Seen {
  readonly messages: readonly (readonly [number, number, readonly string[], number])[];
  readonly dates: readonly number[];
  readonly highestModSeq: number;
}

/** Open INBOX in a new store: every message (UID, MODSEQ, flags, size), their INTERNALDATEs, HIGHESTMODSEQ; the store closes (writing a checkpoint). */
async function look(change?: (h: Awaited<ReturnType<Awaited<ReturnType<ReturnType<typeof createMaildirStore>['user']>>['open']>>) => Promise<void>): Promise<Seen> {
  const store = createMaildirStore({ root, fsync: false });
  try {
    const h = await (await store.user('tim')).open('INBOX');
    if (change) await change(h);
    const messages = h.messages().map((m) => [m.uid, m.modSeq, [...m.flags].sort(), m.size] as const);
    const dates = [...(await h.internalDates(h.messages().map((m) => m.uid)))];
    const seen = { messages, dates, highestModSeq: h.status.highestModSeq };
    await h.close();
    return seen;
  } finally {
    await store.close();
  }
}

const checkpoint = (): string => join(maildir, 'pigeonpost-index.bin');
const log = (): string => join(maildir, 'pigeonpost-index.log');
const mtimes = (): number[] => Array.from({ length: N }, (_, i) => Date.UTC(2024, 0, 1) + i * DAY);

/** Give every file a new mtime: a checkpoint that is used still says the old dates. */
async function touchAll(): Promise<number[]> {
  const later = Array.from({ length: N }, (_, i) => Date.UTC(2025, 5, 1) + i * DAY);
  for (const [i, path] of files.entries()) {
    const current = (await readdirName(path)) ?? path;
    await utimes(current, new Date(later[i]!), new Date(later[i]!));
  }
  return later;
}

/** The file of a message now (its flags may have renamed it). */
async function readdirName(path: string): Promise<string | undefined> {
  const { readdir } = await import('node:fs/promises');
  const base = path.slice(path.lastIndexOf('/') + 1).split(':')[0]!;
  const name = (await readdir(join(maildir, 'cur'))).find((n) => n.startsWith(base));
  return name === undefined ? undefined : join(maildir, 'cur', name);
}

describe('Maildir index checkpoint', () => {
  it('is written when the store closes and used by the next open, with the log written after it applied on top', async () => {
    const first = await look();
    expect(first.dates).toEqual(mtimes());
    expect((await stat(checkpoint())).size).toBeGreaterThan(0);
    // The folder was indexed from its files: the log holds no add record, the checkpoint holds them.
    expect(decodeRecords(await readFile(log())).records.filter((r) => r.t === 'A')).toEqual([]);
    const kept = await readFile(checkpoint());
    // A change by another store; its checkpoint is then taken back to the older one: the log has more than it.
    const changed = await look((h) => h.setFlags([2, 3], { mode: 'add', flags: ['\\Flagged', '$Work'] }).then(() => undefined));
    await writeFile(checkpoint(), kept);
    await touchAll();
    const again = await look();
    expect(again.messages).toEqual(changed.messages);
    expect(again.highestModSeq).toBe(changed.highestModSeq);
    expect(again.messages.find((m) => m[0] === 2)?.[2]).toEqual(['$Work', '\\Flagged']);
    // The old dates: they came from the checkpoint, not from the files.
    expect(again.dates).toEqual(mtimes());
  });

  it('is read for two folders opened at once, each its own (the thread\'s scratch buffer for one, a buffer of its own for the other)', async () => {
    // A second folder with the same names and other dates.
    const other = join(maildir, '.Other');
    for (const d of ['cur', 'new', 'tmp']) await mkdir(join(other, d), { recursive: true });
    await writeFile(join(other, 'maildirfolder'), '');
    const otherDates = Array.from({ length: N }, (_, i) => Date.UTC(2023, 2, 1) + i * DAY);
    const otherFiles: string[] = [];
    for (const [i, path] of files.entries()) {
      const copy = join(other, 'cur', path.slice(path.lastIndexOf('/') + 1));
      await writeFile(copy, await readFile(path));
      await utimes(copy, new Date(otherDates[i]!), new Date(otherDates[i]!));
      otherFiles.push(copy);
    }
    await writeFile(join(other, 'dovecot-uidlist'), await readFile(join(maildir, 'dovecot-uidlist')));
    const datesOf = async (store: ReturnType<typeof createMaildirStore>): Promise<[number[], number[]]> => {
      const u = await store.user('tim');
      const [inbox, second] = await Promise.all([u.open('INBOX'), u.open('Other')]);
      const out: [number[], number[]] = [[...(await inbox.internalDates(inbox.messages().map((m) => m.uid)))], [...(await second.internalDates(second.messages().map((m) => m.uid)))]];
      await inbox.close();
      await second.close();
      return out;
    };
    const first = createMaildirStore({ root, fsync: false });
    expect(await datesOf(first)).toEqual([mtimes(), otherDates]);
    await first.close();
    for (const readMode of ['worker', 'sync-batched'] as const) {
      // Every file touched: the dates can only come from each folder's checkpoint.
      await touchAll();
      for (const path of otherFiles) await utimes(path, new Date(Date.UTC(2025, 0, 1)), new Date(Date.UTC(2025, 0, 1)));
      const store = createMaildirStore({ root, fsync: false, readMode });
      try {
        expect(await datesOf(store)).toEqual([mtimes(), otherDates]);
      } finally {
        await store.close();
      }
    }
  });

  it('lets a new store skip listing cur/ and new/ while they keep the mtimes of the scan it was made from', async () => {
    // Directories last changed long ago: their mtimes can be trusted.
    const old = new Date(Date.UTC(2024, 0, 1));
    for (const d of ['cur', 'new']) await utimes(join(maildir, d), old, old);
    await look();
    // A file slipped into cur/ behind the directory's back (its mtime put back): not looked for.
    const extra = join(maildir, 'cur', '1800000000.M1P1.host,S=3,W=3:2,');
    await writeFile(extra, 'x\n\n');
    await utimes(join(maildir, 'cur'), old, old);
    expect((await look()).messages.length).toBe(N);
    // Once the directory changes, the next open lists it and finds the file.
    await utimes(join(maildir, 'cur'), new Date(), new Date());
    const seen = await look();
    expect(seen.messages.length).toBe(N + 1);
    expect(seen.messages[N]![0]).toBe(N + 1);
  });

  it('records the directories as its own STORE left them, checked then: later syncs skip cur/ for a second (Dovecot\'s MAILDIR_SYNC_SECS), the first one after lists it once', async () => {
    const dirs = async (): Promise<{ cur: number; new: number }> => ({ cur: (await stat(join(maildir, 'cur'))).mtimeMs, new: (await stat(join(maildir, 'new'))).mtimeMs });
    // Fresh directories (changed just now): a scan of them is not trusted, nor a STORE after it.
    await look((h) => h.setFlags([1], { mode: 'add', flags: ['\\Answered'] }).then(() => undefined));
    expect((await peekCheckpointScan(checkpoint()))?.trusted).toBe(false);
    // Old directories: the scan is trusted. Its STORE (renames only) leaves recent mtimes: recorded, not trusted.
    const old = new Date(Date.UTC(2024, 0, 1));
    for (const d of ['cur', 'new']) await utimes(join(maildir, d), old, old);
    const flagged = await look((h) => h.setFlags([1, 2, 3], { mode: 'add', flags: ['\\Flagged'] }).then(() => undefined));
    const after = await dirs();
    expect(after.cur).toBeGreaterThan(old.getTime());
    const recorded = (await peekCheckpointScan(checkpoint()))!;
    expect(recorded).toEqual({ ...after, trusted: false, at: expect.any(Number) as number });
    // Checked when the renames were done: after the last one (the kernel's coarse clock may lag a tick).
    expect(recorded.at).toBeGreaterThanOrEqual(after.cur - 20);
    expect(recorded.at).toBeLessThanOrEqual(Date.now());
    // Listings of cur/ by the stores below (fs/promises readdir; the ESM bindings follow the CJS module's).
    const fsp = createRequire(import.meta.url)('node:fs/promises') as { readdir: (...args: unknown[]) => Promise<unknown> };
    const readdirs = vi.spyOn(fsp, 'readdir');
    syncBuiltinESMExports();
    const curListings = (): number => readdirs.mock.calls.filter((c) => String(c[0]) === join(maildir, 'cur')).length;
    /** Open and close INBOX in a store whose clock says `now`; how many times it listed cur/. */
    const openAt = async (now: number): Promise<number> => {
      readdirs.mockClear();
      const store = createMaildirStore({ root, fsync: false, clock: { ...systemClock, now: () => now } });
      try {
        const h = await (await store.user('tim')).open('INBOX');
        expect(h.messages().length).toBe(N);
        await h.close();
      } finally {
        await store.close();
      }
      return curListings();
    };
    try {
      // While the state is under a second old (a burst of changes): not listed, as Dovecot leaves a dirty
      // cur/ until its check time is MAILDIR_SYNC_SECS in the past — past the mtimes' 250 ms window too.
      expect(await openAt(recorded.at + 10)).toBe(0);
      expect(await openAt(recorded.at + 600)).toBe(0);
      expect(await peekCheckpointScan(checkpoint())).toEqual(recorded);
      // Once it is (Dovecot's delayed refresh): listed once, which a change another program made in the
      // same mtime tick cannot hide from; then trusted (checked then), and not listed again.
      expect(await openAt(recorded.at + 1100)).toBe(1);
      expect(await peekCheckpointScan(checkpoint())).toEqual({ ...after, trusted: true, at: recorded.at + 1100 });
      expect(await openAt(recorded.at + 6000)).toBe(0);
    } finally {
      readdirs.mockRestore();
      syncBuiltinESMExports();
    }
    // The next store takes the scan from the checkpoint and sees the same.
    const again = await look();
    expect(again.messages).toEqual(flagged.messages);
    expect(again.messages.filter((m) => m[2].includes('\\Flagged')).map((m) => m[0])).toEqual([1, 2, 3]);
    // Another program renames a file afterwards (cur/ gets a new mtime): seen at the next open.
    const name = (await readdirName(files[4]!))!;
    await rename(name, name.replace(/:2,.*$/, ':2,T'));
    const seen = await look();
    expect(seen.messages.find((m) => m[0] === 5)?.[2]).toEqual(['\\Deleted']);
    expect(seen.highestModSeq).toBeGreaterThan(again.highestModSeq);
  });

  it('lists a recent cur/ once in the background when it is no longer recent and the folder is quiet, so the next change lists nothing', async () => {
    const old = new Date(Date.UTC(2024, 0, 1));
    for (const d of ['cur', 'new']) await utimes(join(maildir, d), old, old);
    const fsp = createRequire(import.meta.url)('node:fs/promises') as { readdir: (...args: unknown[]) => Promise<unknown> };
    const readdirs = vi.spyOn(fsp, 'readdir');
    syncBuiltinESMExports();
    const curListings = (): number => readdirs.mock.calls.filter((c) => String(c[0]) === join(maildir, 'cur')).length;
    const store = createMaildirStore({ root, fsync: false });
    try {
      const h = await (await store.user('tim')).open('INBOX');
      await h.setFlags([1], { mode: 'add', flags: ['\\Flagged'] });
      readdirs.mockClear();
      // cur/ is recent now: listed once by the store itself once the state is a second old and the
      // folder is quiet — not while it is being read (here for 1.4 s, past that second).
      const busyUntil = Date.now() + 1400;
      // The longest pause between two reads: a machine that stalls this test for the quiet time (200 ms)
      // makes the folder quiet, and then the listing may come early — only then.
      let last = Date.now();
      let longestPause = 0;
      for (let uid = 1; Date.now() < busyUntil; uid = (uid % N) + 1) {
        await h.bodyStructure(uid);
        await new Promise((r) => setTimeout(r, 5));
        longestPause = Math.max(longestPause, Date.now() - last);
        last = Date.now();
      }
      expect(curListings() === 0 || longestPause >= 190, `listed ${curListings()} times, longest pause ${longestPause} ms`).toBe(true);
      const deadline = Date.now() + 5000;
      while (curListings() === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      expect(curListings()).toBe(1);
      // Trusted from then on: the next change does not list it.
      await h.setFlags([2], { mode: 'add', flags: ['\\Flagged'] });
      expect(curListings()).toBe(1);
      expect(h.messages().filter((m) => m.flags.includes('\\Flagged')).map((m) => m.uid)).toEqual([1, 2]);
      await h.close();
      await store.close();
      // A store that opens the folder while the state is still recent (from the checkpoint, not
      // listed now) lists it in the background too, once it is due. Its clock starts at cur/'s
      // mtime (however long this took), then runs.
      readdirs.mockClear();
      const lag = Date.now() - (await stat(join(maildir, 'cur'))).mtimeMs;
      const next = createMaildirStore({ root, fsync: false, clock: { ...systemClock, now: () => Date.now() - lag } });
      try {
        const h2 = await (await next.user('tim')).open('INBOX');
        expect(curListings()).toBe(0);
        const until = Date.now() + 5000;
        while (curListings() === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 25));
        expect(curListings()).toBe(1);
        await h2.close();
      } finally {
        await next.close();
      }
    } finally {
      await store.close();
      readdirs.mockRestore();
      syncBuiltinESMExports();
    }
  });

  it('lists a recent new/ at every sync: a message delivered there within the same mtime tick is seen at once', async () => {
    // Both directories changed "just now" (whole milliseconds, so they can be put back exactly); the store's clock stands still 10 ms later.
    const t = Math.floor(Date.now() / 1000) * 1000 - 5000 + 123;
    const at = new Date(t);
    for (const d of ['cur', 'new']) await utimes(join(maildir, d), at, at);
    const store = createMaildirStore({ root, fsync: false, clock: { ...systemClock, now: () => t + 10 } });
    try {
      const h = await (await store.user('tim')).open('INBOX');
      expect(h.messages().length).toBe(N);
      // Another program delivers into new/ within the same tick: new/ keeps its mtime.
      await writeFile(join(maildir, 'new', '1800000000.M9P9.mx'), 'Subject: late\n\nhi\n');
      for (const d of ['cur', 'new']) await utimes(join(maildir, d), at, at);
      const changes = await h.sync();
      expect(changes.added.map((m) => m.uid)).toEqual([N + 1]);
      await h.close();
    } finally {
      await store.close();
    }
  });

  it('reads only the ends of a big dovecot-uidlist it knows, and appends to it correctly after', async () => {
    // Enough messages for a uidlist of more than 16 KiB.
    const more = 600;
    const names: string[] = [];
    for (let i = 0; i < more; i++) {
      const base = `${1710000000 + i}.M${i}P2.otherhost,S=${Buffer.byteLength(body(i))},W=${crlfSize(body(i))}`;
      names.push(base);
      await writeFile(join(maildir, 'cur', `${base}:2,`), body(i));
    }
    const list = await readFile(join(maildir, 'dovecot-uidlist'), 'utf8');
    await writeFile(join(maildir, 'dovecot-uidlist'), list.replace(/ N\d+ /, ` N${N + more + 1} `) + names.map((n, i) => `${N + i + 1} :${n}\n`).join(''));
    expect((await stat(join(maildir, 'dovecot-uidlist'))).size).toBeGreaterThan(16384);
    const first = await look();
    expect(first.messages.length).toBe(N + more);
    // A new store: the uidlist is the one the checkpoint was made with.
    const store = createMaildirStore({ root, fsync: false });
    const delivered = await store.deliver({ user: 'tim', body: Buffer.from('Subject: new\r\n\r\nx\r\n') });
    expect(delivered.uid).toBe(N + more + 1);
    const h = await (await store.user('tim')).open('INBOX');
    expect(h.status.uidNext).toBe(N + more + 2);
    await h.close();
    await store.close();
    const parsed = parseUidlist(await readFile(join(maildir, 'dovecot-uidlist'), 'utf8'));
    expect(parsed.records.map((r) => r.uid)).toEqual(Array.from({ length: N + more + 1 }, (_, i) => i + 1));
    expect(parsed.uidValidity).toBe(1700000000);
    const again = await look();
    expect(again.messages.map((m) => m[0])).toEqual(Array.from({ length: N + more + 1 }, (_, i) => i + 1));
  });

  it('keeps structures logged after it, and finds them by their place in the log', async () => {
    const store = createMaildirStore({ root, fsync: false });
    const h = await (await store.user('tim')).open('INBOX');
    for (let uid = 1; uid <= N; uid++) await h.structure(uid);
    await h.close();
    await store.close();
    const logged = decodeRecords(await readFile(log())).records.filter((r) => r.t === 'S').length;
    expect(logged).toBe(N);
    const other = createMaildirStore({ root, fsync: false });
    const h2 = await (await other.user('tim')).open('INBOX');
    for (let uid = 1; uid <= N; uid++) expect(await h2.structure(uid)).toEqual(await computeStructure(Buffer.from(body(uid - 1))));
    await h2.close();
    await other.close();
    // Nothing new to log: no more structure records.
    expect(decodeRecords(await readFile(log())).records.filter((r) => r.t === 'S').length).toBe(logged);
  });

  const ignoredWhen: [string, () => Promise<void>][] = [
    ['missing', () => unlink(checkpoint())],
    ['truncated', async () => truncate(checkpoint(), Math.floor((await stat(checkpoint())).size / 2))],
    [
      'damaged (a flipped byte, caught by its CRC-32)',
      async () => {
        const data = await readFile(checkpoint());
        const at = 200 + Math.floor((data.length - 200) / 2);
        data[at] = data[at]! ^ 0x40;
        await writeFile(checkpoint(), data);
      },
    ],
    [
      'of another format version',
      async () => {
        const data = await readFile(checkpoint());
        data.writeUInt32LE(CHECKPOINT_VERSION + 1, 4);
        await writeFile(checkpoint(), data);
      },
    ],
    [
      'written by an older version (version 0)',
      async () => {
        const data = await readFile(checkpoint());
        data.writeUInt32LE(0, 4);
        await writeFile(checkpoint(), data);
      },
    ],
    [
      'of another log (the log was replaced, by a copy: another inode)',
      async () => {
        // Written beside it and renamed over, so the new file cannot reuse the old inode number.
        await writeFile(`${log()}.new`, await readFile(log()));
        await rename(`${log()}.new`, log());
      },
    ],
    [
      'longer than the log (the log lost its end)',
      async () => {
        const size = (await stat(log())).size;
        const data = await readFile(log());
        // The checkpoint stands for the whole log: cut the last record off.
        await truncate(log(), data.lastIndexOf(0x0a, size - 2) + 1);
      },
    ],
    [
      'for other log bytes (the same file and length, another valid last record)',
      async () => {
        const data = await readFile(log());
        const start = data.lastIndexOf(0x0a, data.length - 2) + 1;
        const last = decodeRecords(data.subarray(start)).records[0]!;
        if (last.t !== 'F') throw new Error(`expected a flags record last, not ${last.t}`);
        expect(last.w).toMatch(/^[0-9a-f]{12}$/);
        const other = encodeRecord({ ...last, w: last.w === 'f'.repeat(12) ? 'e'.repeat(12) : 'f'.repeat(12) });
        expect(other.length).toBe(data.length - start);
        await writeFile(log(), Buffer.concat([data.subarray(0, start), other]));
      },
    ],
  ];
  for (const [name, damage] of ignoredWhen) {
    it(`is ignored when ${name}, and the index comes from the log and the files`, async () => {
      const first = await look((h) => h.setFlags([1, 5], { mode: 'add', flags: ['\\Answered'] }).then(() => undefined));
      await look(); // the checkpoint now stands for the log with the flags record
      await damage();
      const later = await touchAll();
      const again = await look();
      // UIDs, flags and sizes as before; the dates are the files' (the checkpoint was not used).
      expect(again.messages.map(([uid, , flags, size]) => [uid, flags, size])).toEqual(first.messages.map(([uid, , flags, size]) => [uid, flags, size]));
      expect(again.dates).toEqual(later);
      // MODSEQs never go back.
      expect(again.highestModSeq).toBeGreaterThanOrEqual(first.highestModSeq);
    });
  }

  it('encodes and decodes an index state exactly; refuses bytes that are not a checkpoint', () => {
    const state = new IndexState(flagsOfInfo);
    state.apply({ t: 'H', v: 1, uv: 77, floor: 5 });
    state.apply({ t: 'A', u: 3, m: 6, i: 'FS', s: 100, d: 1234, b: 'one,S=90' });
    state.apply({ t: 'A', u: 9, m: 7, i: '', s: 50, b: 'twø' });
    state.apply({ t: 'X', u: [4], m: 8 });
    const view = [...state.messages.values()];
    view[1]!.file = 'new/twø';
    view[0]!.structureAt = [10, 20];
    const meta = { scan: { cur: 1.5, new: 2.5, trusted: true, at: 1234.5 }, logIno: 42, logOffset: 300, logTailCrc: 99, uidlist: { ino: 7, size: 8, mtimeMs: 9.5, appendable: 8 } };
    const buf = encodeCheckpoint(state, view, meta);
    const back = new IndexState(flagsOfInfo);
    expect(decodeCheckpoint(buf, back)).toEqual({ uidValidity: 77, ...meta });
    expect([...back.messages.values()].map((m) => [m.uid, m.modSeq, m.info, m.flags, m.size, m.date, m.base, m.file, m.structureAt])).toEqual([
      [3, 6, 'FS', ['\\Flagged', '\\Seen'], 100, 1234, 'one,S=90', undefined, [10, 20]],
      [9, 7, '', [], 50, Number.NaN, 'twø', 'new/twø', undefined],
    ]);
    expect(back.expunged).toEqual([[4, 8]]);
    expect([back.highestModSeq, back.floor, back.records]).toEqual([8, 5, 4]);
    expect(decodeCheckpoint(Buffer.from('not a checkpoint at all'), back)).toBeUndefined();
    expect(back.messages.size).toBe(0);
    expect(decodeCheckpoint(buf.subarray(0, buf.length - 1), back)).toBeUndefined();
  });
});
