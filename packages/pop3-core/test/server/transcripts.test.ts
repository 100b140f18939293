import { describe, expect, it } from 'vitest';
import { createMemoryPop3Backend, runPop3Transcript } from '../../src/testing/index.js';

/** A message of exactly `size` octets with CRLF line ends. */
function message(size: number, subject: string): string {
  const head = `Subject: ${subject}\r\n\r\n`;
  const line = 'x'.repeat(58) + '\r\n';
  let body = '';
  while (head.length + body.length + line.length <= size) body += line;
  const rest = size - head.length - body.length;
  body += rest >= 2 ? 'y'.repeat(rest - 2) + '\r\n' : 'z'.repeat(rest);
  const out = head + body;
  if (out.length !== size) throw new Error('bad size');
  return out;
}

function rfc1939Backend(): ReturnType<typeof createMemoryPop3Backend> {
  // RFC 1939 §7: mrose's secret is "tanstaaf".
  const backend = createMemoryPop3Backend({ mrose: 'tanstaaf' });
  backend.add('mrose', message(120, 'one'));
  backend.add('mrose', message(200, 'two'));
  return backend;
}

const messageLines = (size: number, subject: string): string =>
  message(size, subject)
    .split('\r\n')
    .slice(0, -1)
    .map((l) => `S: ${l}`)
    .join('\n');

// RFC 1939 §10, byte for byte where the RFC fixes the bytes (status words,
// counts, sizes, the timestamp and digest of §7); the free text after +OK is ours.
const rfc1939Session = `
S: +OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>
C: APOP mrose c4c9334bac560ecc979e58001b3e22fb
S: +OK Logged in, maildrop has 2 messages (320 octets)
C: STAT
S: +OK 2 320
C: LIST
S: +OK 2 messages (320 octets)
S: 1 120
S: 2 200
S: .
C: RETR 1
S: +OK 120 octets
${messageLines(120, 'one')}
S: .
C: DELE 1
S: +OK Message 1 deleted
C: RETR 2
S: +OK 200 octets
${messageLines(200, 'two')}
S: .
C: DELE 2
S: +OK Message 2 deleted
C: QUIT
S: +OK localhost POP3 server signing off (0 messages left)
`;

describe('RFC 1939 §10 example session', () => {
  for (const byteByByte of [false, true]) {
    it(`replays ${byteByByte ? 'one byte at a time' : 'line by line'}, and the UPDATE state empties the maildrop`, async () => {
      const backend = rfc1939Backend();
      const result = await runPop3Transcript(rfc1939Session, { backend, apopTimestamp: '<1896.697170952@dbc.mtview.ca.us>', allowInsecureAuth: true }, { byteByByte });
      expect(result.actual).toEqual(result.expected);
      expect(backend.maildrops.get('mrose')).toEqual([]);
      expect(backend.commits).toBe(1);
    });
  }
});

describe('RFC 1939 §7 examples', () => {
  it('USER/PASS, TOP, UIDL, and RSET', async () => {
    const backend = rfc1939Backend();
    const transcript = `
S: +OK POP3 server ready <*>
C: USER mrose
S: +OK Send your password
C: PASS tanstaaf
S: +OK Logged in, maildrop has 2 messages (320 octets)
C: TOP 1 0
S: +OK Top of message follows
S: Subject: one
S:
S: .
C: UIDL
S: +OK Unique-ID listing follows
S: 1 uid1
S: 2 uid2
S: .
C: UIDL 2
S: +OK 2 uid2
C: DELE 1
S: +OK Message 1 deleted
C: LIST 1
S: -ERR Message 1 already deleted
C: UIDL 3
S: -ERR No such message
C: RSET
S: +OK Maildrop has 2 messages (320 octets)
C: QUIT
S: +OK localhost POP3 server signing off (2 messages left)
`;
    for (const byteByByte of [false, true]) {
      const result = await runPop3Transcript(transcript, { backend, allowInsecureAuth: true }, { byteByByte });
      expect(result.actual).toEqual(result.expected);
    }
    expect(backend.maildrops.get('mrose')).toHaveLength(2);
  });
});

