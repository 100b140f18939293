// read() and POP3 reads: small files whole through the read worker or synchronously in bounded
// batches (readMode; read ahead in UID order), large files streamed in bounded chunks, and the
// same answers as the files hold, in both modes.
import { unlinkSync } from 'node:fs';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { FsWorker } from '../src/maildir/fs-worker.js';
import { createMaildirStore } from '../src/maildir/index.js';
import type { MaildirReadMode } from '../src/maildir/index.js';
import { useReadFixture } from './read-fixture.js';

const USER = 'reader';

function body(i: number, bytes = 900): Buffer {
  const head = `From: a${i}@example.net\r\nSubject: read ${i}\r\n\r\n`;
  let text = '';
  while (text.length < bytes) text += `line ${i} ${text.length}\r\n`;
  return Buffer.from(head + text, 'latin1');
}

async function collect(it: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of it) out.push(c);
  return out;
}
const joined = (chunks: readonly Uint8Array[]): Buffer => Buffer.concat(chunks);

describe.each<MaildirReadMode>(['worker', 'sync-batched'])('Maildir read path, readMode %s', (readMode) => {
  const { root, open, files, fill } = useReadFixture({ prefix: 'pp-read-', user: USER, readMode, body, afterEach: () => vi.restoreAllMocks() });
  /**
   * `count` messages of `size` bytes; a store with a large read-ahead reads messages 1 and 2 (checked),
   * then the files of messages 3 to `upTo` are removed before the next event-loop turn.
   */
  const readTwoThenRemove = async (count: number, size: number, upTo: number) => {
    const bodies = await fill(count, () => size);
    const store = open({ readAheadBytes: 10 * 1024 * 1024 });
    const h = await (await store.user(USER)).open('INBOX');
    const uids = h.messages().map((m) => m.uid);
    const paths = await files();
    expect(joined(await collect(h.read(uids[0]!)))).toEqual(bodies[0]);
    expect(joined(await collect(h.read(uids[1]!)))).toEqual(bodies[1]);
    for (const path of paths.slice(2, upTo)) unlinkSync(path);
    return { h, uids, bodies };
  };

  if (readMode === 'worker') {
    it('reads every message in UID order with the bytes of its file, each small one as one exact chunk, through few worker batches', async () => {
      const bodies = await fill(80);
      const reads = vi.spyOn(FsWorker.prototype, 'readSized');
      const store = open();
      const h = await (await store.user(USER)).open('INBOX');
      const uids = h.messages().map((m) => m.uid);
      expect(uids).toHaveLength(80);
      for (const [k, uid] of uids.entries()) {
        const chunks = await collect(h.read(uid));
        expect(chunks).toHaveLength(1);
        expect(Buffer.from(chunks[0]!)).toEqual(bodies[k]);
      }
      // One worker message per batch of files, not one per file: read ahead in order.
      const asked = reads.mock.calls.map((c) => c[0].length);
      expect(asked.reduce((a, b) => a + b, 0)).toBe(80);
      expect(reads.mock.calls.length).toBeLessThan(20);
      await h.close();
    });

    it('keeps what it reads ahead under readAheadBytes, and reads only what is asked for with readAheadBytes 0', async () => {
      await fill(40, () => 1000);
      const reads = vi.spyOn(FsWorker.prototype, 'readSized');
      const store = open({ readAheadBytes: 5000 });
      const h = await (await store.user(USER)).open('INBOX');
      const uids = h.messages().map((m) => m.uid);
      await collect(h.read(uids[0]!));
      await collect(h.read(uids[1]!));
      await new Promise((r) => setImmediate(r));
      const requested = reads.mock.calls.reduce((a, c) => a + c[0].length, 0);
      // Files are ~1.05 KB: the two asked for, plus at most 5000 bytes' worth ahead (one file may cross it).
      expect(requested).toBeGreaterThan(2);
      expect(requested).toBeLessThanOrEqual(2 + 5 + 1);
      await h.close();

      reads.mockClear();
      const none = open({ readAheadBytes: 0 });
      const h2 = await (await none.user(USER)).open('INBOX');
      for (const uid of uids.slice(0, 10)) await collect(h2.read(uid));
      expect(reads.mock.calls.map((c) => c[0].length)).toEqual(Array.from({ length: 10 }, () => 1));
      await h2.close();
    });
  }

  if (readMode === 'sync-batched') {
    it('reads every message in UID order with the bytes of its file, each small one as one exact chunk, without the read worker', async () => {
      const bodies = await fill(80);
      const reads = vi.spyOn(FsWorker.prototype, 'readSized');
      const store = open();
      const h = await (await store.user(USER)).open('INBOX');
      const uids = h.messages().map((m) => m.uid);
      for (const [k, uid] of uids.entries()) {
        const chunks = await collect(h.read(uid));
        expect(chunks).toHaveLength(1);
        expect(Buffer.from(chunks[0]!)).toEqual(bodies[k]);
      }
      expect(reads).not.toHaveBeenCalled();
      await h.close();
    });

    it('reads ahead at most 64 files in one event-loop turn, the rest in the next', async () => {
      // The second read, in order, asks for 128 files (BODY_READ_AHEAD_FILES). Both reads run in one
      // turn (no I/O between), which reads 64 files: messages 1 and 2, and 62 ahead. Removed before
      // the next turn, the files read already still come; the others are gone.
      const { h, uids, bodies } = await readTwoThenRemove(140, 500, 129);
      const outcome: string[] = [];
      for (const [k, uid] of uids.slice(2, 129).entries()) {
        outcome.push(
          await collect(h.read(uid)).then(
            (chunks) => (joined(chunks).equals(bodies[k + 2]!) ? 'read' : 'wrong bytes'),
            (error: { code?: string }) => error.code ?? 'error',
          ),
        );
      }
      expect(outcome).toEqual([...Array.from({ length: 62 }, () => 'read'), ...Array.from({ length: 65 }, () => 'ERR_STORE_NO_SUCH_MESSAGE')]);
      await h.close();
    });

    it('reads at most about 1 MiB of files in one event-loop turn', async () => {
      // 24 files of ~100 KB, read ahead from the second read; both reads run in one turn, which stops at
      // the file that crosses 1 MiB (the 11th): messages 1 and 2, and 9 ahead.
      const { h, uids, bodies } = await readTwoThenRemove(24, 100 * 1024, 24);
      let read = 0;
      for (const [k, uid] of uids.slice(2).entries()) {
        const ok = await collect(h.read(uid)).then((chunks) => joined(chunks).equals(bodies[k + 2]!), () => false);
        if (!ok) break;
        read++;
      }
      expect(read).toBe(9);
      await h.close();
    });

    it('refuses an unknown readMode', () => {
      expect(() => createMaildirStore({ root: root(), readMode: 'threads' as MaildirReadMode })).toThrow(/readMode/);
    });
  }

  it('serves byte ranges of small files and of streamed ones alike', async () => {
    const bodies = await fill(3);
    for (const options of [{}, { wholeReadBytes: 0 }]) {
      const store = open(options);
      const h = await (await store.user(USER)).open('INBOX');
      const uid = h.messages()[1]!.uid;
      const b = bodies[1]!;
      expect(joined(await collect(h.read(uid, { start: 10, end: 50 })))).toEqual(b.subarray(10, 50));
      expect(joined(await collect(h.read(uid, { start: 0, end: b.length + 100 })))).toEqual(b);
      expect(joined(await collect(h.read(uid, { start: b.length - 5, end: b.length + 5 })))).toEqual(b.subarray(b.length - 5));
      expect(await collect(h.read(uid, { start: b.length + 1, end: b.length + 9 }))).toEqual([]);
      expect(await collect(h.read(uid, { start: 7, end: 7 }))).toEqual([]);
      await h.close();
    }
  });

  it('streams a file larger than wholeReadBytes in chunks of at most 256 KiB', async () => {
    const bodies = await fill(2, (i) => (i === 2 ? 1100 * 1024 : 500));
    const store = open({ wholeReadBytes: 256 * 1024 });
    const h = await (await store.user(USER)).open('INBOX');
    const uid = h.messages()[1]!.uid;
    const chunks = await collect(h.read(uid));
    expect(chunks.length).toBeGreaterThanOrEqual(5);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(256 * 1024);
    expect(joined(chunks)).toEqual(bodies[1]);
    await h.close();
  });

  it('finds a file another process renamed, and says ERR_STORE_NO_SUCH_MESSAGE for one it removed', async () => {
    const bodies = await fill(4);
    const store = open();
    const h = await (await store.user(USER)).open('INBOX');
    const uids = h.messages().map((m) => m.uid);
    const paths = await files();
    // Another program moves message 2 to cur/ with a flag, and removes message 3.
    const dir = join(root(), USER, 'Maildir');
    const base2 = paths[1]!.split('/').pop()!.replace(/:2,.*$/, '');
    await rename(paths[1]!, join(dir, 'cur', `${base2}:2,S`));
    await unlink(paths[2]!);
    expect(joined(await collect(h.read(uids[1]!)))).toEqual(bodies[1]);
    await expect(collect(h.read(uids[2]!))).rejects.toMatchObject({ code: 'ERR_STORE_NO_SUCH_MESSAGE' });
    expect(joined(await collect(h.read(uids[3]!)))).toEqual(bodies[3]);
    expect(await readFile(join(dir, 'cur', `${base2}:2,S`))).toEqual(bodies[1]);
    await h.close();
  });

  it('gives a file’s real bytes when its ,S= size is wrong (longer or shorter)', async () => {
    await fill(2);
    const store = open();
    const h = await (await store.user(USER)).open('INBOX');
    const uids = h.messages().map((m) => m.uid);
    const paths = await files();
    const longer = Buffer.concat([body(1), Buffer.from('more bytes than the name says\r\n')]);
    const shorter = body(2).subarray(0, 100);
    await writeFile(paths[0]!, longer);
    await writeFile(paths[1]!, shorter);
    expect(joined(await collect(h.read(uids[0]!)))).toEqual(longer);
    expect(joined(await collect(h.read(uids[1]!)))).toEqual(shorter);
    await h.close();
  });

  it('reads a POP3 maildrop in order with the same bytes, and fails a message expunged meanwhile', async () => {
    const bodies = await fill(30);
    const store = open();
    const user = await store.user(USER);
    const drop = await user.openPop3();
    const h = await user.open('INBOX');
    // Read ahead by the first RETRs, then expunged by IMAP before its RETR.
    const got: Buffer[] = [];
    for (const m of drop.messages().slice(0, 3)) got.push(joined(await collect(drop.read(m.number))));
    expect(got).toEqual(bodies.slice(0, 3));
    await h.setFlags([drop.messages()[4]!.uid], { mode: 'add', flags: ['\\Deleted'] });
    await h.expunge();
    await expect(collect(drop.read(5))).rejects.toMatchObject({ code: 'ERR_STORE_NO_SUCH_MESSAGE' });
    for (const m of drop.messages().slice(5)) expect(joined(await collect(drop.read(m.number)))).toEqual(bodies[m.number - 1]);
    await h.close();
    await drop.release();
  });
});
