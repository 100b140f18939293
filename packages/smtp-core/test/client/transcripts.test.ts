import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Secret } from '@pigeonpost/wire';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { SmtpClientError } from '../../src/errors.js';
import { SmtpClientConnection } from '../../src/client/connection.js';
import type { SmtpClientConnectionOptions } from '../../src/client/connection.js';
import { ScriptedTransport } from './transcript.js';

type Options = Omit<SmtpClientConnectionOptions, 'clock'> & { clock?: VirtualClock };

/** Run `fn` against the transcript twice: replies whole, and one byte per read. */
function transcript(
  name: string,
  script: string,
  fn: (client: SmtpClientConnection, transport: ScriptedTransport) => Promise<void>,
  options: Options = {},
  transportOptions: { secure?: boolean } = {},
): void {
  for (const byteByByte of [false, true]) {
    it(`${name}${byteByByte ? ' (one byte at a time)' : ''}`, async () => {
      const transport = new ScriptedTransport(script, byteByByte, transportOptions);
      const client = await SmtpClientConnection.open(transport, { name: 'client.example', clock: new VirtualClock(), ...options });
      await fn(client, transport);
      expect(transport.errors).toEqual([]);
      expect(transport.remaining).toBe('');
      expect(transport.finished).toBe(true);
    });
  }
}

/** Like `transcript`, for sessions that must fail to open. */
function failingOpen(name: string, script: string, check: (err: SmtpClientError, transport: ScriptedTransport) => void, options: Options = {}): void {
  for (const byteByByte of [false, true]) {
    it(`${name}${byteByByte ? ' (one byte at a time)' : ''}`, async () => {
      const transport = new ScriptedTransport(script, byteByByte);
      const err = await SmtpClientConnection.open(transport, { name: 'client.example', clock: new VirtualClock(), ...options }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(SmtpClientError.isInstance(err)).toBe(true);
      check(err as SmtpClientError, transport);
      expect(transport.errors).toEqual([]);
      expect(transport.remaining).toBe('');
      expect(transport.destroyed).toBe(true);
    });
  }
}

const EHLO = `
S: 220 mx.example ESMTP
C: EHLO client.example
S: 250-mx.example greets client.example
S: 250-PIPELINING
S: 250-SIZE 1000000
S: 250-8BITMIME
S: 250-SMTPUTF8
S: 250-DSN
S: 250-ENHANCEDSTATUSCODES
S: 250 AUTH PLAIN LOGIN
`;

describe('SMTP client transcripts: opening', () => {
  transcript(
    'greeting, EHLO and capabilities',
    `${EHLO}
C: QUIT
S: 221 2.0.0 Bye`,
    async (client, transport) => {
      const caps = client.capabilities!;
      expect(caps.domain).toBe('mx.example');
      expect(caps.pipelining).toBe(true);
      expect(caps.size).toBe(1000000);
      expect(caps.authMechanisms).toEqual(['PLAIN', 'LOGIN']);
      expect(caps.chunking).toBe(false);
      await client.quit();
      expect(transport.ended).toBe(true);
      expect(client.closed).toBe(true);
    },
  );

  transcript(
    'HELO fallback when EHLO is unknown, then one command per reply',
    `
S: 220 old.example SMTP
C: EHLO client.example
S: 502 Command not implemented
C: HELO client.example
S: 250 old.example
C: MAIL FROM:<a@example.org>
S: 250 ok
C: RCPT TO:<b@example.net>
S: 250 ok
C: RCPT TO:<c@example.net>
S: 250 ok
C: DATA
S: 354 go ahead
C: hello
C: .
S: 250 queued
C: QUIT
S: 221 bye`,
    async (client) => {
      expect(client.capabilities?.esmtp).toBe(false);
      const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'c@example.net'] }, 'hello');
      expect(result.pipelined).toBe(false);
      expect(result.accepted).toEqual(['b@example.net', 'c@example.net']);
      await client.quit();
    },
  );

  failingOpen(
    '554 greeting: QUIT and a typed error',
    `
S: 554 5.7.1 no service for you
C: QUIT
S: 221 bye`,
    (err) => {
      expect(err.code).toBe('ERR_SMTP_CLIENT_GREETING');
      expect(err.replyCode).toBe(554);
      expect(err.enhancedCode).toBe('5.7.1');
      expect(err.reply?.text).toBe('no service for you');
    },
  );

  failingOpen(
    "secure: 'starttls' refuses a server without STARTTLS (downgrade protection)",
    `${EHLO}
C: QUIT
S: 221 bye`,
    (err) => expect(err.code).toBe('ERR_SMTP_CLIENT_STARTTLS_UNAVAILABLE'),
    { secure: 'starttls' },
  );

  failingOpen(
    'a malformed reply ends the session',
    `
S: 220 mx.example
C: EHLO client.example
S: 250-mx.example
S: 251 mixed codes`,
    (err) => {
      expect(err.code).toBe('ERR_SMTP_CLIENT_MALFORMED_REPLY');
      expect(err.side).toBe('remote');
    },
  );

  failingOpen(
    'the server hangs up',
    `
S: 220 mx.example
C: EHLO client.example
CLOSE`,
    (err) => expect(err.code).toBe('ERR_SMTP_CLIENT_CONNECTION'),
  );
});