describe('RFC 2449 CAPA', () => {
  const transcript = `
S: +OK POP3 server ready
C: CAPA
S: +OK Capability list follows
S: TOP
S: UIDL
S: RESP-CODES
S: PIPELINING
S: AUTH-RESP-CODE
S: USER
S: SASL PLAIN LOGIN
S: STLS
S: UTF8 USER
S: EXPIRE 60
S: LOGIN-DELAY 900
S: LANG
S: IMPLEMENTATION Shlemazle-Plotz-v302
S: .
`;
  for (const byteByByte of [false, true]) {
    it(`lists the capabilities of §6 (${byteByByte ? 'byte by byte' : 'whole'})`, async () => {
      const backend = createMemoryPop3Backend();
      delete (backend as { getApopSecret?: unknown }).getApopSecret;
      const { LoginDelayTracker } = await import('../../src/server/login-delay.js');
      const result = await runPop3Transcript(
        transcript,
        { backend, allowInsecureAuth: true, expire: 60, loginDelaySeconds: 900, loginTracker: new LoginDelayTracker(), implementation: 'Shlemazle-Plotz-v302' },
        { byteByByte },
      );
      expect(result.actual).toEqual(result.expected);
    });
  }

  it('answers a pipelined group in one write (RFC 2449 §6.6)', async () => {
    const { createPop3TestSession } = await import('../../src/testing/index.js');
    const backend = createMemoryPop3Backend();
    backend.add('alice', 'Subject: a\r\n\r\nhello\r\n');
    const t = createPop3TestSession({ backend, allowInsecureAuth: true });
    t.take();
    const before = t.writes.length;
    const out = await t.send('USER alice\r\nPASS alice-password\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nNOOP\r\n');
    expect(t.writes.length - before).toBe(1);
    expect(out).toBe(
      '+OK Send your password\r\n+OK Logged in, maildrop has 1 messages (21 octets)\r\n+OK 1 21\r\n+OK 1 messages (21 octets)\r\n1 21\r\n.\r\n' +
        '+OK Unique-ID listing follows\r\n1 uid1\r\n.\r\n+OK 21 octets\r\nSubject: a\r\n\r\nhello\r\n.\r\n+OK\r\n',
    );
  });
});

describe('RFC 5034 AUTH examples', () => {
  // §6: authzid "test", authcid "test", password "test".
  const options = () => ({ backend: createMemoryPop3Backend({ test: 'test' }), connection: { secure: true } });

  it('AUTH PLAIN with an empty challenge', async () => {
    const transcript = `
S: +OK POP3 server ready <*>
C: AUTH PLAIN
S: + 
C: dGVzdAB0ZXN0AHRlc3Q=
S: +OK Logged in, maildrop has 0 messages (0 octets)
`;
    for (const byteByByte of [false, true]) {
      const result = await runPop3Transcript(transcript, options(), { byteByByte });
      expect(result.actual).toEqual(result.expected);
    }
  });

  it('AUTH PLAIN with an initial response', async () => {
    const transcript = `
S: +OK POP3 server ready <*>
C: AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=
S: +OK Logged in, maildrop has 0 messages (0 octets)
`;
    const result = await runPop3Transcript(transcript, options());
    expect(result.actual).toEqual(result.expected);
  });

  it('the client cancels with "*", then a wrong password gets -ERR [AUTH]', async () => {
    const transcript = `
S: +OK POP3 server ready <*>
C: AUTH PLAIN
S: + 
C: *
S: -ERR Authentication cancelled
C: AUTH PLAIN dGVzdAB0ZXN0AHdyb25n
S: -ERR [AUTH] Authentication credentials invalid
C: AUTH
S: +OK
S: PLAIN
S: LOGIN
S: .
`;
    const result = await runPop3Transcript(transcript, { ...options(), authFailureDelayMs: 0 });
    expect(result.actual).toEqual(result.expected);
  });
});
