import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMaildirStore } from '../src/maildir/index.js';
import type { MailStore } from '../src/types.js';

async function collect(it: AsyncIterable<Uint8Array>): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString('latin1');
}

describe('maildir smoke', () => {
  let root: string;
  let store: MailStore;
  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'pp-maildir-'));
    store = createMaildirStore({ root, fsync: false });
  });
  afterEach(async () => {
    await store.close();
    await rm(root, { recursive: true, force: true });
  });

  it('delivers, flags, copies, expunges', async () => {
    await store.createUser('alice');
    const r = await store.deliver({ user: 'alice', body: Buffer.from('Subject: hi\n\nbody\n') });
    expect(r.uid).toBe(1);
    const u = await store.user('alice');
    const list = await u.list();
    expect(list.map((e) => e.name)).toEqual(['INBOX', 'Archive', 'Drafts', 'Junk', 'Sent', 'Trash']);
    const h = await u.open('INBOX');
    expect(h.messages()).toHaveLength(1);
    expect(h.messages()[0]!.size).toBe(21);
    expect(await collect(h.read(1))).toBe('Subject: hi\n\nbody\n');
    const fr = await h.setFlags([1], { mode: 'add', flags: ['\\Seen', '$Label1'] });
    expect(fr.updated[0]!.flags).toEqual(['\\Seen', '$Label1']);
    const cur = await readdir(join(root, 'alice/Maildir/cur'));
    expect(cur[0]).toMatch(/,S=18,W=21:2,Sa$/);
    expect(await readFile(join(root, 'alice/Maildir/dovecot-keywords'), 'utf8')).toBe('0 $Label1\n');
    const c = await h.copy([1], 'Trash');
    expect(c.mapping).toEqual([[1, 1]]);
    await h.setFlags([1], { mode: 'add', flags: ['\\Deleted'] });
    expect(await h.expunge()).toEqual([1]);
    const s = await u.status('INBOX');
    expect(s.messages).toBe(0);
    const t = await u.open('Trash');
    expect(t.messages()[0]!.flags).toEqual(['\\Seen', '$Label1']);
    expect(await h.vanishedSince(1)).toEqual([1]);
    const uidlist = await readFile(join(root, 'alice/Maildir/dovecot-uidlist'), 'utf8');
    expect(uidlist).toMatch(/^3 V\d+ N2 G[0-9a-f]{32}\n$/);
    await u.create('Été/Sub');
    expect((await readdir(join(root, 'alice/Maildir'))).filter((n) => n.startsWith('.'))).toContain('.&AMk-t&AOk-.Sub');
    await expect(u.create('a.b')).rejects.toMatchObject({ code: 'ERR_STORE_INVALID_NAME' });
    const p = await u.openPop3();
    await expect(u.openPop3()).rejects.toMatchObject({ code: 'ERR_STORE_IN_USE' });
    await p.release();
  });
});