describe('SMTP client transcripts: STARTTLS', () => {
  transcript(
    'plaintext injected after the 220 is dropped, and EHLO is sent again over TLS',
    `
S: 220 mx.example ESMTP
C: EHLO client.example
S: 250-mx.example
S: 250-STARTTLS
S: 250 PIPELINING
C: STARTTLS
S: 220 go
S: 250 injected
TLS
C: EHLO client.example
S: 250-mx.example over TLS
S: 250-PIPELINING
S: 250 AUTH PLAIN
C: QUIT
S: 221 bye`,
    async (client, transport) => {
      expect(transport.tlsStarted).toBe(1);
      expect(transport.discarded).toBe('250 injected\r\n'.length);
      expect(client.discardedAfterStartTls).toBe('250 injected\r\n'.length);
      expect(client.secure).toBe(true);
      expect(client.capabilities?.startTls).toBe(false);
      expect(client.capabilities?.authMechanisms).toEqual(['PLAIN']);
      await client.quit();
    },
    { secure: 'starttls' },
  );

  transcript(
    "opportunistic: no STARTTLS offered, plaintext it is",
    `${EHLO}
C: QUIT
S: 221 bye`,
    async (client) => {
      expect(client.secure).toBe(false);
      await client.quit();
    },
    { secure: 'opportunistic' },
  );

  transcript(
    'opportunistic: STARTTLS refused with 454, plaintext it is',
    `
S: 220 mx.example
C: EHLO client.example
S: 250-mx.example
S: 250 STARTTLS
C: STARTTLS
S: 454 4.7.0 TLS not available
C: QUIT
S: 221 bye`,
    async (client) => {
      expect(client.secure).toBe(false);
      await client.quit();
    },
    { secure: 'opportunistic' },
  );
});

