// The fast paths added for large folders (bench/store) must agree with the general code.
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { createMaildirStore } from '../src/maildir/index.js';
import { baseOfName, infoOfName, parseFilename, physicalSizeOfBase, sortInfo, virtualSizeOfBase } from '../src/maildir/filename.js';
import { peekCheckpointScan } from '../src/maildir/checkpoint.js';
import { FsWorker, mimeModulePath } from '../src/maildir/fs-worker.js';
import { cachedBodyStructureAt, crc32, decodeRecords, encodeRecord, encodeRecordAt } from '../src/maildir/index-log.js';
import { imapBodyStructure } from '@pigeonpost/mime';
import { computeStructure } from '../src/structure.js';
import type { IndexRecord } from '../src/maildir/index-log.js';
import type { StoreChange } from '../src/index.js';

/** A temporary root with user tim's empty Maildir (cur/, new/, tmp/) in it, made by hand as another program would. */
async function emptyMaildir(): Promise<{ root: string; maildir: string }> {
  const root = await mkdtemp(join(tmpdir(), 'pp-fast-'));
  const maildir = join(root, 'tim', 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) await mkdir(join(maildir, d), { recursive: true });
  return { root, maildir };
}

describe('Maildir fast paths', () => {
  it.each(['sync-batched', 'worker'] as const)('a change with nothing else changed opens none of the uidlist, the keywords or the index log to read them (readMode %s)', async (readMode) => {
    const { root, maildir } = await emptyMaildir();
    const fsp = createRequire(import.meta.url)('node:fs/promises') as Record<'open' | 'readFile', (...args: unknown[]) => Promise<unknown>>;
    const opens = vi.spyOn(fsp, 'open');
    const reads = vi.spyOn(fsp, 'readFile');
    syncBuiltinESMExports();
    try {
      const store = createMaildirStore({ root, fsync: false, readMode });
      for (let i = 0; i < 3; i++) await store.deliver({ user: 'tim', body: Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`) });
      const h = await (await store.user('tim')).open('INBOX');
      await h.setFlags([1], { mode: 'add', flags: ['$Work'] }); // dovecot-keywords written: the next sync reads it once
      await h.setFlags([2], { mode: 'add', flags: ['\\Seen'] });
      opens.mockClear();
      reads.mockClear();
      await h.setFlags([3], { mode: 'add', flags: ['\\Flagged'] });
      const touched = [...opens.mock.calls, ...reads.mock.calls].map((c) => String(c[0]).slice(maildir.length + 1));
      // The flag change itself appends to the log (through fs/promises with readMode 'worker'); nothing is read.
      expect(touched.filter((p) => ['dovecot-uidlist', 'dovecot-keywords'].includes(p))).toEqual([]);
      expect(opens.mock.calls.filter((c) => String(c[0]).endsWith('pigeonpost-index.log') && c[1] !== 'a')).toEqual([]);
      expect(h.messages().map((m) => [...m.flags].sort())).toEqual([['$Work'], ['\\Seen'], ['\\Flagged']]);
      // A change by another program (a keyword file rewritten) is still read at the next sync.
      await writeFile(join(maildir, 'dovecot-keywords'), '0 $Work\n1 $Home\n');
      reads.mockClear();
      await h.sync();
      expect(reads.mock.calls.map((c) => String(c[0]).slice(maildir.length + 1))).toContain('dovecot-keywords');
      await h.close();
      await store.close();
    } finally {
      opens.mockRestore();
      reads.mockRestore();
      syncBuiltinESMExports();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('baseOfName and infoOfName agree with parseFilename', () => {
    const names = [
      '1700000000.M1P1.host',
      '1700000000.M1P1.host,S=15,W=18',
      '1700000000.M1P1.host,S=15,W=18:2,',
      '1700000000.M1P1.host,S=15,W=18:2,FRS',
      '1700000000.M1P1.host,W=7,S=x,S=9:2,S',
      '1700000000.M1P1.host:2,Sab,extra',
      '1700000000.M1P1.host:1,S',
      'odd:name:2,S',
      'x:',
    ];
    for (const name of names) {
      expect(baseOfName(name)).toBe(parseFilename(name).base);
      expect(infoOfName(name)).toBe(parseFilename(name).info);
      expect(physicalSizeOfBase(baseOfName(name))).toBe(parseFilename(name).physicalSize);
      expect(virtualSizeOfBase(baseOfName(name))).toBe(parseFilename(name).virtualSize);
    }
  });

  it('sortInfo keeps sorted letters and sorts and dedupes the others', () => {
    for (const [input, out] of [
      ['', ''],
      ['S', 'S'],
      ['FRS', 'FRS'],
      ['SF', 'FS'],
      ['SS', 'S'],
      ['baS', 'Sab'],
    ]) expect(sortInfo(input!)).toBe(out);
  });

  it('leaves an add record’s structure in the log and says where it is', () => {
    const st = { version: 1, size: 3, virtualSize: 3, root: { kind: 'text', note: 'a "quoted" ,"st": value' } };
    const records: IndexRecord[] = [
      { t: 'H', v: 1, uv: 7, floor: 1 },
      { t: 'A', u: 1, m: 2, i: 'S', s: 3, d: 4, b: 'base,S=3,W=3', st: st as never, w: 'abc' },
      { t: 'A', u: 2, m: 3, i: '', s: 3, d: 4, b: 'other' },
      { t: 'F', u: [1], m: 4, i: ['FS'] },
    ];
    const data = Buffer.concat(records.map(encodeRecord));
    // A whole-line reader sees the same records.
    expect(decodeRecords(data).records).toEqual(records);
    const lazy = decodeRecords(data, { lazyStructures: true });
    expect(lazy.stop).toBe('end');
    const { st: _st, ...withoutSt } = records[1] as { st: unknown };
    expect(lazy.records[1]).toEqual(withoutSt);
    const at = lazy.structures?.[1];
    expect(at).toBeDefined();
    expect(JSON.parse(data.toString('utf8', at![0], at![0] + at![1]))).toEqual(st);
    expect(lazy.structures?.[0]).toBeUndefined();
    expect(lazy.structures?.[2]).toBeUndefined();
    // encodeRecordAt gives the same place within the record's own bytes.
    const first = encodeRecord(records[0]!).length;
    const one = encodeRecordAt(records[1]!);
    expect(one.structure).toBeDefined();
    expect(one.structure![0] + first).toBe(at![0]);
    expect(one.structure?.[1]).toBe(at![1]);
  });

  it('reads a record written with the structure before other fields whole', () => {
    const json = Buffer.from('{"t":"A","u":1,"m":2,"i":"","s":3,"d":4,"b":"x","st":{"version":1},"w":"abc"}');
    const line = Buffer.concat([Buffer.from(`${crc32(json).toString(16).padStart(8, '0')} `), json, Buffer.from('\n')]);
    const lazy = decodeRecords(Buffer.concat([encodeRecord({ t: 'H', v: 1, uv: 1, floor: 1 }), line]), { lazyStructures: true });
    expect(lazy.stop).toBe('end');
    expect(lazy.records[1]).toEqual({ t: 'A', u: 1, m: 2, i: '', s: 3, d: 4, b: 'x', st: { version: 1 }, w: 'abc' });
    expect(lazy.structures?.[1]).toBeUndefined();
  });

  it('a sync that skips the scan of old directories still sees every change another program makes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-fast-'));
    const store = createMaildirStore({ root, fsync: false });
    try {
      await store.createUser('tim', { mailboxes: [] });
      for (let i = 0; i < 3; i++) await store.deliver({ user: 'tim', body: Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`) });
      const maildir = join(root, 'tim', 'Maildir');
      const h = await (await store.user('tim')).open('INBOX');
      const age = async (): Promise<void> => {
        const past = new Date(Date.now() - 60_000);
        for (const d of ['cur', 'new']) await utimes(join(maildir, d), past, past);
        await h.sync(); // a full scan of old directories: the next sync may skip it
        expect((await h.sync()).flagsChanged).toEqual([]);
      };
      await age();
      // Another program (Dovecot) flags message 1 by renaming its file.
      const [first] = (await readdir(join(maildir, 'cur'))).sort();
      await rename(join(maildir, 'cur', first!), join(maildir, 'cur', first!.replace(/:2,.*$/, ':2,F')));
      expect((await h.sync()).flagsChanged.map((m) => m.flags)).toEqual([['\\Flagged']]);
      await age();
      // Another program delivers into new/.
      await writeFile(join(maildir, 'new', '1700000000.M1P1.other'), 'Subject: x\n\nhi\n');
      expect((await h.sync()).added.map((m) => m.uid)).toEqual([4]);
      await age();
      // Another program expunges message 2.
      const second = (await readdir(join(maildir, 'cur'))).find((n) => !n.startsWith(first!.replace(/:2,.*$/, '')) && !n.includes('.other'))!;
      await unlink(join(maildir, 'cur', second));
      expect((await h.sync()).expunged.length).toBe(1);
      await age();
      // dovecot-uidlist and the view agree on the three messages left.
      const uidlist = await readFile(join(maildir, 'dovecot-uidlist'), 'utf8');
      expect(uidlist.split('\n').slice(1).filter((l) => /^\d+ /.test(l)).length).toBe(3);
      expect(h.messages().length).toBe(3);
      await h.close();
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('the parse worker encodes structure records byte for byte as encodeRecordAt does', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-fast-'));
    const worker = new FsWorker();
    try {
      const bodies = ['Subject: =?UTF-8?Q?R=C3=A9union?=\nFrom: "Chloé" <c@example.org>\n\nnaïve\n', 'Subject: plain\r\n\r\nascii\r\n'];
      const bases = ['1700000000.M1P1.hôte,S=60', '1700000001.M2P1.host'];
      const paths = bases.map((b) => join(root, `${b}:2,S`));
      for (const [k, p] of paths.entries()) await writeFile(p, bodies[k]!);
      const mime = mimeModulePath();
      expect(mime).toBeDefined();
      const got = await worker.structureRecords(mime!, [...paths, join(root, 'missing')], [7, 1234567], [...bases, 'missing'], 'w-1');
      // With sizes (from ,S=): read to that size; a file longer than its size (the second, said to be 3 bytes) is read whole, a missing one fails.
      const sized = await worker.structureRecords(mime!, [...paths, join(root, 'missing')], [7, 1234567], [...bases, 'missing'], 'w-1', [Buffer.byteLength(bodies[0]!), 3, 10]);
      expect(sized.map((r) => r?.data.toString('latin1'))).toEqual(got.map((r) => r?.data.toString('latin1')));
      expect(got.length).toBe(3);
      expect(got[2]).toBeUndefined();
      for (const [k, body] of bodies.entries()) {
        const st = await computeStructure(Buffer.from(body));
        const expected = encodeRecordAt({ t: 'S', u: k === 0 ? 7 : 1234567, b: bases[k]!, st, w: 'w-1' });
        const r = got[k]!;
        expect(r.data.equals(expected.data)).toBe(true);
        expect(r.at).toEqual(expected.structure);
        expect(JSON.parse(r.data.toString('latin1', r.at[0], r.at[0] + r.at[1]))).toEqual(JSON.parse(JSON.stringify(st)));
        expect(decodeRecords(r.data).stop).toBe('end');
        // The IMAP BODYSTRUCTURE cached after the structure (\u escapes for the non-ASCII one).
        expect(cachedBodyStructureAt(r.data, r.at[0] + r.at[1])).toBe(imapBodyStructure(st));
      }
    } finally {
      await worker.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a STORE on many messages (file worker) keeps what each message had: structure, INTERNALDATE, EMAILID, file', async () => {
    const { root, maildir } = await emptyMaildir();
    const n = 150;
    try {
      for (let i = 0; i < n; i++) {
        const body = `Subject: m${i}\r\nContent-Type: text/plain\r\n\r\nbody ${i}\r\n`;
        // Every tenth one in new/ (moved to cur/ by the first sync), one with a name not in canonical form.
        const name = i === 7 ? `${1700000000 + i}.M${i}P1.host:2,S` : `${1700000000 + i}.M${i}P1.host,S=${body.length},W=${body.length}:2,${i % 2 ? 'S' : ''}`;
        await writeFile(join(maildir, i % 10 === 3 ? 'new' : 'cur', i % 10 === 3 ? name.split(':')[0]! : name), body);
        await utimes(join(maildir, i % 10 === 3 ? 'new' : 'cur', i % 10 === 3 ? name.split(':')[0]! : name), 1_600_000_000 + i, 1_600_000_000 + i);
      }
      const store = createMaildirStore({ root, fsync: false });
      const h = await (await store.user('tim')).open('INBOX');
      const uids = h.messages().map((m) => m.uid);
      expect(uids.length).toBe(n);
      const before = new Map(h.messages().map((m) => [m.uid, m.emailId]));
      const dates = await h.internalDates(uids);
      const structures = new Map<number, unknown>();
      for (const uid of [1, 4, 8, 60, n]) structures.set(uid, await h.structure(uid));
      const result = await h.setFlags(uids, { mode: 'add', flags: ['\\Flagged'] });
      expect(result.updated.length).toBe(n);
      const modSeq = result.updated[0]!.modSeq;
      // Every file changed behind the store's back after the STORE: what it knew must come from
      // the versions it had (not read again), so the old dates and structures are still given.
      for (const f of await readdir(join(maildir, 'cur'))) {
        await writeFile(join(maildir, 'cur', f), 'Subject: changed\r\nContent-Type: image/png\r\n\r\nxx\r\n');
        await utimes(join(maildir, 'cur', f), 1_700_000_000, 1_700_000_000);
      }
      for (const m of h.messages()) {
        expect(m.flags).toContain('\\Flagged');
        expect(m.modSeq).toBe(modSeq);
        expect(m.emailId).toBe(before.get(m.uid));
      }
      expect(await h.internalDates(uids)).toEqual(dates);
      for (const [uid, st] of structures) expect(await h.structure(uid)).toEqual(st);
      // The files have the new names, and a second STORE finds each of them (the one with the odd name too).
      expect((await readdir(join(maildir, 'cur'))).filter((f) => /:2,.*F/.test(f)).length).toBe(n);
      expect((await h.setFlags(uids, { mode: 'remove', flags: ['\\Flagged'] })).updated.length).toBe(n);
      await h.close();
      await store.close();
      const other = createMaildirStore({ root, fsync: false });
      const h2 = await (await other.user('tim')).open('INBOX');
      expect(h2.messages().every((m) => !m.flags.includes('\\Flagged') && m.modSeq > modSeq)).toBe(true);
      expect(await h2.internalDates(uids)).toEqual(dates);
      for (const [uid, st] of structures) expect(await h2.structure(uid)).toEqual(st);
      await h2.close();
      await other.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a folder indexed from its files and dovecot-uidlist keeps the listed UIDs, drops the gone, numbers the unlisted in name order', async () => {
    const { root, maildir } = await emptyMaildir();
    const base = (i: number): string => `${1700000000 + i}.M${i}P7.h,S=9,W=10`;
    try {
      // Listed: 1..6 with UIDs 10, 20, ..., 60. 3 is gone; 5 is in new/ (no info yet); 8 is in cur/ and 7 in new/, both unlisted.
      await writeFile(join(maildir, 'dovecot-uidlist'), `3 V1234 N61 G0123456789abcdef0123456789abcdef\n${[1, 2, 3, 4, 5, 6].map((i) => `${i * 10} :${base(i)}`).join('\n')}\n`);
      for (const i of [1, 2, 4, 6, 8]) await writeFile(join(maildir, 'cur', `${base(i)}:2,${i === 2 ? 'S' : ''}`), 'Subject: x\n');
      for (const i of [5, 7]) await writeFile(join(maildir, 'new', base(i)), 'Subject: x\n');
      const store = createMaildirStore({ root, fsync: false });
      const user = await store.user('tim');
      // A watcher is told of the messages an index made from the files holds (records made for it only).
      const ac = new AbortController();
      const changes: StoreChange[] = [];
      const watching = (async () => {
        for await (const c of user.watch({ signal: ac.signal })) {
          changes.push(c);
          if (c.type === 'append') break;
        }
      })();
      const h = await user.open('INBOX');
      await Promise.race([watching, new Promise((r) => setTimeout(r, 3000))]);
      ac.abort();
      expect(changes.find((c) => c.type === 'append')).toMatchObject({ mailbox: 'INBOX', uids: [10, 20, 40, 50, 60, 61, 62] });
      expect(h.status.uidValidity).toBe(1234);
      expect(h.messages().map((m) => [m.uid, m.flags.join(' ')])).toEqual([
        [10, ''],
        [20, '\\Seen'],
        [40, ''],
        [50, ''],
        [60, ''],
        [61, ''],
        [62, ''],
      ]);
      // The unlisted ones got 61 (base 7, from new/) and 62 (base 8): name order.
      const uidlist = await readFile(join(maildir, 'dovecot-uidlist'), 'utf8');
      expect(uidlist).toContain(`61 :${base(7)}\n`);
      expect(uidlist).toContain(`62 :${base(8)}\n`);
      expect(uidlist).not.toContain(base(3));
      expect(await readdir(join(maildir, 'new'))).toEqual([]);
      await h.close();
      await store.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a folder indexed from its files finds every file whose name is not <base>:2,<sorted info>', async () => {
    const { root, maildir } = await emptyMaildir();
    // Canonical ones around odd ones: unsorted and repeated flags, no info at all, an info of another version.
    const names = ['1700000001.M1P1.h:2,S', '1700000002.M2P1.h:2,SF', '1700000003.M3P1.h:2,', '1700000004.M4P1.h:2,RRS', '1700000005.M5P1.h', '1700000006.M6P1.h:2,FS', '1700000007.M7P1.h:1,x', '1700000008.M8P1.h:2,DT'];
    const flagsOf = [['\\Seen'], ['\\Flagged', '\\Seen'], [], ['\\Answered', '\\Seen'], [], ['\\Flagged', '\\Seen'], [], ['\\Draft', '\\Deleted']];
    try {
      for (const [i, name] of names.entries()) await writeFile(join(maildir, 'cur', name), `Subject: ${i}\r\n\r\nbody ${i}\r\n`);
      const store = createMaildirStore({ root, fsync: false });
      const h = await (await store.user('tim')).open('INBOX');
      expect(h.messages().map((m) => [...m.flags].sort())).toEqual(flagsOf.map((f) => [...f].sort()));
      // No `,W=` in these names: each size was read from its file.
      expect(h.messages().map((m) => m.size)).toEqual(names.map((_, i) => Buffer.byteLength(`Subject: ${i}\r\n\r\nbody ${i}\r\n`)));
      for (const [i, m] of h.messages().entries()) {
        const chunks: Buffer[] = [];
        for await (const c of h.read(m.uid)) chunks.push(Buffer.from(c));
        expect(Buffer.concat(chunks).toString()).toBe(`Subject: ${i}\r\n\r\nbody ${i}\r\n`);
      }
      // A STORE renames each from the name it has (odd or not) to its canonical one.
      const uids = h.messages().map((m) => m.uid);
      expect((await h.setFlags(uids, { mode: 'add', flags: ['$Work'] })).updated.length).toBe(names.length);
      const after = await readdir(join(maildir, 'cur'));
      expect(after.length).toBe(names.length);
      for (const name of after) expect(name).toMatch(/:2,[A-Z]*a[A-Z]*$/);
      await h.close();
      await store.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a big folder: a STORE on every message renamed in several worker batches, a file gone meanwhile found again', async () => {
    const { root, maildir } = await emptyMaildir();
    // More than two rename batches (RENAME_BATCH 8192): the file worker takes them from the start, this thread from the end.
    const n = 17_000;
    try {
      const names: string[] = [];
      for (let i = 0; i < n; i++) {
        const name = `${1700000000 + i}.M${i}P4242Q${i}.pigeonpost-test-host,S=12,W=13:2,${i % 3 === 0 ? 'S' : ''}`;
        names.push(name);
        await writeFile(join(maildir, 'cur', name), 'Subject: x\n');
      }
      const store = createMaildirStore({ root, fsync: false });
      const h = await (await store.user('tim')).open('INBOX');
      const uids = h.messages().map((m) => m.uid);
      expect(uids.length).toBe(n);
      expect(h.messages().filter((m) => m.flags.includes('\\Seen')).length).toBe(Math.ceil(n / 3));
      // Another program renames two files (one early, one late: in different batches) before the STORE.
      for (const i of [5, n - 5]) await rename(join(maildir, 'cur', names[i]!), join(maildir, 'cur', `${names[i]!}T`));
      const result = await h.setFlags(uids, { mode: 'add', flags: ['\\Flagged'] });
      expect(result.updated.length).toBe(n);
      const onDisk = await readdir(join(maildir, 'cur'));
      expect(onDisk.length).toBe(n);
      expect(onDisk.filter((f) => /:2,[A-Z]*F/.test(f)).length).toBe(n);
      expect(onDisk.filter((f) => f.endsWith(':2,FS') || f.endsWith(':2,FST')).length).toBe(Math.ceil(n / 3));
      await h.close();
      await store.close();
      const other = createMaildirStore({ root, fsync: false });
      const h2 = await (await other.user('tim')).open('INBOX');
      expect(h2.messages().map((m) => m.uid)).toEqual(uids);
      expect(h2.messages().every((m) => m.flags.includes('\\Flagged'))).toBe(true);
      expect(h2.messages()[5]!.flags).toContain('\\Deleted');
      await h2.close();
      await other.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }, 60_000);

  /** Take every thread closed stores left idle (held until release): then a new store's workers boot. */
  function holdIdleThreads(): { release(): Promise<void> } {
    const held: FsWorker[] = [];
    for (;;) {
      const w = new FsWorker();
      w.adoptIdle();
      if (!w.online) break;
      held.push(w);
    }
    return { release: async () => void (await Promise.all(held.map((w) => w.close()))) };
  }

  /** Leave `n` booted threads idle for the next store to take. */
  async function leaveIdleThreads(n: number): Promise<void> {
    const ws = Array.from({ length: n }, () => new FsWorker());
    await Promise.all(ws.map((w) => w.mtimes([tmpdir()])));
    for (const w of ws) await w.close();
  }

  /**
   * A STORE on every message of a folder past PARALLEL_RENAMES_FROM, from a trusted scan; what the debug log said of it.
   * `ready` runs once the files are written, just before the store is made (threads left idle
   * before writing 16,500 files could time out on a slow machine).
   */
  async function bigTrustedStore(ready?: () => Promise<void>): Promise<{ files: number; here: number; whilePlanning: number; stolen: number; workers: number }> {
    const { root, maildir } = await emptyMaildir();
    // Past PARALLEL_RENAMES_FROM (two workers); directories last changed long ago, so the scan is trusted.
    const n = 16_500;
    try {
      for (let i = 0; i < n; i++) await writeFile(join(maildir, 'cur', `${1700000000 + i}.M${i}P4242Q${i}.pigeonpost-test-host,S=12,W=13:2,S`), 'Subject: x\n');
      const old = new Date(Date.UTC(2024, 0, 1));
      for (const d of ['cur', 'new']) await utimes(join(maildir, d), old, old);
      const said: { files: number; here: number; whilePlanning: number; stolen: number; workers: number }[] = [];
      const log = (obj: unknown, msg?: string): void => {
        if (msg === 'flag change: files renamed') said.push(obj as { files: number; here: number; whilePlanning: number; stolen: number; workers: number });
      };
      const logger = { trace: log, debug: log, info: log, warn: log, error: log, fatal: log, child: () => logger };
      await ready?.();
      const store = createMaildirStore({ root, fsync: false, logger });
      const h = await (await store.user('tim')).open('INBOX');
      const uids = h.messages().map((m) => m.uid);
      expect((await h.setFlags(uids, { mode: 'add', flags: ['\\Flagged'] })).updated.length).toBe(n);
      await h.close();
      await store.close();
      // The mtimes the renames left are recorded as the scan's: taken before them, cur/ still had the old one.
      const after = { cur: (await stat(join(maildir, 'cur'))).mtimeMs, new: (await stat(join(maildir, 'new'))).mtimeMs };
      expect(after.cur).toBeGreaterThan(old.getTime());
      // Recent mtimes: not trusted yet (the first sync once they are not lists cur/ once, see the checkpoint tests).
      expect(await peekCheckpointScan(join(maildir, 'pigeonpost-index.bin'))).toEqual({ ...after, trusted: false, at: expect.any(Number) as number });
      const other = createMaildirStore({ root, fsync: false });
      const h2 = await (await other.user('tim')).open('INBOX');
      expect(h2.messages().length).toBe(n);
      expect(h2.messages().every((m) => m.flags.includes('\\Flagged') && m.flags.includes('\\Seen'))).toBe(true);
      expect((await readdir(join(maildir, 'cur'))).filter((f) => f.endsWith(':2,FS')).length).toBe(n);
      await h2.close();
      await other.close();
      expect(said.length).toBe(1);
      expect(said[0]!.files).toBe(n);
      expect(said[0]!.here + said[0]!.workers).toBe(n);
      return said[0]!;
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  }

  it('a big STORE with the file worker up: it renames from the first file (stat\'ing the directories first), this thread takes chunks from the end once it has planned, and the folder records what the renames left as its scan', async () => {
    const said = await bigTrustedStore(() => leaveIdleThreads(2));
    // Nothing here while planning (the worker is up); then this thread's share is what it took
    // from the end, whole chunks of 256 (16,500 renames take the worker far longer than the
    // rest of the plan takes this thread).
    expect(said).toMatchObject({ whilePlanning: 0 });
    expect(said.stolen).toBe(said.here);
    expect(said.stolen).toBeGreaterThan(0);
    expect(said.workers).toBeGreaterThan(0);
  }, 60_000);

  it('a big STORE with no file worker up: renamed here from the first file, while the rest is planned (the directories stat\'ed here first), until they boot; the rest by them', async () => {
    const held = holdIdleThreads();
    try {
      const said = await bigTrustedStore();
      // Here first, from the first planned slice on (not after the whole plan); the workers take
      // over once up (unless this thread was done first, on a very slow boot).
      expect(said.whilePlanning).toBeGreaterThan(0);
      expect(said.here).toBeGreaterThanOrEqual(said.whilePlanning);
    } finally {
      await held.release();
    }
  }, 60_000);

  it('a small folder with no worker up has its structures parsed here, as asked for: no thread is started', async () => {
    const { root, maildir } = await emptyMaildir();
    const held = holdIdleThreads();
    const wt = createRequire(import.meta.url)('node:worker_threads') as { Worker: new (...args: unknown[]) => object };
    const Real = wt.Worker;
    let started = 0;
    wt.Worker = class extends Real {
      constructor(...args: unknown[]) {
        super(...args);
        started++;
      }
    };
    syncBuiltinESMExports();
    try {
      const bodies = Array.from({ length: 20 }, (_, i) => `Subject: ${i}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello ${i}\r\n--b--\r\n`);
      for (const [i, b] of bodies.entries()) await writeFile(join(maildir, 'cur', `${1700000000 + i}.M${i}P1.host,S=${b.length},W=${b.length}:2,`), b);
      const store = createMaildirStore({ root, fsync: false });
      const h = await (await store.user('tim')).open('INBOX');
      for (const [i, m] of h.messages().entries()) {
        expect(await h.bodyStructure(m.uid)).toBe(imapBodyStructure(await computeStructure(Buffer.from(bodies[i]!))));
      }
      expect(started).toBe(0);
      await h.close();
      await store.close();
    } finally {
      wt.Worker = Real;
      syncBuiltinESMExports();
      await held.release();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('renameInfos: a worker waiting on the gate renames nothing before it is counted up: by the other worker after its stat, and by this thread', async () => {
    const { root, maildir } = await emptyMaildir();
    const a = new FsWorker();
    const b = new FsWorker();
    try {
      const bases = Array.from({ length: 200 }, (_, i) => `${1700000000 + i}.M${i}P1.h,S=2,W=2`);
      for (const base of bases) await writeFile(join(maildir, 'cur', `${base}:2,`), 'x\n');
      const old = new Date(Date.UTC(2024, 0, 1));
      for (const d of ['cur', 'new']) await utimes(join(maildir, d), old, old);
      const job = (from: number, to: number) => ({ bases: bases.slice(from, to), infos: ['', 'F'], fromInfo: new Uint32Array(to - from), toInfo: new Uint32Array(to - from).fill(1), oddAt: [], oddFrom: [] });
      const flagged = async (): Promise<number> => (await readdir(join(maildir, 'cur'))).filter((f) => f.endsWith(':2,F')).length;
      const gate = new Int32Array(new SharedArrayBuffer(4));
      // The waiting worker gets its batch first; the stat comes later, from the other worker, and still sees cur/ untouched.
      const second = b.renameInfos(maildir, { ...job(100, 200), waitFor: { gate, count: 2 } });
      await new Promise((r) => setTimeout(r, 100));
      expect(await flagged()).toBe(0);
      const first = await a.renameInfos(maildir, { ...job(0, 100), stat: true, signal: gate });
      expect(first).toEqual({ failures: [], dirs: { cur: old.getTime(), new: old.getTime() } });
      expect(Atomics.load(gate, 0)).toBe(1);
      // Counted once: still waiting.
      await new Promise((r) => setTimeout(r, 100));
      expect(await flagged()).toBe(100);
      Atomics.add(gate, 0, 1);
      Atomics.notify(gate, 0);
      expect(await second).toEqual({ failures: [] });
      expect(await flagged()).toBe(200);
      // A stat with nothing to rename still answers, and a missing directory gives no mtimes.
      expect(await a.renameInfos(maildir, { ...job(0, 0), stat: true })).toEqual({ failures: [], dirs: { cur: (await stat(join(maildir, 'cur'))).mtimeMs, new: old.getTime() } });
      expect(await a.renameInfos(join(root, 'nowhere'), { ...job(0, 0), stat: true })).toEqual({ failures: [] });
    } finally {
      await a.close();
      await b.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('renameInfos with claims: the worker renames only the chunks it claims, and says nothing of those claimed before it, odd paths included', async () => {
    const { root, maildir } = await emptyMaildir();
    const w = new FsWorker();
    try {
      const bases = Array.from({ length: 10 }, (_, i) => `${1700000000 + i}.M${i}P1.h,S=2,W=2`);
      // Jobs 3 and 8 are elsewhere (new/): paths of their own, in chunks it claims and one it does not.
      for (const [i, base] of bases.entries()) await writeFile(join(maildir, i === 3 || i === 8 ? 'new' : 'cur', i === 3 || i === 8 ? base : `${base}:2,`), 'x\n');
      // Chunks of 3: [0,1,2] [3,4,5] [6,7,8] [9]; the third was claimed by another thread, which renames it.
      const cells = new Int32Array(new SharedArrayBuffer(16));
      cells[2] = 2;
      const r = await w.renameInfos(maildir, {
        bases,
        infos: ['', 'F'],
        fromInfo: new Uint32Array(10),
        toInfo: new Uint32Array(10).fill(1),
        oddAt: [3, 8],
        oddFrom: [`new/${bases[3]}`, `new/${bases[8]}`],
        claims: { cells, size: 3 },
      });
      expect(r).toEqual({ failures: [] });
      expect([...cells]).toEqual([1, 1, 2, 1]);
      const cur = new Set(await readdir(join(maildir, 'cur')));
      for (const [i, base] of bases.entries()) {
        if (i >= 6 && i <= 8) expect(cur.has(`${base}:2,F`)).toBe(false);
        else expect(cur.has(`${base}:2,F`)).toBe(true);
      }
      expect(await readdir(join(maildir, 'new'))).toEqual([bases[8]]);
      expect(cur.has(`${bases[6]}:2,`) && cur.has(`${bases[7]}:2,`)).toBe(true);
    } finally {
      await w.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('a file worker closed with nothing in flight leaves its thread for the next one, booted', async () => {
    const { root, maildir } = await emptyMaildir();
    try {
      await writeFile(join(maildir, 'cur', 'a:2,'), 'x\n');
      // Threads other tests' stores left idle are taken (held) first: then none is.
      const held = holdIdleThreads();
      const first = new FsWorker();
      const fresh = new FsWorker();
      fresh.start();
      // A new thread is not up at once.
      expect(fresh.online).toBe(false);
      expect((await first.mtimes([join(maildir, 'cur', 'a:2,')]))[0]).toBeGreaterThan(0);
      await first.close();
      // Taken from the idle ones: up at once, and it works.
      const second = new FsWorker();
      second.adoptIdle();
      expect(second.online).toBe(true);
      expect((await second.mtimes([join(maildir, 'cur', 'a:2,'), join(maildir, 'cur', 'gone')]))[1]).toBeNaN();
      // Closed with a job in flight: the thread is ended and the job fails; nothing is left idle by it.
      // (Its failure is awaited from the start: close() fails it at once.)
      const busy = expect(second.read([join(maildir, 'cur', 'a:2,')])).rejects.toThrow('file worker closed');
      await second.close();
      await busy;
      await fresh.close();
      await expect(second.mtimes([])).resolves.toEqual([]);
      await expect(second.read([join(maildir, 'cur', 'a:2,')])).rejects.toThrow('file worker closed');
      await held.release();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('appends new UIDs to dovecot-uidlist in place, and a fresh reader agrees', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-fast-'));
    const store = createMaildirStore({ root, fsync: false });
    try {
      await store.createUser('tim', { mailboxes: [] });
      const uids = [];
      for (let i = 0; i < 5; i++) uids.push((await store.deliver({ user: 'tim', body: Buffer.from(`Subject: ${i}\r\n\r\nbody\r\n`) })).uid);
      expect(uids).toEqual([1, 2, 3, 4, 5]);
      // A torn append (a crash mid-write) is cut off before the next one.
      const path = join(root, 'tim', 'Maildir', 'dovecot-uidlist');
      await writeFile(path, (await readFile(path, 'utf8')) + '6 :torn', { flag: 'w' });
      const again = createMaildirStore({ root, fsync: false });
      try {
        expect((await again.deliver({ user: 'tim', body: Buffer.from('Subject: 6\r\n\r\nbody\r\n') })).uid).toBe(6);
        const lines = (await readFile(path, 'utf8')).split('\n');
        expect(lines.slice(1).filter((l) => /^\d+ /.test(l)).map((l) => Number(l.split(' ')[0]))).toEqual([1, 2, 3, 4, 5, 6]);
        expect(lines.some((l) => l.includes('torn'))).toBe(false);
        const h = await (await again.user('tim')).open('INBOX');
        expect(h.messages().map((m) => m.uid)).toEqual([1, 2, 3, 4, 5, 6]);
        expect(h.status.uidNext).toBe(7);
        await h.close();
      } finally {
        await again.close();
      }
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
