import { describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { pop3Reply } from '../../src/errors.js';
import { LoginDelayTracker } from '../../src/server/login-delay.js';
import type { Pop3Backend } from '../../src/server/types.js';
import { createMemoryPop3Backend, createPop3TestSession } from '../../src/testing/index.js';

const LOGIN = 'USER alice\r\nPASS alice-password\r\n';

function withMessages(...bodies: string[]): ReturnType<typeof createMemoryPop3Backend> {
  const backend = createMemoryPop3Backend();
  for (const b of bodies) backend.add('alice', b);
  return backend;
}

describe('UPDATE state: deletions', () => {
  it('are applied only on QUIT from TRANSACTION, together with \\Seen for RETR (not TOP)', async () => {
    const backend = withMessages('Subject: 1\r\n\r\none\r\n', 'Subject: 2\r\n\r\ntwo\r\n', 'Subject: 3\r\n\r\nthree\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    await t.send(`${LOGIN}RETR 1\r\nTOP 2 0\r\nRETR 3\r\nDELE 3\r\n`);
    expect(backend.maildrops.get('alice')).toHaveLength(3);
    expect(await t.send('QUIT\r\n')).toMatch(/^\+OK .*\(2 messages left\)\r\n$/);
    const left = backend.maildrops.get('alice')!;
    expect(left.map((m) => [m.uid, m.seen])).toEqual([
      [1, true],
      [2, false],
    ]);
    expect(t.isClosed()).toBe(true);
  });

  it('are never applied when the connection drops, and the lock is released', async () => {
    const backend = withMessages('a\r\n', 'b\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    await t.send(`${LOGIN}RETR 1\r\nDELE 1\r\nDELE 2\r\n`);
    expect(backend.locked.has('alice')).toBe(true);
    t.session.end();
    await t.session.closed;
    expect(backend.maildrops.get('alice')).toHaveLength(2);
    expect(backend.maildrops.get('alice')!.every((m) => !m.seen)).toBe(true);
    expect(backend.locked.has('alice')).toBe(false);
    expect(backend.commits).toBe(0);
  });

  it('QUIT from AUTHORIZATION does not enter UPDATE', async () => {
    const backend = withMessages('a\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    expect(await t.send('QUIT\r\n')).toMatch(/^\+OK /);
    expect(backend.commits).toBe(0);
  });

  it('a failed commit answers -ERR [SYS/TEMP] and changes nothing (one atomic call)', async () => {
    const backend = withMessages('a\r\n', 'b\r\n');
    let calls = 0;
    const failing: Pop3Backend = {
      ...backend,
      async openMaildrop(user, session) {
        const drop = await backend.openMaildrop(user, session);
        return {
          ...drop,
          commit: () => {
            calls++;
            return Promise.reject(new Error('disk full'));
          },
        };
      },
    };
    const t = createPop3TestSession({ backend: failing, allowInsecureAuth: true });
    await t.send(`${LOGIN}DELE 1\r\nDELE 2\r\n`);
    expect(await t.send('QUIT\r\n')).toBe('-ERR [SYS/TEMP] Some deleted messages not removed\r\n');
    expect(calls).toBe(1);
    expect(backend.maildrops.get('alice')).toHaveLength(2);
    await t.session.closed;
    expect(backend.locked.has('alice')).toBe(false);
  });
});

describe('message sizes and bodies', () => {
  it('LIST sizes count CRLF line ends, RETR sends exactly that many octets before dot-stuffing', async () => {
    const body = 'Subject: bare LF\n\n.leading dot\nlast line without newline';
    const backend = withMessages(body);
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    await t.send(LOGIN);
    const crlf = body.replace(/\n/g, '\r\n');
    expect(await t.send('LIST 1\r\n')).toBe(`+OK 1 ${crlf.length}\r\n`);
    const out = await t.send('RETR 1\r\n');
    expect(out).toBe(`+OK ${crlf.length} octets\r\nSubject: bare LF\r\n\r\n..leading dot\r\nlast line without newline\r\n.\r\n`);
  });

  it('TOP n 99999999 sends the whole message (fetchmail), TOP n 0 only the header', async () => {
    const backend = withMessages('Subject: x\r\n\r\nline 1\r\nline 2\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    await t.send(LOGIN);
    expect(await t.send('TOP 1 99999999\r\n')).toBe('+OK Top of message follows\r\nSubject: x\r\n\r\nline 1\r\nline 2\r\n.\r\n');
    expect(await t.send('TOP 1 99999999999999999999\r\n')).toBe('+OK Top of message follows\r\nSubject: x\r\n\r\nline 1\r\nline 2\r\n.\r\n');
    expect(await t.send('TOP 1 1\r\n')).toBe('+OK Top of message follows\r\nSubject: x\r\n\r\nline 1\r\n.\r\n');
    expect(await t.send('TOP 1 0\r\n')).toBe('+OK Top of message follows\r\nSubject: x\r\n\r\n.\r\n');
  });

  it('a message expunged meanwhile (IMAP) gives a clear -ERR, and the session goes on', async () => {
    const backend = withMessages('a\r\n', 'b\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    await t.send(LOGIN);
    backend.maildrops.set('alice', backend.maildrops.get('alice')!.slice(1)); // "expunged over IMAP"
    expect(await t.send('RETR 1\r\n')).toBe('-ERR Message 1 was removed by another session\r\n');
    expect(await t.send('RETR 2\r\n')).toBe('+OK 3 octets\r\nb\r\n.\r\n');
    expect(await t.send('STAT\r\n')).toBe('+OK 2 6\r\n');
  });

  it('a backend failure after +OK closes the connection without the terminating dot', async () => {
    const backend = withMessages('a\r\n');
    const broken: Pop3Backend = {
      ...backend,
      async openMaildrop(user, session) {
        const drop = await backend.openMaildrop(user, session);
        return {
          ...drop,
          read: () =>
            (async function* () {
              yield await Promise.resolve(Buffer.from('first part\r\n'));
              throw new Error('I/O error');
            })(),
        };
      },
    };
    const t = createPop3TestSession({ backend: broken, allowInsecureAuth: true });
    await t.send(LOGIN);
    const out = await t.send('RETR 1\r\n');
    expect(out).toBe('+OK 3 octets\r\nfirst part\r\n');
    expect(t.isClosed()).toBe(true);
  });
});

describe('read-ahead of pipelined RETR/TOP', () => {
  for (const prefetchMessages of [0, 2, 8]) {
    it(`answers the same with prefetchMessages ${prefetchMessages}, DELE in between included`, async () => {
      const bodies = Array.from({ length: 6 }, (_, i) => `Subject: ${i + 1}\r\n\r\n${'x'.repeat(i * 50)}\r\n`);
      const backend = withMessages(...bodies);
      const reads: number[] = [];
      const counting: Pop3Backend = {
        ...backend,
        async openMaildrop(user, session) {
          const drop = await backend.openMaildrop(user, session);
          return { ...drop, read: (n, o) => (reads.push(n), drop.read(n, o)) };
        },
      };
      const t = createPop3TestSession({ backend: counting, allowInsecureAuth: true, prefetchMessages });
      await t.send(LOGIN);
      const out = await t.send('RETR 1\r\nDELE 2\r\nRETR 2\r\nTOP 3 0\r\nRETR 4\r\nRETR 5\r\nRETR 6\r\nQUIT\r\n');
      expect(out).toBe(
        `+OK ${bodies[0]!.length} octets\r\n${bodies[0]}.\r\n+OK Message 2 deleted\r\n-ERR Message 2 already deleted\r\n+OK Top of message follows\r\nSubject: 3\r\n\r\n.\r\n` +
          [4, 5, 6].map((n) => `+OK ${bodies[n - 1]!.length} octets\r\n${bodies[n - 1]}.\r\n`).join('') +
          '+OK localhost POP3 server signing off (5 messages left)\r\n',
      );
      // Every message read at most once; message 2 possibly read ahead, never sent.
      expect(new Set(reads).size).toBe(reads.length);
      if (prefetchMessages === 0) expect(reads).toEqual([1, 3, 4, 5, 6]);
      await t.session.closed;
      expect(backend.locked.has('alice')).toBe(false);
    });
  }
});

describe('AUTHORIZATION', () => {
  it('refuses USER/PASS and AUTH PLAIN before TLS, and offers them after STLS', async () => {
    const t = createPop3TestSession({ backend: withMessages('a\r\n') });
    t.take();
    const capa = await t.send('CAPA\r\n');
    expect(capa).not.toMatch(/\r\nUSER\r\n/);
    expect(capa).not.toMatch(/SASL/);
    expect(capa).toMatch(/\r\nSTLS\r\n/);
    expect(await t.send('USER alice\r\n')).toBe('-ERR [AUTH] Plaintext authentication disallowed on non-secure connections; use STLS\r\n');
    expect(await t.send('AUTH PLAIN AGFsaWNlAGFsaWNlLXBhc3N3b3Jk\r\n')).toBe('-ERR [AUTH] Encryption required for requested authentication mechanism\r\n');
    expect(await t.send('STLS\r\n')).toBe('+OK Begin TLS negotiation\r\n');
    await t.settle();
    const after = await t.send('CAPA\r\n');
    expect(after).toMatch(/\r\nUSER\r\n/);
    expect(after).toMatch(/\r\nSASL PLAIN LOGIN\r\n/);
    expect(after).not.toMatch(/STLS/);
    expect(await t.send(LOGIN)).toMatch(/\+OK Logged in/);
  });

  it('discards plaintext pipelined after STLS (RFC 2595 §4 injection)', async () => {
    const t = createPop3TestSession({ backend: withMessages('a\r\n'), autoTls: false });
    t.take();
    const out = await t.send('STLS\r\nUSER alice\r\nPASS alice-password\r\n');
    expect(out).toBe('+OK Begin TLS negotiation\r\n');
    t.session.receive(Buffer.from('STAT\r\n'));
    expect(t.session.discardedPlaintextBytes).toBe('USER alice\r\nPASS alice-password\r\nSTAT\r\n'.length);
    t.session.tlsEstablished();
    expect(await t.send('STAT\r\n')).toBe('-ERR Not logged in\r\n');
    expect(await t.send('STLS\r\n')).toBe('-ERR Already using TLS\r\n');
  });

  it('implicit TLS: no STLS, USER offered', async () => {
    const t = createPop3TestSession({ backend: withMessages(), connection: { secure: true, startTlsAvailable: false } });
    t.take();
    const capa = await t.send('CAPA\r\n');
    expect(capa).toMatch(/\r\nUSER\r\n/);
    expect(capa).not.toMatch(/STLS/);
    expect(await t.send('STLS\r\n')).toBe('-ERR Already using TLS\r\n');
  });

  it('APOP with a wrong digest is refused with [AUTH]; a right one logs in', async () => {
    const backend = createMemoryPop3Backend({ mrose: 'tanstaaf' });
    const t = createPop3TestSession({ backend, apopTimestamp: '<1896.697170952@dbc.mtview.ca.us>', authFailureDelayMs: 0 });
    expect(t.take()).toBe('+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n');
    expect(await t.send('APOP mrose 00000000000000000000000000000000\r\n')).toBe('-ERR [AUTH] Authentication failed\r\n');
    expect(await t.send('APOP nobody c4c9334bac560ecc979e58001b3e22fb\r\n')).toBe('-ERR [AUTH] Authentication failed\r\n');
    expect(await t.send('APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n')).toMatch(/^\+OK Logged in/);
  });

  it('greets with a fresh random APOP timestamp per session', () => {
    const a = createPop3TestSession().take();
    const b = createPop3TestSession().take();
    expect(a).toMatch(/^\+OK POP3 server ready <[0-9a-f]{16}\.0@localhost>\r\n$/);
    expect(a).not.toBe(b);
  });

  it('brute force: each failure waits twice as long, and the third closes the connection', async () => {
    const clock = new VirtualClock(0);
    const t = createPop3TestSession({ clock, allowInsecureAuth: true, authFailureDelayMs: 1000, maxAuthFailures: 3 });
    t.take();
    // The pipelined pair is answered in one write, after the delay.
    expect(await t.send('USER alice\r\nPASS wrong1\r\n')).toBe('');
    clock.advance(999);
    expect(await t.settle()).toBe('');
    clock.advance(1);
    expect(await t.settle()).toBe('+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n');
    await t.send('USER alice\r\nPASS wrong2\r\n');
    clock.advance(1999);
    expect(await t.settle()).toBe('');
    clock.advance(1);
    expect(await t.settle()).toBe('+OK Send your password\r\n-ERR [AUTH] Authentication failed\r\n');
    await t.send('USER alice\r\nPASS alice-password-not\r\n');
    clock.advance(4000);
    expect(await t.settle()).toBe('+OK Send your password\r\n-ERR [AUTH] Too many failed logins, closing connection\r\n');
    expect(t.isClosed()).toBe(true);
  });

  it('a second session for the same maildrop gets -ERR [IN-USE]; after QUIT it may log in', async () => {
    const backend = withMessages('a\r\n');
    const first = createPop3TestSession({ backend, allowInsecureAuth: true });
    await first.send(LOGIN);
    const second = createPop3TestSession({ backend, allowInsecureAuth: true });
    second.take();
    expect(await second.send(LOGIN)).toBe('+OK Send your password\r\n-ERR [IN-USE] Maildrop is locked by another POP3 session\r\n');
    expect(second.session.currentState).toBe('authorization');
    await first.send('QUIT\r\n');
    expect(await second.send(LOGIN)).toMatch(/\+OK Logged in/);
  });

  it('a backend that throws something else answers -ERR [SYS/TEMP]', async () => {
    const backend: Pop3Backend = { ...createMemoryPop3Backend(), openMaildrop: () => Promise.reject(new Error('db down')) };
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    t.take();
    expect(await t.send(LOGIN)).toBe('+OK Send your password\r\n-ERR [SYS/TEMP] Temporary problem, try again later\r\n');
    const perm: Pop3Backend = { ...createMemoryPop3Backend(), openMaildrop: () => Promise.reject(pop3Reply('SYS/PERM', 'Account disabled')) };
    const p = createPop3TestSession({ backend: perm, allowInsecureAuth: true });
    p.take();
    expect(await p.send(LOGIN)).toBe('+OK Send your password\r\n-ERR [SYS/PERM] Account disabled\r\n');
  });

  it('LOGIN-DELAY: a second login within the delay gets -ERR [LOGIN-DELAY]', async () => {
    const clock = new VirtualClock(0);
    const loginTracker = new LoginDelayTracker();
    const backend = withMessages();
    const options = { backend, clock, loginTracker, loginDelaySeconds: 60, allowInsecureAuth: true };
    const a = createPop3TestSession(options);
    await a.send(`${LOGIN}QUIT\r\n`);
    clock.advance(30_000);
    const b = createPop3TestSession(options);
    b.take();
    expect(await b.send(LOGIN)).toBe('+OK Send your password\r\n-ERR [LOGIN-DELAY] Wait 30 more seconds before logging in again\r\n');
    clock.advance(30_000);
    expect(await b.send(LOGIN)).toMatch(/\+OK Logged in/);
    expect(await b.send('CAPA\r\n')).toMatch(/\r\nLOGIN-DELAY 60\r\n/);
  });
});

describe('UTF8 and LANG (RFC 6856)', () => {
  it('takes UTF-8 user names only after UTF8; LANG lists and selects', async () => {
    const backend = createMemoryPop3Backend({ 'jörg': 'pässword' });
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    t.take();
    expect(await t.send('USER jörg\r\n')).toBe('-ERR [UTF8] Non-ASCII arguments need the UTF8 command first\r\n');
    expect(await t.send('UTF8\r\n')).toBe('+OK UTF8 enabled\r\n');
    expect(await t.send('USER jörg\r\nPASS pässword\r\n')).toMatch(/\+OK Logged in/);
    expect(await t.send('UTF8\r\n')).toBe('-ERR UTF8 not allowed in TRANSACTION state\r\n');
    expect(await t.send('LANG\r\n')).toBe('+OK Language listing follows\r\nen English\r\n.\r\n');
    expect(await t.send('LANG en\r\n')).toBe('+OK en Language changed\r\n');
    expect(await t.send('LANG *\r\n')).toBe('+OK en Language changed\r\n');
    expect(await t.send('LANG fr\r\n')).toBe('-ERR Invalid language\r\n');
  });
});

describe('hostile input and limits', () => {
  it('over-long lines, NUL, bare CR and commands in the wrong state get -ERR; the session stays in sync', async () => {
    const t = createPop3TestSession({ allowInsecureAuth: true });
    t.take();
    expect(await t.send(`NOOP ${'x'.repeat(600)}\r\n`)).toBe('-ERR Line too long\r\n');
    expect(await t.send(`AUTH PLAIN ${'A'.repeat(20_000)}\r\n`)).toBe('-ERR Line too long\r\n');
    expect(await t.send('US\0ER alice\r\n')).toBe('-ERR NUL characters not allowed\r\n');
    expect(await t.send('USER a\rlice\r\n')).toBe('-ERR Bare CR not allowed\r\n');
    expect(await t.send('RETR 1\r\n')).toBe('-ERR Not logged in\r\n');
    expect(await t.send('STAT\r\n')).toBe('-ERR Not logged in\r\n');
    expect(await t.send('PASS x\r\n')).toBe('-ERR Send USER first\r\n');
    expect(await t.send('GET / HTTP/1.1\r\n')).toBe('-ERR Unknown command\r\n');
    expect(await t.send('\xff\r\n')).toMatch(/^-ERR/);
    expect(await t.send(LOGIN)).toMatch(/\+OK Logged in/);
    expect(await t.send('USER bob\r\n')).toBe('-ERR USER not allowed in TRANSACTION state\r\n');
    expect(await t.send('RETR 0\r\nRETR x\r\nRETR 9\r\nTOP 1\r\nDELE\r\nLIST 1 2\r\n')).toBe(
      '-ERR Invalid message number\r\n-ERR Invalid message number\r\n-ERR No such message\r\n-ERR TOP needs a message number and a line count\r\n-ERR Invalid message number\r\n-ERR Invalid message number\r\n',
    );
  });

  it('too many bad commands close the connection', async () => {
    const t = createPop3TestSession({ maxBadCommands: 3 });
    t.take();
    const out = await t.send('A\r\nB\r\nC\r\nD\r\nNOOP\r\n');
    expect(out).toBe('-ERR Unknown command\r\n-ERR Unknown command\r\n-ERR Unknown command\r\n-ERR Too many bad commands, closing connection\r\n');
    expect(t.isClosed()).toBe(true);
  });

  it('a command line of 255 octets (RFC 2449 §4) is fine; the limit is a named option', async () => {
    const t = createPop3TestSession({ allowInsecureAuth: true });
    t.take();
    expect(await t.send(`USER ${'u'.repeat(248)}\r\n`)).toBe('+OK Send your password\r\n');
    const strict = createPop3TestSession({ allowInsecureAuth: true, maxCommandLineLength: 64 });
    strict.take();
    expect(await strict.send(`USER ${'u'.repeat(70)}\r\n`)).toBe('-ERR Line too long\r\n');
  });

  it('idle timeout closes without a response and without UPDATE (RFC 1939 §3)', async () => {
    const backend = withMessages('a\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    await t.send(`${LOGIN}DELE 1\r\n`);
    t.session.idleTimeout();
    await t.session.closed;
    expect(t.take()).toBe('');
    expect(t.isClosed()).toBe(true);
    expect(backend.maildrops.get('alice')).toHaveLength(1);
    expect(backend.locked.has('alice')).toBe(false);
  });

  it('shutdown answers -ERR [SYS/TEMP] and skips UPDATE', async () => {
    const backend = withMessages('a\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    await t.send(`${LOGIN}DELE 1\r\n`);
    t.session.shutdown();
    expect(t.take()).toBe('-ERR [SYS/TEMP] Server shutting down, try again later\r\n');
    await t.session.closed;
    expect(backend.maildrops.get('alice')).toHaveLength(1);
  });
});
