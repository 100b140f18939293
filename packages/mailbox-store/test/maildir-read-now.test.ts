// readFileNow / the POP3 maildrop's readNow: a small message's whole bytes without waiting when
// they are in memory (read ahead, or read here in 'sync-batched' mode within the turn's budget),
// undefined otherwise — then read() answers, and reports what is gone.
import { rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MaildirReadMode, MaildirStoreOptions } from '../src/maildir/index.js';
import type { Pop3Maildrop } from '../src/types.js';
import { useReadFixture } from './read-fixture.js';

const USER = 'now';

function body(i: number, bytes = 900): Buffer {
  const head = `From: a${i}@example.net\nSubject: now ${i}\n\n`;
  let text = '';
  while (text.length < bytes) text += `.line ${i} ${text.length}\n`;
  return Buffer.from(head + text, 'latin1');
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const out: Uint8Array[] = [];
  for await (const c of source) out.push(c);
  return Buffer.concat(out);
}

type WithReadNow = Pop3Maildrop & { readNow(number: number): Uint8Array | undefined };
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe.each<MaildirReadMode>(['worker', 'sync-batched'])('POP3 readNow, readMode %s', (readMode) => {
  const { root, open, files, fill } = useReadFixture({ prefix: 'pp-read-now-', user: USER, readMode, body });
  const openDrop = async (options: Partial<MaildirStoreOptions> = {}): Promise<WithReadNow> => {
    const drop = (await (await open(options).user(USER)).openPop3()) as WithReadNow;
    expect(typeof drop.readNow).toBe('function');
    return drop;
  };

  it('gives every message the bytes of its file, from memory or else through read(), all intact at the end', async () => {
    const bodies = await fill(300, (i) => 500 + ((i * 7919) % 4000));
    const drop = await openDrop();
    const got: Uint8Array[] = [];
    let fromMemory = 0;
    for (const m of drop.messages()) {
      const now = drop.readNow(m.number);
      if (now !== undefined) fromMemory++;
      // readNow's bytes are valid until the next readNow: copied at once. read()'s are kept as they are.
      got.push(now !== undefined ? Buffer.from(now) : await collect(drop.read(m.number)));
    }
    // Every buffer read() handed out is still right after all the later reads.
    expect(got).toEqual(bodies);
    expect(fromMemory).toBeGreaterThan(150);
    await drop.release();
  });

  if (readMode === 'sync-batched') {
    it('reads at most 64 files in one event-loop turn, the next ones in the next turn', async () => {
      await fill(100);
      const drop = await openDrop();
      await nextTurn();
      let n = 1;
      while (drop.readNow(n) !== undefined) n++;
      expect(n - 1).toBe(64);
      await nextTurn();
      expect(drop.readNow(n)).toBeDefined();
      await drop.release();
    });
  }

  it('answers nothing for a deleted mark, a bad number, a large file or a released maildrop; read() answers those it can', async () => {
    const bodies = await fill(4, (i) => (i === 4 ? 5000 : 300));
    const drop = await openDrop({ wholeReadBytes: 2000 });
    drop.markDeleted(1);
    for (const n of [1, 0, 5, 1.5]) expect(drop.readNow(n)).toBeUndefined();
    for (let i = 0; i < 3; i++) {
      expect(drop.readNow(4)).toBeUndefined();
      await nextTurn();
    }
    expect(await collect(drop.read(4))).toEqual(bodies[3]);
    await drop.release();
    expect(drop.readNow(2)).toBeUndefined();
  });

  it('leaves a renamed file and a removed one to read(), which finds the first and reports the second', async () => {
    const bodies = await fill(3);
    const drop = await openDrop();
    const paths = await files();
    const dir = join(root(), USER, 'Maildir');
    const base2 = paths[1]!.split('/').pop()!.replace(/:2,.*$/, '');
    await rename(paths[1]!, join(dir, 'cur', `${base2}:2,S`));
    await unlink(paths[2]!);
    await nextTurn();
    expect(drop.readNow(2)).toBeUndefined();
    expect(await collect(drop.read(2))).toEqual(bodies[1]);
    expect(drop.readNow(3)).toBeUndefined();
    await expect(collect(drop.read(3))).rejects.toMatchObject({ code: 'ERR_STORE_NO_SUCH_MESSAGE' });
    await drop.release();
  });

  it('gives a file’s real bytes when its ,S= size is wrong (longer: not from memory; shorter: cut to the file)', async () => {
    await fill(2);
    const paths = await files();
    const longer = Buffer.concat([body(1), Buffer.from('more bytes than the name says\n')]);
    const shorter = body(2).subarray(0, 100);
    await writeFile(paths[0]!, longer);
    await writeFile(paths[1]!, shorter);
    const drop = await openDrop();
    await nextTurn();
    expect(drop.readNow(1)).toBeUndefined();
    expect(await collect(drop.read(1))).toEqual(longer);
    const second = drop.readNow(2) ?? (await collect(drop.read(2)));
    expect(Buffer.from(second)).toEqual(shorter);
    await drop.release();
  });
});