describe('SMTP client transcripts: AUTH', () => {
  const password = new Secret('tanstaaftanstaaf');
  transcript(
    'AUTH PLAIN with an initial response over TLS',
    `${EHLO}
C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
S: 235 2.7.0 Authentication successful
C: QUIT
S: 221 bye`,
    async (client) => {
      expect(client.authenticated).toBe('PLAIN');
      await client.quit();
    },
    { auth: { username: 'tim', password } },
    { secure: true },
  );

  transcript(
    'AUTH LOGIN when it is the only mechanism',
    `
S: 220 mx.example
C: EHLO client.example
S: 250-mx.example
S: 250 AUTH=LOGIN
C: AUTH LOGIN
S: 334 VXNlcm5hbWU6
C: dGlt
S: 334 UGFzc3dvcmQ6
C: dGFuc3RhYWZ0YW5zdGFhZg==
S: 235 ok
C: QUIT
S: 221 bye`,
    async (client) => {
      expect(client.authenticated).toBe('LOGIN');
      await client.quit();
    },
    { auth: { username: 'tim', password } },
    { secure: true },
  );

  const challenge = '<1896.697170952@postoffice.example.net>';
  const digest = createHmac('md5', 'tanstaaftanstaaf').update(challenge).digest('hex');
  transcript(
    'the strongest common mechanism: CRAM-MD5 before PLAIN and LOGIN (RFC 2195 example)',
    `
S: 220 mx.example
C: EHLO client.example
S: 250-mx.example
S: 250 AUTH LOGIN PLAIN CRAM-MD5
C: AUTH CRAM-MD5
S: 334 ${Buffer.from(challenge).toString('base64')}
C: ${Buffer.from(`tim ${digest}`).toString('base64')}
S: 235 2.7.0 ok
C: QUIT
S: 221 bye`,
    async (client) => {
      expect(client.authenticated).toBe('CRAM-MD5');
      await client.quit();
    },
    { auth: { username: 'tim', password } },
  );

  failingOpen(
    'PLAIN without TLS is refused locally',
    `${EHLO}
C: QUIT
S: 221 bye`,
    (err) => expect(err.code).toBe('ERR_SMTP_CLIENT_AUTH_INSECURE'),
    { auth: { username: 'tim', password } },
  );

  failingOpen(
    '535 carries the reply code, enhanced code and text',
    `${EHLO}
C: AUTH PLAIN AHRpbQB0YW5zdGFhZnRhbnN0YWFm
S: 535 5.7.8 Authentication credentials invalid
C: QUIT
S: 221 bye`,
    (err) => {
      expect(err.code).toBe('ERR_SMTP_CLIENT_AUTH_FAILED');
      expect(err.replyCode).toBe(535);
      expect(err.enhancedCode).toBe('5.7.8');
      expect(err.serverReply?.lines).toEqual(['Authentication credentials invalid']);
    },
    { auth: { username: 'tim', password, allowPlaintextAuth: true } },
  );

  failingOpen(
    'no common mechanism',
    `${EHLO}
C: QUIT
S: 221 bye`,
    (err) => expect(err.code).toBe('ERR_SMTP_CLIENT_AUTH_UNAVAILABLE'),
    { auth: { username: 'tim', token: new Secret('t') , mechanism: 'OAUTHBEARER' } },
  );
});

