/**
 * Postfix's own delivery agents write into Maildirs that our store then reads:
 *  - virtual(8), through `virtual_mailbox_maps` (`tim/Maildir/`): how Postfix
 *    delivers for IMAP servers' mailboxes;
 *  - local(8), through an alias to a Maildir path (`/…/ann/Maildir/`): how it
 *    delivers to `~/Maildir/`.
 * Both run as `nobody` (a mail uid; the test, and so our store, runs as root:
 * `postfix start` needs it). Mail goes in over SMTP to Postfix's smtpd (CRLF,
 * a dot-stuffed line, 8-bit text) and through its sendmail (bare LF). Postfix
 * names its files `<sec>.V<dev>I<ino>M<usec>.<host>`, with no `,S=` or `,W=`,
 * in new/. Our store sees each once, with the bytes Postfix wrote, an
 * RFC822.SIZE counted with CRLF, UIDs in delivery order (Dovecot's order for
 * new files, not the names' string order), moves them to cur/ as Dovecot
 * does, lists them in dovecot-uidlist, and finds a message Postfix delivers
 * while the folder is open at its next sync.
 */
import { Buffer } from 'node:buffer';
import { chmod, chown, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectSmtp, postfixAvailable, startPostfix } from '@pigeonpost/testkit';
import type { RunningPostfix, SmtpReply } from '@pigeonpost/testkit';
import { createMaildirStore } from '../../src/maildir/index.js';
import type { MailboxHandle } from '../../src/types.js';

const peer = postfixAvailable();
if (!peer.available) console.warn(`skipping Postfix Maildir interop tests: ${peer.reason}`);

const NOBODY = 65534;

/** One SMTP transaction to Postfix's smtpd: every reply must be 2xx/3xx; `data` goes as it is (CRLF, dot-stuffed by the caller). */
async function smtpSend(port: number, from: string, to: string, data: string, mailParams = ''): Promise<void> {
  await using client = await connectSmtp({ port });
  const ok = (r: SmtpReply): void => {
    if (r.code >= 400) throw new Error(`SMTP: ${r.raw.trim()}`);
  };
  for (const command of ['EHLO client.test', `MAIL FROM:<${from}>${mailParams}`, `RCPT TO:<${to}>`, 'DATA']) ok(await client.command(command));
  ok(await client.send(Buffer.from(`${data}.\r\n`, 'utf8')));
}

