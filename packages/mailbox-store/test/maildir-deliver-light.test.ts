// A delivery's commit does not list cur/ and new/ when the uidlist and the index are as this store left
// them (the UID and the log's end are known); when another writer changed either, it syncs fully.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createMaildirStore } from '../src/maildir/index.js';

const mail = (s: string): Buffer => Buffer.from(`Subject: ${s}\r\n\r\n${s}\r\n`);

async function subjects(root: string): Promise<Map<number, string>> {
  const store = createMaildirStore({ root, fsync: false });
  try {
    const h = await (await store.user('tim')).open('INBOX');
    const out = new Map<number, string>();
    for (const m of h.messages()) {
      const chunks: Buffer[] = [];
      for await (const c of h.read(m.uid)) chunks.push(Buffer.from(c));
      out.set(m.uid, /Subject: (\S+)/.exec(Buffer.concat(chunks).toString())![1]!);
    }
    await h.close();
    return out;
  } finally {
    await store.close();
  }
}

describe('deliver() without a directory scan', () => {
  it('leaves a file another program dropped in new/ to the next full sync, which numbers it after the deliveries', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-light-'));
    const maildir = join(root, 'tim', 'Maildir');
    const store = createMaildirStore({ root, fsync: true });
    try {
      await store.createUser('tim', { mailboxes: [] });
      expect((await store.deliver({ user: 'tim', body: mail('first') })).uid).toBe(1);
      // procmail-style: a file in new/, no uidlist entry.
      await writeFile(join(maildir, 'new', '1700000000.M1P1.procmail'), mail('dropped'));
      expect((await store.deliver({ user: 'tim', body: mail('second') })).uid).toBe(2);
      // The commit did not scan: the dropped file is still in new/ and has no UID yet.
      expect(await readdir(join(maildir, 'new'))).toContain('1700000000.M1P1.procmail');
      expect(await subjects(root)).toEqual(
        new Map([
          [1, 'first'],
          [2, 'second'],
          [3, 'dropped'],
        ]),
      );
    } finally {
      await store.close();
      await rm(root, { recursive: true, force: true });
    }
  });

  it('syncs fully when another store changed the uidlist meanwhile: no UID given twice', async () => {
    const root = await mkdtemp(join(tmpdir(), 'pp-light-'));
    const a = createMaildirStore({ root, fsync: true });
    const b = createMaildirStore({ root, fsync: true });
    try {
      await a.createUser('tim', { mailboxes: [] });
      expect((await a.deliver({ user: 'tim', body: mail('a1') })).uid).toBe(1);
      expect((await b.deliver({ user: 'tim', body: mail('b1') })).uid).toBe(2);
      expect((await a.deliver({ user: 'tim', body: mail('a2') })).uid).toBe(3);
      expect((await b.deliver({ user: 'tim', body: mail('b2') })).uid).toBe(4);
      expect(await subjects(root)).toEqual(
        new Map([
          [1, 'a1'],
          [2, 'b1'],
          [3, 'a2'],
          [4, 'b2'],
        ]),
      );
    } finally {
      await a.close();
      await b.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
