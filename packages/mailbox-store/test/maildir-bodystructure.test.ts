// The IMAP BODYSTRUCTURE cached in the index log after each structure: written by every encoder
// (deliver, the parse workers, compaction), read by bodyStructure() without parsing or formatting,
// and ignored (formatted from the structure again) when a record has none.
import { isAscii } from 'node:buffer';
import { mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { imapBodyStructure } from '@pigeonpost/mime';
import { describe, expect, it } from 'vitest';
import { createMaildirStore } from '../src/maildir/index.js';
import { BS_KEY, cachedBodyStructureAt, crc32, decodeRecords, encodeRecordAt, READ_MORE } from '../src/maildir/index-log.js';
import { computeStructure } from '../src/structure.js';

const bodies = [
  'Subject: =?UTF-8?Q?R=C3=A9union?=\r\nFrom: "Chloé" <c@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnaïve\r\n',
  'Subject: mixed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/octet-stream; name="a \\"q\\".bin"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n',
  'Subject: plain\r\n\r\nascii\r\n',
];

/** The index log with each line passed through `edit` (its checksum made again), and the checkpoint removed. */
async function editLog(maildir: string, edit: (json: string) => string): Promise<void> {
  const log = join(maildir, 'pigeonpost-index.log');
  const lines = (await readFile(log, 'latin1')).split('\n').filter((l) => l !== '');
  const out = lines.map((l) => {
    const json = edit(l.slice(9));
    return `${crc32(Buffer.from(json, 'latin1')).toString(16).padStart(8, '0')} ${json}\n`;
  });
  await writeFile(log, out.join(''), 'latin1');
  await unlink(join(maildir, 'pigeonpost-index.bin')).catch(() => undefined);
}

describe('cached BODYSTRUCTURE in the index log', () => {
  it('is written after the structure, found by the lazy decoder, and read back exactly', async () => {
    for (const body of bodies) {
      const st = await computeStructure(Buffer.from(body));
      const e = encodeRecordAt({ t: 'A', u: 3, m: 4, i: 'S', s: body.length, b: '1.M1P1.h', st });
      expect(e.data.includes(BS_KEY)).toBe(true);
      expect(isAscii(e.data)).toBe(true);
      const lazy = decodeRecords(e.data, { lazyStructures: true });
      expect(lazy.stop).toBe('end');
      expect(lazy.structures?.[0]).toEqual(e.structure);
      const [at, len] = e.structure!;
      expect(JSON.parse(e.data.toString('latin1', at, at + len))).toEqual(JSON.parse(JSON.stringify(st)));
      expect(cachedBodyStructureAt(e.data, at + len)).toBe(imapBodyStructure(st));
      // A reader parsing whole lines sees the same record and structure.
      expect(decodeRecords(e.data).records[0]).toMatchObject({ t: 'A', u: 3, st: JSON.parse(JSON.stringify(st)) });
      // Cut anywhere inside the string: "read further", never a wrong value.
      expect(cachedBodyStructureAt(e.data.subarray(0, e.data.length - 3), at + len)).toBe(READ_MORE);
    }
  });

  it('an older record without one decodes as before and gives none', async () => {
    const st = await computeStructure(Buffer.from(bodies[1]!));
    const json = `{"t":"S","u":2,"b":"x","st":${JSON.stringify(st)}}`;
    const line = Buffer.from(`${crc32(Buffer.from(json)).toString(16).padStart(8, '0')} ${json}\n`, 'latin1');
    const lazy = decodeRecords(line, { lazyStructures: true });
    expect(lazy.stop).toBe('end');
    const [at, len] = lazy.structures![0]!;
    expect(JSON.parse(line.toString('latin1', at, at + len))).toEqual(JSON.parse(JSON.stringify(st)));
    expect(cachedBodyStructureAt(line, at + len)).toBeUndefined();
  });

  for (const parseWorkers of [0, 2]) {
    it(`bodyStructure() reads the cached string and falls back to formatting (parse workers: ${parseWorkers})`, async () => {
      const root = await mkdtemp(join(tmpdir(), 'pp-bs-'));
      const maildir = join(root, 'tim', 'Maildir');
      const expected = await Promise.all(bodies.map(async (b) => imapBodyStructure(await computeStructure(Buffer.from(b)))));
      try {
        // Delivered (structure computed at delivery) and dropped in by another program (on first use).
        const store = createMaildirStore({ root, fsync: false, parseWorkers });
        await store.createUser('tim', { mailboxes: [] });
        const u = await store.user('tim');
        await store.deliver({ user: 'tim', body: Buffer.from(bodies[0]!) });
        await mkdir(join(maildir, 'new'), { recursive: true });
        for (const [i, b] of bodies.slice(1).entries()) await writeFile(join(maildir, 'new', `${1700000000 + i}.M${i}P9.other`), b);
        const h = await u.open('INBOX');
        expect(h.messages().map((m) => m.uid)).toEqual([1, 2, 3]);
        for (let uid = 1; uid <= 3; uid++) expect(await h.bodyStructure(uid)).toBe(expected[uid - 1]);
        await h.close();
        await store.close();

        // Every structure record in the log carries the string.
        const log = await readFile(join(maildir, 'pigeonpost-index.log'), 'latin1');
        const withSt = log.split('\n').filter((l) => l.includes(',"st":'));
        expect(withSt.length).toBe(3);
        for (const l of withSt) expect(l).toContain(',"bs1":"');

        // Another store reads them back (warm), the same.
        const again = createMaildirStore({ root, fsync: false, parseWorkers });
        const h2 = await (await again.user('tim')).open('INBOX');
        for (let uid = 1; uid <= 3; uid++) expect(await h2.bodyStructure(uid)).toBe(expected[uid - 1]);
        await h2.close();
        await again.close();

        // The string is what is served: changed in the log, the change shows; taken out, it is formatted again.
        await editLog(maildir, (json) =>
          json.includes('"u":1,') ? json.replace(/,"bs1":"(?:[^"\\]|\\.)*"\}$/, ',"bs1":"(\\"marker\\")"}') : json.includes('"u":2,') ? json.replace(/,"bs1":"(?:[^"\\]|\\.)*"\}$/, '}') : json,
        );
        const third = createMaildirStore({ root, fsync: false, parseWorkers });
        const h3 = await (await third.user('tim')).open('INBOX');
        expect(await h3.bodyStructure(1)).toBe('("marker")');
        expect(await h3.bodyStructure(2)).toBe(expected[1]);
        expect(await h3.bodyStructure(3)).toBe(expected[2]);
        expect(await h3.structure(2)).toEqual(await computeStructure(Buffer.from(bodies[1]!)));
        await h3.close();
        await third.close();
        expect((await readdir(join(maildir, 'cur'))).length).toBe(3);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }
});

describe('structures of another STRUCTURE_VERSION in the index log', () => {
  for (const readMode of ['sync-batched', 'worker'] as const) {
    it(`are computed again from the files and appended anew, their strings not served (readMode ${readMode})`, async () => {
      const root = await mkdtemp(join(tmpdir(), 'pp-bs-'));
      const maildir = join(root, 'tim', 'Maildir');
      const expected = await Promise.all(bodies.map(async (b) => imapBodyStructure(await computeStructure(Buffer.from(b)))));
      try {
        const setup = createMaildirStore({ root, fsync: false });
        await setup.createUser('tim', { mailboxes: [] });
        for (const body of bodies) await setup.deliver({ user: 'tim', body: Buffer.from(body) });
        await setup.close();
        // UIDs 1 and 3 written by a "build" of another version: the version changed, the string made a marker.
        await editLog(maildir, (json) =>
          /^\{"t":"A","u":[13],/.test(json) ? json.replace(',"st":{"version":1,', ',"st":{"version":0,').replace(/,"bs1":"(?:[^"\\]|\\.)*"\}$/, ',"bs1":"(\\"stale\\")"}') : json,
        );
        const log = join(maildir, 'pigeonpost-index.log');
        expect((await readFile(log, 'latin1')).match(/"version":0,/g)).toHaveLength(2);
        const store = createMaildirStore({ root, fsync: false, readMode });
        const h = await (await store.user('tim')).open('INBOX');
        expect(await h.bodyStructure(1)).toBe(expected[0]);
        expect(await h.structure(3)).toEqual(await computeStructure(Buffer.from(bodies[2]!)));
        expect(await h.bodyStructure(3)).toBe(expected[2]);
        expect(await h.bodyStructure(2)).toBe(expected[1]);
        await h.close();
        await store.close();
        // Appended anew (current version, with the string): a later store serves those.
        const records = decodeRecords(await readFile(log)).records;
        expect(records.filter((r) => r.t === 'S').map((r) => r.u).sort()).toEqual([1, 3]);
        const again = createMaildirStore({ root, fsync: false, readMode });
        const h2 = await (await again.user('tim')).open('INBOX');
        for (let uid = 1; uid <= 3; uid++) expect(await h2.bodyStructure(uid)).toBe(expected[uid - 1]);
        await h2.close();
        await again.close();
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }
});

describe('structure windows of several folders', () => {
  for (const readMode of ['sync-batched', 'worker'] as const) {
    it(`serve each folder its own strings when two folders read from their logs in turn (readMode ${readMode}: ${readMode === 'sync-batched' ? 'one window buffer for the thread' : 'a buffer per window'})`, async () => {
      const root = await mkdtemp(join(tmpdir(), 'pp-bs-'));
      const dirs = { INBOX: join(root, 'tim', 'Maildir'), Sent: join(root, 'tim', 'Maildir', '.Sent') };
      try {
        const setup = createMaildirStore({ root, fsync: false });
        await setup.createUser('tim');
        for (const mailbox of ['INBOX', 'Sent'] as const) {
          for (const body of [...bodies, ...bodies]) await setup.deliver({ user: 'tim', mailbox, body: Buffer.from(body) });
        }
        await setup.close();
        // Each record's string made a marker of its folder and UID: what is served can only come from that record.
        for (const [mailbox, dir] of Object.entries(dirs)) {
          await editLog(dir, (json) => json.replace(/^(\{"t":"[AS]","u":(\d+),.*,"bs1":)"(?:[^"\\]|\\.)*"\}$/, (_all, head: string, uid: string) => `${head}"(\\"${mailbox}-${uid}\\")"}`));
        }
        const store = createMaildirStore({ root, fsync: false, readMode });
        try {
          const u = await store.user('tim');
          const inbox = await u.open('INBOX');
          const sent = await u.open('Sent');
          const uids = inbox.messages().map((m) => m.uid);
          expect(uids).toEqual([1, 2, 3, 4, 5, 6]);
          expect(sent.messages().map((m) => m.uid)).toEqual(uids);
          // In turn, one at a time: each folder's window is read from a point in its log that the other's reading passes.
          const turns: string[] = [];
          for (const uid of uids) turns.push(await inbox.bodyStructure(uid), await sent.bodyStructure(uid));
          expect(turns).toEqual(uids.flatMap((uid) => [`("INBOX-${uid}")`, `("Sent-${uid}")`]));
          // All at once, from the end backwards (a window per request), the folders interleaved.
          const all = await Promise.all([...uids].reverse().flatMap((uid) => [inbox.bodyStructure(uid), sent.bodyStructure(uid), inbox.bodyStructure(1)]));
          expect(all).toEqual([...uids].reverse().flatMap((uid) => [`("INBOX-${uid}")`, `("Sent-${uid}")`, '("INBOX-1")']));
          await inbox.close();
          await sent.close();
        } finally {
          await store.close();
        }
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    });
  }
});

describe('first use through the parse workers', () => {
  it('serves each file\'s own BODYSTRUCTURE and structure, read by its ,S= size into a reused buffer, and whole when the size lies', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-bs-'));
    const maildir = join(root, 'tim', 'Maildir');
    // More files than one parse batch, of varied sizes (a longer file read after a shorter one and the other way round).
    const files = Array.from({ length: 300 }, (_, i) => {
      const body = `${bodies[i % bodies.length]!.replace('\r\n\r\n', `\r\nX-N: ${i}\r\n\r\n`)}${'line of text\r\n'.repeat((i * 7) % 40)}`;
      const bytes = Buffer.from(body);
      // Every 50th from the 7th says it is shorter than it is (read whole), from the 13th longer (cut at its end).
      const named = i % 50 === 7 ? bytes.length - 5 : i % 50 === 13 ? bytes.length + 9 : bytes.length;
      return { name: `${1700000000 + i}.M${i}P9.other,S=${named}:2,S`, bytes };
    });
    try {
      const setup = createMaildirStore({ root, fsync: false });
      await setup.createUser('tim', { mailboxes: [] });
      await setup.close();
      for (const f of files) await writeFile(join(maildir, 'cur', f.name), f.bytes);
      const store = createMaildirStore({ root, fsync: false, parseWorkers: 2 });
      const h = await (await store.user('tim')).open('INBOX');
      const uids = h.messages().map((m) => m.uid);
      expect(uids.length).toBe(files.length);
      const expected = await Promise.all(files.map((f) => computeStructure(f.bytes)));
      // Asked for in order (FETCH 1:* BODYSTRUCTURE), with structure() of a few asked at the same time.
      const got = await Promise.all(uids.map(async (uid, k) => {
        const [bs, st] = await Promise.all([h.bodyStructure(uid), k % 37 === 0 ? h.structure(uid) : Promise.resolve(undefined)]);
        if (st !== undefined) expect(st).toEqual(expected[k]);
        return bs;
      }));
      expect(got).toEqual(expected.map((st) => imapBodyStructure(st)));
      for (const k of [7, 13, 57, 63, 299]) expect(await h.structure(uids[k]!)).toEqual(expected[k]);
      await h.close();
      await store.close();
      // Kept in the index log: a new store serves the same strings without the files' help.
      const again = createMaildirStore({ root, fsync: false, parseWorkers: 2 });
      const h2 = await (await again.user('tim')).open('INBOX');
      for (const [k, uid] of uids.entries()) expect(await h2.bodyStructure(uid)).toBe(got[k]);
      await h2.close();
      await again.close();
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('deliver() parses the structure from the chunks it writes', () => {
  it('gives the structure of the stored bytes for a source in small chunks that reuses its buffer, and stamps INTERNALDATE', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-bs-'));
    const body = Buffer.from(bodies[1]!);
    // 7-byte chunks (lines and boundaries cut anywhere), all through one buffer overwritten after each chunk is taken.
    async function* chunks(): AsyncGenerator<Uint8Array> {
      const shared = Buffer.alloc(7);
      for (let at = 0; at < body.length; at += 7) {
        const n = body.copy(shared, 0, at, Math.min(at + 7, body.length));
        yield shared.subarray(0, n);
        shared.fill(0x58);
        await Promise.resolve();
      }
    }
    const store = createMaildirStore({ root, fsync: true });
    try {
      await store.createUser('tim', { mailboxes: [] });
      const date = Date.UTC(2020, 1, 3, 4, 5, 6);
      await store.deliver({ user: 'tim', body: chunks(), internalDate: date });
      const h = await (await store.user('tim')).open('INBOX');
      const stored: Buffer[] = [];
      for await (const c of h.read(1)) stored.push(Buffer.from(c));
      expect(Buffer.concat(stored)).toEqual(body);
      const expected = await computeStructure(body);
      expect(await h.structure(1)).toEqual(expected);
      expect(await h.bodyStructure(1)).toBe(imapBodyStructure(expected));
      expect(await h.internalDates([1])).toEqual([date]);
      await h.close();
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
