// A folder indexed from its files (no Pigeonpost index yet): nothing is read at open when the names carry `,W=`,
// structures are computed on first use and appended to the index log later as structure records.
import { mkdir, mkdtemp, open, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { computeStructure } from '../src/structure.js';
import { createMaildirStore } from '../src/maildir/index.js';
import { crc32, crc32Js, decodeRecords, encodeRecord, IndexState } from '../src/maildir/index-log.js';
import type { IndexRecord } from '../src/maildir/index-log.js';
import { splitInfo } from '../src/maildir/filename.js';

const flagsOfInfo = (info: string): readonly string[] => splitInfo(info).flags;

function crlfSize(body: string): number {
  return Buffer.byteLength(body) + (body.match(/(?<!\r)\n/g)?.length ?? 0);
}

async function writeFolder(root: string, bodies: readonly string[], withSizes: (i: number) => boolean): Promise<{ maildir: string; names: string[] }> {
  const maildir = join(root, 'tim', 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) await mkdir(join(maildir, d), { recursive: true });
  const names: string[] = [];
  for (const [i, body] of bodies.entries()) {
    const base = `${1700000000 + i}.M${i}P1.host${withSizes(i) ? `,S=${Buffer.byteLength(body)},W=${crlfSize(body)}` : ''}`;
    names.push(base);
    const path = join(maildir, 'cur', `${base}:2,${i % 2 === 0 ? 'S' : ''}`);
    await writeFile(path, body);
    const date = new Date(Date.UTC(2024, 0, 1 + i));
    await utimes(path, date, date);
  }
  await writeFile(join(maildir, 'dovecot-uidlist'), `3 V1700000000 N${bodies.length + 1} G0123456789abcdef0123456789abcdef\n${names.map((n, i) => `${i + 1} :${n}\n`).join('')}`);
  return { maildir, names };
}

describe('Maildir lazy indexing', () => {
  it('native and table CRC-32 agree', () => {
    for (const text of ['', 'a', '{"t":"H","v":1,"uv":7,"floor":1}', 'é'.repeat(1000)]) {
      const data = Buffer.from(text);
      expect(crc32(data)).toBe(crc32Js(data));
    }
  });

  it('a structure record applies only to the message with that base name, and compaction folds it in', () => {
    const st = { version: 1, size: 3 } as never;
    const records: IndexRecord[] = [
      { t: 'H', v: 1, uv: 7, floor: 1 },
      { t: 'A', u: 1, m: 2, i: 'S', s: 3, d: 4, b: 'one' },
      { t: 'A', u: 2, m: 3, i: '', s: 3, d: 4, b: 'two' },
      { t: 'S', u: 1, b: 'one', st, w: 'abc' },
      { t: 'S', u: 2, b: 'not-two', st },
    ];
    const data = Buffer.concat(records.map(encodeRecord));
    expect(decodeRecords(data).records).toEqual(records);
    const lazy = decodeRecords(data, { lazyStructures: true });
    expect(lazy.stop).toBe('end');
    const at = lazy.structures?.[3];
    expect(at).toBeDefined();
    expect(JSON.parse(data.toString('utf8', at![0], at![0] + at![1]))).toEqual(st);
    const state = new IndexState(flagsOfInfo);
    lazy.records.forEach((r, k) => state.apply(r, lazy.structures?.[k]));
    expect(state.messages.get(1)?.structureAt).toEqual(at);
    expect(state.messages.get(2)?.structureAt).toBeUndefined();
    expect(state.highestModSeq).toBe(3);
    const whole = new IndexState(flagsOfInfo);
    for (const r of decodeRecords(data).records) whole.apply(r);
    expect(whole.snapshot().find((r) => r.t === 'A' && r.u === 1)).toMatchObject({ st });
  });

  it('opens a folder from names and mtimes, computes structures on first use and logs them for the next open', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-lazy-'));
    const bodies = Array.from({ length: 6 }, (_, i) =>
      i === 3
        ? `Subject: ${i}\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nhello ${i}\n--b\nContent-Type: text/html\n\n<p>${i}</p>\n--b--\n`
        : `Subject: ${i}\nFrom: a@example.org\n\nbody ${i}\nline two\n`,
    );
    // Message 5 has no `,W=`: its size is counted from the file.
    const { maildir } = await writeFolder(root, bodies, (i) => i !== 4);
    const store = createMaildirStore({ root, fsync: false });
    try {
      const h = await (await store.user('tim')).open('INBOX');
      expect(h.messages().map((m) => [m.uid, m.size, m.flags])).toEqual(bodies.map((b, i) => [i + 1, crlfSize(b), i % 2 === 0 ? ['\\Seen'] : []]));
      // INTERNALDATE is each file's mtime, read when asked for.
      expect(await h.internalDates(bodies.map((_, i) => i + 1))).toEqual(bodies.map((_, i) => Date.UTC(2024, 0, 1 + i)));
      // Nothing was parsed: the index holds no structure yet.
      let log = decodeRecords(await readFile(join(maildir, 'pigeonpost-index.log')));
      expect(log.records.filter((r) => r.t === 'A' && r.st !== undefined)).toEqual([]);
      for (const [i, body] of bodies.entries()) expect(await h.structure(i + 1)).toEqual(await computeStructure(Buffer.from(body)));
      // At the next change they are appended to the log (after anything else).
      await h.setFlags([2], { mode: 'add', flags: ['\\Flagged'] });
      log = decodeRecords(await readFile(join(maildir, 'pigeonpost-index.log')));
      expect(log.stop).toBe('end');
      const logged = log.records.filter((r) => r.t === 'S');
      expect(logged.map((r) => r.u).sort()).toEqual([1, 2, 3, 4, 5, 6]);
      await h.close();
      // Another store reads them from the log: the files are not parsed again.
      const again = createMaildirStore({ root, fsync: false });
      try {
        const h2 = await (await again.user('tim')).open('INBOX');
        for (const [i, body] of bodies.entries()) expect(await h2.structure(i + 1)).toEqual(await computeStructure(Buffer.from(body)));
        expect(h2.messages().find((m) => m.uid === 2)?.flags).toEqual(['\\Flagged']);
        await h2.close();
      } finally {
        await again.close();
      }
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('gives the same structures from the parse workers as from the main thread, non-ASCII headers included', async () => {
    const bodies = [
      'Subject: =?UTF-8?Q?R=C3=A9union?=\nFrom: "Chloé Dupont" <c@example.org>\n\nbody\n',
      'Subject: Café 8-bit\nContent-Type: text/plain; charset=utf-8\nContent-Disposition: attachment; filename*=utf-8\'\'na%C3%AFve.txt\n\nnaïve\n',
      'Subject: plain\n\nascii\n',
    ];
    const structures: unknown[][] = [];
    for (const parseWorkers of [0, 2]) {
      const root = await mkdtemp(join(tmpdir(), 'pp-lazy-'));
      await writeFolder(root, bodies, () => true);
      const store = createMaildirStore({ root, fsync: false, parseWorkers });
      try {
        const h = await (await store.user('tim')).open('INBOX');
        const got: unknown[] = [];
        for (let uid = 1; uid <= bodies.length; uid++) got.push(await h.structure(uid));
        structures.push(got);
        await h.close();
        await store.close();
        // And as read back from the index log by another store.
        const again = createMaildirStore({ root, fsync: false, parseWorkers });
        const h2 = await (await again.user('tim')).open('INBOX');
        for (let uid = 1; uid <= bodies.length; uid++) expect(await h2.structure(uid)).toEqual(got[uid - 1]);
        await h2.close();
        await again.close();
      } finally {
        await store.close();
        await rm(root, { recursive: true, force: true });
      }
    }
    expect(structures[1]).toEqual(structures[0]);
    for (const [i, body] of bodies.entries()) expect(structures[0]![i]).toEqual(await computeStructure(Buffer.from(body)));
  });

  it.each(['sync-batched', 'worker'] as const)('appends structure records without an fsync of their own (a cache), and syncs every other change (readMode %s)', async (readMode) => {
    const root = await mkdtemp(join(tmpdir(), 'pp-lazy-'));
    const bodies = Array.from({ length: 5 }, (_, i) => `Subject: ${i}\n\nbody ${i}\n`);
    const { maildir } = await writeFolder(root, bodies, () => true);
    const probe = await open(join(maildir, 'dovecot-uidlist'), 'r');
    const handleProto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    // Small appends (readMode 'sync-batched') are written here and synced with fs.fdatasync;
    // the others through a FileHandle. Both are watched (the ESM bindings follow the CJS module's).
    const fsCjs = createRequire(import.meta.url)('node:fs') as { fdatasync: (fd: number, cb: (error: Error | null) => void) => void };
    const fdSyncs = vi.spyOn(fsCjs, 'fdatasync');
    syncBuiltinESMExports();
    const handleSyncs = vi.spyOn(handleProto, 'datasync');
    const syncs = { mockClear: () => [fdSyncs, handleSyncs].forEach((s) => s.mockClear()), calls: () => fdSyncs.mock.calls.length + handleSyncs.mock.calls.length };
    const store = createMaildirStore({ root, fsync: true, readMode });
    try {
      const h = await (await store.user('tim')).open('INBOX');
      syncs.mockClear();
      for (let uid = 1; uid <= bodies.length; uid++) await h.structure(uid);
      await h.sync(); // appends the structures waiting
      const log = decodeRecords(await readFile(join(maildir, 'pigeonpost-index.log'))).records;
      expect(log.filter((r) => r.t === 'S').length).toBe(bodies.length);
      expect(syncs.calls()).toBe(0);
      await h.setFlags([1], { mode: 'add', flags: ['\\Flagged'] });
      expect(syncs.calls()).toBeGreaterThan(0);
      await h.close();
    } finally {
      fdSyncs.mockRestore();
      handleSyncs.mockRestore();
      syncBuiltinESMExports();
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('reads back structures logged as UTF-8 JSON (older records) next to ASCII ones', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-lazy-'));
    // Raw 8-bit header bytes: the structure holds non-ASCII strings.
    const bodies = ['Subject: Réunion\nContent-Type: text/plain; charset=utf-8; name="naïve.txt"\n\nnaïve\n', 'Subject: plain\n\nascii\n'];
    try {
      const first = createMaildirStore({ root, fsync: false });
      await first.createUser('tim', { mailboxes: [] });
      for (const body of bodies) await first.deliver({ user: 'tim', body: Buffer.from(body) });
      const h = await (await first.user('tim')).open('INBOX');
      const expected = [await h.structure(1), await h.structure(2)];
      await h.close();
      await first.close();
      // The add records (they carry the structures of delivered messages) rewritten as an older
      // store wrote them: raw UTF-8, not \u escapes, the structure still last. No checkpoint.
      const maildir = join(root, 'tim', 'Maildir');
      const logPath = join(maildir, 'pigeonpost-index.log');
      const lines = (await readFile(logPath)).toString('utf8').split('\n').filter((l) => l !== '');
      let rewritten = 0;
      const out = lines.map((line) => {
        const record = JSON.parse(line.slice(9)) as { t: string; st?: unknown };
        if (record.t !== 'A' || record.st === undefined) return line;
        const { st, ...rest } = record;
        const json = `${JSON.stringify(rest).slice(0, -1)},"st":${JSON.stringify(st)}}`;
        if (Buffer.byteLength(json) !== json.length) rewritten++;
        return `${crc32(Buffer.from(json)).toString(16).padStart(8, '0')} ${json}`;
      });
      expect(rewritten).toBe(1);
      await rm(join(maildir, 'pigeonpost-index.bin'), { force: true });
      await writeFile(logPath, out.join('\n') + '\n');
      const decoded = decodeRecords(await readFile(logPath), { lazyStructures: true });
      expect(decoded.stop).toBe('end');
      expect(decoded.structures?.filter((at) => at !== undefined).length).toBe(2);
      const again = createMaildirStore({ root, fsync: false });
      const h2 = await (await again.user('tim')).open('INBOX');
      expect([await h2.structure(1), await h2.structure(2)]).toEqual(expected);
      expect(expected[0]).toEqual(await computeStructure(Buffer.from(bodies[0]!)));
      await h2.close();
      await again.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('appends the structures still waiting when the store closes', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-lazy-'));
    const bodies = Array.from({ length: 3 }, (_, i) => `Subject: ${i}\n\nbody ${i}\n`);
    const { maildir } = await writeFolder(root, bodies, () => true);
    try {
      const store = createMaildirStore({ root, fsync: false });
      const h = await (await store.user('tim')).open('INBOX', { readOnly: true });
      for (let uid = 1; uid <= 3; uid++) await h.structure(uid);
      await h.close();
      await store.close();
      const log = decodeRecords(await readFile(join(maildir, 'pigeonpost-index.log')));
      expect(log.stop).toBe('end');
      expect(log.records.filter((r) => r.t === 'S').map((r) => r.u).sort()).toEqual([1, 2, 3]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('appends structures in the background once many are waiting', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-lazy-'));
    const bodies = Array.from({ length: 1100 }, (_, i) => `Subject: ${i}\n\nbody ${i}\n`);
    const { maildir } = await writeFolder(root, bodies, () => true);
    const store = createMaildirStore({ root, fsync: false });
    try {
      const h = await (await store.user('tim')).open('INBOX');
      for (let uid = 1; uid <= 1100; uid++) await h.structure(uid);
      // The background append goes through the folder's queue: a sync waits for it.
      await h.sync();
      const size = (await stat(join(maildir, 'pigeonpost-index.log'))).size;
      const log = decodeRecords(await readFile(join(maildir, 'pigeonpost-index.log')));
      expect(log.stop).toBe('end');
      expect(log.records.filter((r) => r.t === 'S').length).toBeGreaterThanOrEqual(1024);
      expect(size).toBeGreaterThan(0);
      await h.close();
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