/** Wait until `dir` holds `count` files; their names. */
async function filesIn(dir: string, count: number, timeoutMs = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = await readdir(dir).catch(() => [] as string[]);
    if (names.length >= count) return names;
    if (Date.now() > deadline) throw new Error(`${dir}: ${names.length} files, not ${count}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function bytesOf(h: MailboxHandle, uid: number): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of h.read(uid)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** RFC822.SIZE of stored bytes: each bare LF counts as CRLF. */
const crlfSize = (b: Buffer): number => b.length + (b.toString('latin1').match(/(?<!\r)\n/g)?.length ?? 0);

describe.skipIf(!peer.available)('Postfix delivers into a Maildir, our store reads it', () => {
  let root: string;
  let postfix: RunningPostfix | undefined;
  /** Each file Postfix wrote, by base name, as it was in new/ (read before our store moved it). */
  const written = new Map<string, Buffer>();

  /** Deliver one message and wait for its file: the next one is written after it. */
  async function deliverAndWait(dir: string, send: () => Promise<void>): Promise<void> {
    const before = new Set(await readdir(join(dir, 'new')).catch(() => [] as string[]));
    await send();
    const names = await filesIn(join(dir, 'new'), before.size + 1);
    for (const name of names) if (!before.has(name)) written.set(name, await readFile(join(dir, 'new', name)));
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'pp-pfmd-'));
    // The mail root is the mail uid's: Postfix's agents make the Maildirs in it.
    await chown(root, NOBODY, NOBODY);
    await chmod(root, 0o755);
    postfix = await startPostfix({
      mydestination: ['local.test'],
      mainCf: [
        'virtual_mailbox_domains = virtual.test',
        `virtual_mailbox_base = ${root}`,
        'virtual_mailbox_maps = inline:{ tim@virtual.test=tim/Maildir/ }',
        `virtual_uid_maps = static:${NOBODY}`,
        `virtual_gid_maps = static:${NOBODY}`,
        'virtual_transport = virtual',
        'local_transport = local',
        `alias_maps = inline:{ ann=${root}/ann/Maildir/ }`,
        'default_privs = nobody',
        'smtputf8_enable = no',
      ],
      masterCf: ['virtual unix - n n - - virtual', 'local unix - n n - - local'],
    });
  }, 60_000);

  afterAll(async () => {
    await postfix?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('virtual(8): the messages in delivery order, byte for byte, RFC822.SIZE with CRLF, moved to cur/ and listed in dovecot-uidlist; a later delivery is found by sync()', async () => {
    const pf = postfix!;
    const maildir = join(root, 'tim', 'Maildir');
    await deliverAndWait(maildir, () => smtpSend(pf.ports.smtp, 'sender@client.test', 'tim@virtual.test', 'Subject: one\r\nFrom: <sender@client.test>\r\n\r\nfirst\r\n..a line that began with a dot\r\n'));
    await deliverAndWait(maildir, () => smtpSend(pf.ports.smtp, 'sender@client.test', 'tim@virtual.test', 'Subject: two\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln\r\n', ' BODY=8BITMIME'));
    await deliverAndWait(maildir, () => pf.sendmail('sender@client.test', ['tim@virtual.test'], 'Subject: three\nFrom: <sender@client.test>\n\nthird, bare LF\n'));
    expect(written.size).toBe(3);
    // Postfix's names: no size fields, no info.
    for (const name of written.keys()) expect(name).toMatch(/^\d+\.V[0-9a-fA-F]+I[0-9a-fA-F]+M\d+\.[^,:]+$/);
    expect(pf.logs()).toMatch(/to=<tim@virtual\.test>.*status=sent \(delivered to maildir\)/);

    const store = createMaildirStore({ root, fsync: true });
    try {
      const h = await (await store.user('tim')).open('INBOX');
      const messages = h.messages();
      expect(messages.map((m) => m.uid)).toEqual([1, 2, 3]);
      const bodies = await Promise.all(messages.map((m) => bytesOf(h, m.uid)));
      // Delivery order, and the bytes Postfix wrote (its Return-Path, Delivered-To and Received first).
      expect(bodies.map((b) => /^Subject: (\w+)$/m.exec(b.toString('utf8'))![1])).toEqual(['one', 'two', 'three']);
      const onDisk = [...written.values()];
      for (const body of bodies) expect(onDisk.some((b) => b.equals(body))).toBe(true);
      expect(bodies[0]!.toString('latin1')).toMatch(/^Return-Path: <sender@client\.test>\n/);
      expect(bodies[0]!.toString('latin1')).toContain('\nDelivered-To: tim@virtual.test\n');
      // Stored with bare LF; the dot-stuffing undone; 8-bit text as sent.
      expect(bodies[0]!.includes('\r')).toBe(false);
      expect(bodies[0]!.toString('latin1')).toContain('\nfirst\n.a line that began with a dot\n');
      expect(bodies[1]!.toString('utf8')).toContain('Grüße aus Köln\n');
      for (const [k, m] of messages.entries()) {
        expect(m.size).toBe(crlfSize(bodies[k]!));
        expect(m.flags).toEqual([]);
      }
      // Moved to cur/ with an empty info, as Dovecot does; new/ empty; the UIDs in dovecot-uidlist.
      expect(await readdir(join(maildir, 'new'))).toEqual([]);
      expect((await readdir(join(maildir, 'cur'))).sort()).toEqual([...written.keys()].map((b) => `${b}:2,`).sort());
      const uidlist = (await readFile(join(maildir, 'dovecot-uidlist'), 'latin1')).trim().split('\n');
      expect(uidlist[0]).toMatch(/^3 V\d+ N4 G[0-9a-f]+$/);
      const listed = uidlist.slice(1).map((l) => /^(\d+) .*:(\S+)$/.exec(l)!);
      expect(listed.map((m) => Number(m[1]))).toEqual([1, 2, 3]);
      expect(new Set(listed.map((m) => m[2]))).toEqual(new Set(written.keys()));

      // Our change, then another delivery while the folder is open: found by the next sync, UID 4.
      await h.setFlags([1], { mode: 'add', flags: ['\\Seen'] });
      await deliverAndWait(maildir, () => smtpSend(pf.ports.smtp, 'sender@client.test', 'tim@virtual.test', 'Subject: four\r\n\r\nlate\r\n'));
      const changes = await h.sync();
      expect(changes.added.map((m) => m.uid)).toEqual([4]);
      expect(/^Subject: (\w+)$/m.exec((await bytesOf(h, 4)).toString('latin1'))![1]).toBe('four');
      expect(h.messages().find((m) => m.uid === 1)!.flags).toEqual(['\\Seen']);
      await h.close();
    } finally {
      await store.close();
    }
  }, 60_000);

  it('local(8): a Maildir an alias points at, read the same way', async () => {
    const pf = postfix!;
    const maildir = join(root, 'ann', 'Maildir');
    await deliverAndWait(maildir, () => smtpSend(pf.ports.smtp, 'sender@client.test', 'ann@local.test', 'Subject: alpha\r\n\r\nhello ann\r\n'));
    await deliverAndWait(maildir, () => pf.sendmail('sender@client.test', ['ann@local.test'], 'Subject: beta\n\nhello again\n'));
    expect(pf.logs()).toMatch(/to=<ann@local\.test>.*status=sent \(delivered to maildir\)/);
    const store = createMaildirStore({ root, fsync: true });
    try {
      const h = await (await store.user('ann')).open('INBOX');
      expect(h.messages().map((m) => m.uid)).toEqual([1, 2]);
      const bodies = await Promise.all(h.messages().map((m) => bytesOf(h, m.uid)));
      expect(bodies.map((b) => /^Subject: (\w+)$/m.exec(b.toString('latin1'))![1])).toEqual(['alpha', 'beta']);
      for (const body of bodies) {
        expect(body.toString('latin1')).toContain('\nDelivered-To: ann@local.test\n');
        expect([...written.values()].some((b) => b.equals(body))).toBe(true);
      }
      expect(h.messages().map((m) => m.size)).toEqual(bodies.map(crlfSize));
      await h.close();
    } finally {
      await store.close();
    }
  }, 60_000);
});