describe('SMTP client transcripts: transactions', () => {
  transcript(
    'pipelined envelope, dot-stuffing, bare LF made CRLF, per-recipient results',
    `${EHLO}
C: MAIL FROM:<a@example.org> SIZE=24
C: RCPT TO:<b@example.net>
C: RCPT TO:<nobody@example.net>
C: DATA
S: 250 2.1.0 ok
S: 250 2.1.5 ok
S: 550 5.1.1 no such user
S: 354 go
C: Subject: x
C:
C: ..hidden
C: bare
C: .
S: 250 2.0.0 queued as 1
C: QUIT
S: 221 bye`,
    async (client) => {
      const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'nobody@example.net'] }, 'Subject: x\n\n.hidden\nbare');
      expect(result.pipelined).toBe(true);
      expect(result.transfer).toBe('DATA');
      expect(result.accepted).toEqual(['b@example.net']);
      expect(result.rejected).toEqual(['nobody@example.net']);
      const rejected = result.recipients[1]!;
      expect(rejected.rcptReply.code).toBe(550);
      expect(rejected.rcptReply.enhanced).toBe('5.1.1');
      expect(result.reply.lines).toEqual(['queued as 1']);
      await client.quit();
    },
  );

  transcript(
    'connection reuse: RSET between messages, a failed message does not end the session',
    `${EHLO}
C: MAIL FROM:<a@example.org> SIZE=2
C: RCPT TO:<x@example.net>
C: DATA
S: 250 ok
S: 550 5.1.1 unknown
S: 554 5.5.1 no valid recipients
C: RSET
C: MAIL FROM:<a@example.org> SIZE=2
C: RCPT TO:<b@example.net>
C: DATA
S: 250 flushed
S: 250 ok
S: 250 ok
S: 354 go
C: hi
C: .
S: 250 queued
C: QUIT
S: 221 bye`,
    async (client) => {
      const err = await client.send({ from: 'a@example.org', to: ['x@example.net'] }, 'hi').catch((e: unknown) => e);
      expect(SmtpClientError.isInstance(err)).toBe(true);
      expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED');
      expect((err as SmtpClientError).recipients).toHaveLength(1);
      expect((err as SmtpClientError).enhancedCode).toBe('5.1.1');
      const ok = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'hi');
      expect(ok.accepted).toEqual(['b@example.net']);
      await client.quit();
    },
  );

  transcript(
    'without PIPELINING, no DATA after every RCPT failed; the next message starts with RSET',
    `
S: 220 mx.example
C: EHLO client.example
S: 250 mx.example
C: MAIL FROM:<a@example.org>
S: 250 ok
C: RCPT TO:<b@example.net>
S: 450 4.3.0 try again
C: RSET
S: 250 ok
C: MAIL FROM:<a@example.org>
S: 250 ok
C: RCPT TO:<b@example.net>
S: 250 ok
C: DATA
S: 354 go
C: x
C: .
S: 250 ok
C: QUIT
S: 221 bye`,
    async (client) => {
      const err = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x').catch((e: unknown) => e);
      expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED');
      expect((err as SmtpClientError).replyCode).toBe(450);
      expect((await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x')).pipelined).toBe(false);
      await client.quit();
    },
  );

  transcript(
    'every recipient refused but DATA got 354 anyway: only "." is sent, never the body',
    `${EHLO}
C: MAIL FROM:<a@example.org> SIZE=6
C: RCPT TO:<x@example.net>
C: DATA
S: 250 ok
S: 550 no
S: 354 go
C: .
S: 554 no valid recipients
C: QUIT
S: 221 bye`,
    async (client) => {
      const err = await client.send({ from: 'a@example.org', to: ['x@example.net'] }, 'secret').catch((e: unknown) => e);
      expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED');
      await client.quit();
    },
  );

  transcript(
    'MAIL refused',
    `${EHLO}
C: MAIL FROM:<a@example.org> SIZE=1
C: RCPT TO:<b@example.net>
C: DATA
S: 451 4.3.0 try later
S: 503 5.5.1 no MAIL
S: 503 5.5.1 no MAIL
C: QUIT
S: 221 bye`,
    async (client) => {
      const err = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x').catch((e: unknown) => e);
      expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_MAIL_REJECTED');
      expect((err as SmtpClientError).replyCode).toBe(451);
      await client.quit();
    },
  );

  it('421 ends the session: nothing pipelined after it is waited for', async () => {
    for (const byteByByte of [false, true]) {
      const transport = new ScriptedTransport(`${EHLO}
C: MAIL FROM:<a@example.org> SIZE=1
C: RCPT TO:<b@example.net>
C: DATA
S: 421 4.3.2 shutting down
CLOSE`, byteByByte);
      const client = await SmtpClientConnection.open(transport, { name: 'client.example', clock: new VirtualClock() });
      const err = (await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x').catch((e: unknown) => e)) as SmtpClientError;
      expect(err.code).toBe('ERR_SMTP_CLIENT_CONNECTION');
      expect(err.replyCode).toBe(421);
      expect(err.enhancedCode).toBe('4.3.2');
      expect(transport.destroyed).toBe(true);
      expect(client.closed).toBe(true);
    }
  });

  transcript(
    'message refused after the data',
    `${EHLO}
C: MAIL FROM:<a@example.org> SIZE=1
C: RCPT TO:<b@example.net>
C: DATA
S: 250 ok
S: 250 ok
S: 354 go
C: x
C: .
S: 552 5.3.4 too big after all
C: QUIT
S: 221 bye`,
    async (client) => {
      const err = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x').catch((e: unknown) => e);
      expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_DATA_REJECTED');
      expect((err as SmtpClientError).enhancedCode).toBe('5.3.4');
      await client.quit();
    },
  );

  transcript(
    'SMTPUTF8, 8BITMIME and DSN parameters (xtext ENVID and ORCPT)',
    `${EHLO}
C: MAIL FROM:<jörg@example.org> SIZE=5 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2Bone+3Dtwo
C: RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.net
C: RCPT TO:<我@例子.中国> NOTIFY=NEVER ORCPT=utf-8;\\x{6211}@\\x{4F8B}\\x{5B50}.\\x{4E2D}\\x{56FD}
C: DATA
S: 250 ok
S: 250 ok
S: 250 ok
S: 354 go
C: hé
C: .
S: 250 ok
C: QUIT
S: 221 bye`,
    async (client) => {
      const result = await client.send(
        {
          from: 'jörg@example.org',
          to: [{ address: 'b@example.net', orcpt: 'b+x@example.net' }, { address: '我@例子.中国', notify: 'NEVER' }],
          dsn: { ret: 'HDRS', envid: 'id+one=two', notify: ['SUCCESS', 'FAILURE'] },
        },
        Buffer.from('hé\r\n'),
      );
      expect(result.smtputf8).toBe(true);
      expect(result.dsn).toBe(true);
      await client.quit();
    },
  );

  transcript(
    'a SIZE over the limit and a non-ASCII address without SMTPUTF8 fail before anything is sent',
    `
S: 220 mx.example
C: EHLO client.example
S: 250-mx.example
S: 250 SIZE 10
C: QUIT
S: 221 bye`,
    async (client) => {
      const big = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x'.repeat(11)).catch((e: unknown) => e);
      expect((big as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_SIZE_EXCEEDED');
      const utf8 = await client.send({ from: 'jörg@example.org', to: ['b@example.net'] }, 'x').catch((e: unknown) => e);
      expect((utf8 as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_UTF8_UNSUPPORTED');
      const injected = await client.send({ from: 'a@example.org>\r\nRCPT TO:<evil@example.com', to: ['b@example.net'] }, 'x').catch((e: unknown) => e);
      expect((injected as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_INVALID_ARGUMENT');
      expect(client.closed).toBe(false);
      await client.quit();
    },
  );

  transcript(
    'BDAT when CHUNKING is offered: chunks, LAST, no dot-stuffing, bare LF made CRLF',
    `
S: 220 mx.example
C: EHLO client.example
S: 250-mx.example
S: 250-PIPELINING
S: 250 CHUNKING
C: MAIL FROM:<a@example.org>
C: RCPT TO:<b@example.net>
S: 250 ok
S: 250 ok
C: BDAT 8
C: .a
C: .b
S: 250 2.0.0 8 octets
C: BDAT 3 LAST
C: c
S: 250 2.0.0 queued`,
    async (client, transport) => {
      const result = await client.send({ from: 'a@example.org', to: ['b@example.net'] }, (async function* () {
        yield await Promise.resolve(Buffer.from('.a\n.b'));
        yield Buffer.from('\nc');
      })());
      expect(result.transfer).toBe('BDAT');
      expect(result.reply.lines).toEqual(['queued']);
      client.close();
      expect(transport.destroyed).toBe(true);
    },
    { limits: { maxBdatChunkBytes: 8 } },
  );

  transcript(
    'a stream body on a server with 8BITMIME declares BODY=8BITMIME',
    `${EHLO}
C: MAIL FROM:<a@example.org> BODY=8BITMIME
C: RCPT TO:<b@example.net>
C: DATA
S: 250 ok
S: 250 ok
S: 354 go
C: a
C: .
S: 250 ok`,
    async (client) => {
      await client.send({ from: 'a@example.org', to: ['b@example.net'] }, [Buffer.from('a\r\n')]);
      client.close();
    },
  );
});

describe('LMTP transcripts', () => {
  transcript(
    'LHLO and one reply per accepted recipient after the data',
    `
S: 220 lmtp.example LMTP
C: LHLO client.example
S: 250-lmtp.example
S: 250-PIPELINING
S: 250 ENHANCEDSTATUSCODES
C: MAIL FROM:<a@example.org>
C: RCPT TO:<b@example.net>
C: RCPT TO:<gone@example.net>
C: RCPT TO:<full@example.net>
C: DATA
S: 250 2.1.0 ok
S: 250 2.1.5 ok
S: 550 5.1.1 unknown
S: 250 2.1.5 ok
S: 354 go
C: hi
C: .
S: 250 2.0.0 <b@example.net> delivered
S: 452 4.2.2 <full@example.net> mailbox full
C: QUIT
S: 221 bye`,
    async (client) => {
      const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'gone@example.net', 'full@example.net'] }, 'hi');
      expect(result.accepted).toEqual(['b@example.net']);
      expect(result.rejected).toEqual(['gone@example.net', 'full@example.net']);
      expect(result.recipients[2]?.dataReply?.enhanced).toBe('4.2.2');
      expect(result.recipients[1]?.dataReply).toBeUndefined();
      await client.quit();
    },
    { lmtp: true },
  );

  transcript(
    'LMTP with BDAT: per-recipient replies after BDAT LAST',
    `
S: 220 lmtp.example LMTP
C: LHLO client.example
S: 250-lmtp.example
S: 250 CHUNKING
C: MAIL FROM:<a@example.org>
C: RCPT TO:<b@example.net>
C: RCPT TO:<c@example.net>
S: 250 ok
S: 250 ok
S: 250 ok
C: BDAT 4 LAST
C: hi
S: 250 b ok
S: 250 c ok`,
    async (client) => {
      const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'c@example.net'] }, 'hi');
      expect(result.accepted).toEqual(['b@example.net', 'c@example.net']);
      expect(result.recipients.map((r) => r.dataReply?.lines[0])).toEqual(['b ok', 'c ok']);
      client.close();
    },
    { lmtp: true },
  );
});

describe('timeouts and cancellation', () => {
  it('greeting timeout: 5 minutes on the clock (RFC 5321 §4.5.3.2.1)', async () => {
    const clock = new VirtualClock();
    const transport = new ScriptedTransport('WAIT');
    const opening = SmtpClientConnection.open(transport, { clock }).catch((e: unknown) => e);
    await Promise.resolve();
    clock.advance(299_999);
    await Promise.resolve();
    expect(transport.destroyed).toBe(false);
    clock.advance(1);
    const err = (await opening) as SmtpClientError;
    expect(err.code).toBe('ERR_SMTP_CLIENT_TIMEOUT');
    expect(transport.destroyed).toBe(true);
  });

  it('DATA termination timeout: 10 minutes', async () => {
    const clock = new VirtualClock();
    const transport = new ScriptedTransport(`${EHLO}
C: MAIL FROM:<a@example.org> SIZE=1
C: RCPT TO:<b@example.net>
C: DATA
S: 250 ok
S: 250 ok
S: 354 go
C: x
C: .
WAIT`);
    const client = await SmtpClientConnection.open(transport, { clock, name: 'client.example' });
    const sending = client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x').catch((e: unknown) => e);
    for (let i = 0; i < 20; i++) await Promise.resolve();
    clock.advance(599_999);
    expect(transport.destroyed).toBe(false);
    clock.advance(1);
    expect(((await sending) as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_TIMEOUT');
    const after = await client.noop().catch((e: unknown) => e);
    expect((after as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_STATE');
  });

  it('AbortSignal ends the wait and the connection', async () => {
    const controller = new AbortController();
    const transport = new ScriptedTransport('WAIT');
    const opening = SmtpClientConnection.open(transport, { clock: new VirtualClock(), signal: controller.signal }).catch((e: unknown) => e);
    controller.abort(new Error('user gave up'));
    expect(((await opening) as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_ABORTED');
    expect(transport.destroyed).toBe(true);
  });

  it('await using sends QUIT and closes', async () => {
    const transport = new ScriptedTransport(`${EHLO}
C: QUIT
S: 221 bye`);
    {
      await using client = await SmtpClientConnection.open(transport, { clock: new VirtualClock(), name: 'client.example' });
      expect(client.capabilities?.dsn).toBe(true);
    }
    expect(transport.finished).toBe(true);
    expect(transport.destroyed).toBe(true);
  });

  it('a body stream that fails mid-way drops the connection (a truncated message is never ended with ".")', async () => {
    const transport = new ScriptedTransport(`${EHLO}
C: MAIL FROM:<a@example.org> BODY=8BITMIME
C: RCPT TO:<b@example.net>
C: DATA
S: 250 ok
S: 250 ok
S: 354 go
C: first`);
    const client = await SmtpClientConnection.open(transport, { clock: new VirtualClock(), name: 'client.example' });
    const boom = new Error('disk on fire');
    const err = await client
      .send({ from: 'a@example.org', to: ['b@example.net'] }, (async function* () {
        yield await Promise.resolve(Buffer.from('first\r\n'));
        throw boom;
      })())
      .catch((e: unknown) => e);
    expect(err).toBe(boom);
    expect(transport.destroyed).toBe(true);
    expect(transport.finished).toBe(true);
  });
});
