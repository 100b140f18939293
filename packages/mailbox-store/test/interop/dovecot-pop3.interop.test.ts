/**
 * Our Maildir store's POP3 maildrop against a real Dovecot 2.3's POP3 on the
 * same Maildir (written by our store): the UIDL of every message must be
 * byte-for-byte what Dovecot's default `pop3_uidl_format = %08Xu%08Xv`
 * prints, case included, so a POP3 client moving between the two servers
 * downloads nothing twice. Messages up to UID 12 make sure hex letters
 * (a–c) appear; LIST sizes and RETR bytes are compared too.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectPop3, dovecotAvailable, startDovecot } from '@pigeonpost/testkit';
import type { RunningDovecot } from '@pigeonpost/testkit';
import { createMaildirStore } from '../../src/maildir/index.js';

const peer = dovecotAvailable();
if (!peer.available) {
  if (process.env.CI === 'true') throw new Error(`Dovecot is required under CI: ${peer.reason}`);
  console.warn(`skipping Dovecot POP3 interop tests: ${peer.reason}`);
}

const USER = { name: 'popper', password: 'popper-password' };
const COUNT = 12;

function message(i: number): Buffer {
  const eol = i % 2 === 0 ? '\r\n' : '\n';
  const lines = [`From: a${i}@example.net`, 'To: popper@example.org', `Subject: message ${i}`, '', `body of ${i}`, '.a line starting with a dot', ''];
  return Buffer.from(lines.join(eol), 'latin1');
}

/** `n uidl` lines of a UIDL reply, as [n, uidl] pairs. */
function uidlLines(body: Buffer): [number, string][] {
  return body
    .toString('latin1')
    .split('\r\n')
    .filter((l) => l !== '')
    .map((l) => {
      const [n, u] = l.split(' ');
      return [Number(n), u!];
    });
}

describe.skipIf(!peer.available)('POP3 maildrop against Dovecot on the same Maildir', () => {
  let dovecot: RunningDovecot;

  beforeAll(async () => {
    dovecot = await startDovecot({ users: [USER], protocols: ['pop3'], mailFsync: 'never' });
    await using store = createMaildirStore({ root: dovecot.mailRoot, fsync: false });
    await store.createUser(USER.name, { mailboxes: [] });
    for (let i = 1; i <= COUNT; i++) await store.deliver({ user: USER.name, body: message(i), flags: i % 3 === 0 ? ['\\Seen'] : [] });
    await dovecot.chownForDovecot(join(dovecot.mailRoot, USER.name));
  }, 30_000);

  afterAll(async () => {
    await dovecot?.stop();
  });

  it('prints exactly the UIDLs Dovecot prints (lower-case hex), with the same sizes and bytes', async () => {
    // Ours first (a fresh store on the same root; released without changes).
    const ours = await (async () => {
      await using store = createMaildirStore({ root: dovecot.mailRoot, fsync: false });
      const user = await store.user(USER.name);
      const maildrop = await user.openPop3();
      try {
        const list = maildrop.messages();
        const bodies: Buffer[] = [];
        for (const m of list) {
          const chunks: Uint8Array[] = [];
          for await (const c of maildrop.read(m.number)) chunks.push(c);
          bodies.push(Buffer.concat(chunks));
        }
        return { uidl: list.map((m): [number, string] => [m.number, m.uidl]), sizes: list.map((m) => m.size), bodies };
      } finally {
        await maildrop.release();
      }
    })();
    await dovecot.chownForDovecot(join(dovecot.mailRoot, USER.name));

    await using pop = await connectPop3({ port: dovecot.ports.pop3 });
    await pop.login(USER.name, USER.password);
    const uidl = await pop.command('UIDL', { multiline: true });
    expect(uidl.ok).toBe(true);
    const theirs = uidlLines(uidl.body);
    const list = await pop.command('LIST', { multiline: true });
    const sizes = uidlLines(list.body).map(([, s]) => Number(s));
    const bodies: Buffer[] = [];
    for (let n = 1; n <= theirs.length; n++) {
      const r = await pop.command(`RETR ${n}`, { multiline: true });
      expect(r.ok).toBe(true);
      bodies.push(r.body);
    }
    await pop.command('RSET');
    await pop.quit();

    expect(theirs).toHaveLength(COUNT);
    // Exactly equal, case included: a client keyed on UIDL would re-download everything otherwise.
    expect(ours.uidl).toEqual(theirs);
    expect(theirs.some(([, u]) => /[a-f]/.test(u))).toBe(true);
    expect(sizes).toEqual(ours.sizes);
    // Dovecot sends every line with CRLF; ours stores the bytes as delivered (the wire layer adds CRs).
    expect(bodies.map((b) => b.toString('latin1'))).toEqual(ours.bodies.map((b) => b.toString('latin1').replace(/\r?\n/g, '\r\n')));
  });
});
