/**
 * The server over `@pigeonpost/mailbox-store` through `mailStoreBackend`:
 * Maildir on disk (UIDLs stable across sessions and restarts, the maildrop
 * lock across store instances, a stale lock from a dead process, a message
 * expunged over IMAP meanwhile, \Seen on RETR), and the Node listener's
 * per-IP connection limit.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMaildirStore } from '@pigeonpost/mailbox-store';
import type { MailStore } from '@pigeonpost/mailbox-store';
import { encodeData } from '@pigeonpost/wire';
import { mailStoreBackend } from '../../src/server/mail-store.js';
import type { Pop3MailStore, StorePop3Maildrop } from '../../src/server/mail-store.js';
import { createPop3Server } from '../../src/node/server.js';
import { createPop3TestSession } from '../../src/testing/index.js';

const LOGIN = 'USER alice\r\nPASS alice-password\r\n';
const users = { alice: 'alice-password' };
let root: string;
const stores: MailStore[] = [];

function openStore(): MailStore {
  const store = createMaildirStore({ root, fsync: false });
  stores.push(store);
  return store;
}

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'pop3-store-'));
  const store = openStore();
  await store.createUser('alice');
  for (let i = 1; i <= 3; i++) await store.deliver({ user: 'alice', body: Buffer.from(`Subject: ${i}\n\nbody ${i}\n`) });
});

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close().catch(() => undefined);
  rmSync(root, { recursive: true, force: true });
});

const session = (store: MailStore) => createPop3TestSession({ backend: mailStoreBackend({ store, users }), allowInsecureAuth: true });

describe('Maildir through mailStoreBackend', () => {
  it('UIDLs are unique, printable, and the same after a restart', async () => {
    const first = session(stores[0]!);
    await first.send(LOGIN);
    const uidl = await first.send('UIDL\r\n');
    const ids = uidl.split('\r\n').slice(1, -2).map((l) => l.split(' ')[1]!);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    for (const id of ids) expect(id).toMatch(/^[\x21-\x7e]{1,70}$/);
    await first.send('QUIT\r\n');
    await stores[0]!.close();
    const restarted = session(openStore());
    await restarted.send(LOGIN);
    expect(await restarted.send('UIDL\r\n')).toBe(uidl);
  });

  it('sizes are exact CRLF octets of what RETR sends, and RETR sets \\Seen at QUIT', async () => {
    const t = session(stores[0]!);
    await t.send(LOGIN);
    expect(await t.send('LIST 1\r\n')).toBe('+OK 1 22\r\n');
    expect(await t.send('RETR 1\r\n')).toBe('+OK 22 octets\r\nSubject: 1\r\n\r\nbody 1\r\n.\r\n');
    await t.send('QUIT\r\n');
    const box = await (await stores[0]!.user('alice')).open('INBOX');
    expect(box.messages().map((m) => m.flags.includes('\\Seen'))).toEqual([true, false, false]);
    await box.close();
  });

  it('a second session, even through another store instance (process), gets -ERR [IN-USE]', async () => {
    const a = session(stores[0]!);
    await a.send(LOGIN);
    const b = session(openStore());
    b.take();
    expect(await b.send(LOGIN)).toBe('+OK Send your password\r\n-ERR [IN-USE] Maildrop is locked by another POP3 session\r\n');
    await a.send('QUIT\r\n');
    await a.session.closed;
    expect(await b.send(LOGIN)).toMatch(/\+OK Logged in, maildrop has 3 messages/);
  });

  it('a lock left by a crashed process expires', async () => {
    const lock = join(root, 'alice', 'Maildir', 'pigeonpost-pop3.lock');
    // A PID that does not exist: the process that held the lock crashed.
    writeFileSync(lock, `2147483646:${hostname()}`);
    const t = session(stores[0]!);
    t.take();
    expect(await t.send(LOGIN)).toMatch(/\+OK Logged in/);
    await t.send('QUIT\r\n');
    await t.session.closed;
    expect(existsSync(lock)).toBe(false);
  });

  it('a message expunged over IMAP meanwhile gives a clear -ERR; DELE+QUIT of the rest still works', async () => {
    const t = session(stores[0]!);
    await t.send(LOGIN);
    const box = await (await stores[0]!.user('alice')).open('INBOX');
    const first = box.messages()[0]!.uid;
    await box.setFlags([first], { mode: 'add', flags: ['\\Deleted'] });
    await box.expunge([first]);
    expect(await t.send('RETR 1\r\n')).toBe('-ERR Message was removed by another session\r\n');
    expect(await t.send('TOP 1 0\r\n')).toBe('-ERR Message was removed by another session\r\n');
    expect(await t.send('DELE 1\r\nDELE 2\r\nQUIT\r\n')).toMatch(/\+OK Message 1 deleted\r\n\+OK Message 2 deleted\r\n\+OK .*signing off/);
    await t.session.closed;
    await box.sync();
    expect(box.messages()).toHaveLength(1);
    await box.close();
    expect(readdirSync(join(root, 'alice', 'Maildir', 'cur')).length + readdirSync(join(root, 'alice', 'Maildir', 'new')).length).toBe(1);
  });
});

describe('Maildir: pipelined RETR of many messages', () => {
  it.each(['sync-batched', 'worker'] as const)('answers every RETR with its exact bytes (readMode %s), from memory where the store can, -ERR for a file removed meanwhile', async (readMode) => {
    const store = createMaildirStore({ root, fsync: false, readMode });
    stores.push(store);
    const bodies: Buffer[] = [];
    for (let i = 1; i <= 150; i++) {
      const b = Buffer.from(`Subject: m${i}\n\n${`.dot line ${i}\nplain line\n`.repeat(1 + (i % 40))}`);
      bodies.push(b);
      await store.deliver({ user: 'alice', body: b });
    }
    // The store structurally, its maildrop's readNow counted.
    let answered = 0;
    const counting: Pop3MailStore = {
      user: async (name) => {
        const user = await store.user(name);
        return {
          openPop3: async () => {
            const drop: StorePop3Maildrop = await user.openPop3();
            const readNow = drop.readNow!.bind(drop);
            drop.readNow = (n) => {
              const bytes = readNow(n);
              if (bytes !== undefined) answered++;
              return bytes;
            };
            return drop;
          },
        };
      },
    };
    const t = createPop3TestSession({ backend: mailStoreBackend({ store: counting, users }), allowInsecureAuth: true });
    await t.send(LOGIN);
    // Message 100's file goes away (another program) after the snapshot.
    const cur = join(root, 'alice', 'Maildir', 'cur');
    const neu = join(root, 'alice', 'Maildir', 'new');
    const victim = [...readdirSync(neu).map((f) => join(neu, f)), ...readdirSync(cur).map((f) => join(cur, f))].find((f) => readFileSync(f).equals(bodies[102]!))!;
    rmSync(victim);
    let commands = '';
    for (let n = 1; n <= 153; n++) commands += `RETR ${n}\r\n`;
    const out = await t.send(commands);
    let expected = '';
    for (let n = 1; n <= 153; n++) {
      // The three messages delivered in beforeEach come first.
      const b = n <= 3 ? Buffer.from(`Subject: ${n}\n\nbody ${n}\n`) : bodies[n - 4]!;
      expected += n === 106 ? '-ERR Message was removed by another session\r\n' : `+OK ${b.length + b.toString('latin1').split('\n').length - 1} octets\r\n${encodeData(b).toString('latin1')}`;
    }
    expect(out).toBe(expected);
    expect(answered).toBeGreaterThan(0);
    await t.send('QUIT\r\n');
  });
});

describe('mailStoreBackend options and store errors', () => {
  it('maps login names with storeUser; a user without a maildrop gets -ERR [SYS/PERM]; unknown users fail like wrong passwords', async () => {
    const store = stores[0]!;
    const backend = mailStoreBackend({ store, users: { 'Alice@Example.org': 'pw', ghost: 'pw' }, storeUser: (login) => (login === 'ghost' ? 'nobody-here' : login.split('@')[0]!.toLowerCase()) });
    const t = createPop3TestSession({ backend, allowInsecureAuth: true, authFailureDelayMs: 0 });
    t.take();
    expect(await t.send('USER ghost\r\nPASS pw\r\n')).toBe('+OK Send your password\r\n-ERR [SYS/PERM] No maildrop for this user\r\n');
    expect(await t.send('USER stranger\r\nPASS pw\r\n')).toBe('+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n');
    expect(await t.send('USER Alice@Example.org\r\nPASS pw\r\n')).toMatch(/\+OK Logged in, maildrop has 3 messages/);
  });

  it('APOP works from the users map (the shared secret is the password)', async () => {
    const { createHash } = await import('node:crypto');
    const t = createPop3TestSession({ backend: mailStoreBackend({ store: stores[0]!, users }) });
    const timestamp = /<[^>]+>/.exec(t.take())![0];
    const digest = createHash('md5').update(`${timestamp}alice-password`).digest('hex');
    expect(await t.send(`APOP alice ${digest}\r\n`)).toMatch(/^\+OK Logged in/);
  });
});

describe('Node listener limits', () => {
  it('refuses connections over maxConnectionsPerIp with -ERR [SYS/TEMP]', async () => {
    const server = createPop3Server({ backend: mailStoreBackend({ store: stores[0]!, users }), maxConnectionsPerIp: 1 });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    const read = (socket: ReturnType<typeof connect>) => new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    const a = connect({ host: '127.0.0.1', port });
    expect(await read(a)).toMatch(/^\+OK POP3 server ready/);
    const b = connect({ host: '127.0.0.1', port });
    expect(await read(b)).toBe('-ERR [SYS/TEMP] Too many connections, try again later\r\n');
    a.destroy();
    b.destroy();
    await server.close({ timeoutMs: 0 });
  });

  it('closes an idle connection without a response (idleTimeoutMs; default 10 minutes)', async () => {
    const { defaultPop3Limits } = await import('../../src/limits.js');
    expect(defaultPop3Limits.idleTimeoutMs).toBeGreaterThanOrEqual(600_000); // RFC 1939 §3
    const server = createPop3Server({ backend: mailStoreBackend({ store: stores[0]!, users }), idleTimeoutMs: 300 });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    await new Promise((resolve) => socket.once('close', resolve));
    expect(received).toMatch(/^\+OK POP3 server ready[^\r]*\r\n$/);
    await server.close({ timeoutMs: 0 });
  });
});
