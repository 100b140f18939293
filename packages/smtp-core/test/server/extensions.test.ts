import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSaslClient, deriveScramCredentials, Secret } from '@pigeonpost/wire';
import type { SaslBackend } from '@pigeonpost/wire';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { smtpReply } from '../../src/errors.js';
import type { SmtpEnvelope } from '../../src/server/types.js';
import { createSmtpTestSession } from '../../src/testing/index.js';
import { receiver } from './helpers.js';

const EHLO = 'EHLO client.example\r\n';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

async function open(extra: Parameters<typeof receiver>[1] = {}, store: { envelope: unknown; body: string }[] = []) {
  const t = await createSmtpTestSession(receiver(store, extra));
  t.take();
  return t;
}

describe('EHLO advertises only what is enabled', () => {
  it('defaults', async () => {
    const t = await open();
    const out = await t.send(EHLO);
    expect(out.split('\r\n').slice(1, -1).map((l) => l.slice(4))).toEqual(['PIPELINING', 'SIZE 52428800', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'CHUNKING', 'STARTTLS', 'HELP']);
  });

  it('everything on, over TLS', async () => {
    const t = await open({
      connection: { secure: true, xclientAllowed: true },
      extensions: { dsn: true, binaryMime: true, requireTls: true, limits: true },
      auth: { mechanisms: ['SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER'], backend: backendForAll() },
      maxMessageBytes: 1000,
    });
    const out = await t.send(EHLO);
    expect(out).toContain('250-DSN\r\n');
    expect(out).toContain('250-BINARYMIME\r\n');
    expect(out).toContain('250-REQUIRETLS\r\n');
    expect(out).toContain('250-LIMITS RCPTMAX=100\r\n');
    expect(out).toContain('250-SIZE 1000\r\n');
    expect(out).toContain('250-AUTH SCRAM-SHA-256 PLAIN LOGIN CRAM-MD5 XOAUTH2 OAUTHBEARER\r\n');
    expect(out).toMatch(/250-XCLIENT /);
    expect(out).not.toContain('STARTTLS');
  });

  it('everything off', async () => {
    const t = await open({
      connection: { startTlsAvailable: false },
      extensions: { pipelining: false, size: false, eightBitMime: false, smtputf8: false, enhancedStatusCodes: false, chunking: false },
    });
    const out = await t.send(EHLO);
    expect(out).toBe('250-mx.example.org Hello client.example [192.0.2.1]\r\n250 HELP\r\n');
    expect(await t.send('NOOP\r\n')).toBe('250 OK\r\n');
    expect(await t.send('BDAT 1 LAST\r\n')).toBe('500 Command unrecognized\r\n');
    expect(await t.send('STARTTLS\r\n')).toBe('500 Command unrecognized\r\n');
    expect(await t.send('MAIL FROM:<a@b.example> BODY=8BITMIME\r\n')).toMatch(/^501 /);
  });
});

describe('PIPELINING (RFC 2920)', () => {
  it('replies to a pipelined group go out in one write', async () => {
    const t = await open();
    await t.send(EHLO);
    const before = t.writes.length;
    await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nDATA\r\n');
    expect(t.writes.length - before).toBe(1);
    expect(t.writes.at(-1)).toBe('250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n');
  });
});

describe('SIZE (RFC 1870)', () => {
  it('a declared size over the limit is refused at MAIL', async () => {
    const t = await open({ maxMessageBytes: 100 });
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example> SIZE=101\r\n')).toBe('552 5.3.4 Message size exceeds fixed maximum message size\r\n');
    expect(await t.send('MAIL FROM:<a@client.example> SIZE=100\r\n')).toBe('250 2.1.0 Sender OK\r\n');
  });

  it('is enforced during DATA: body discarded, 552 5.3.4, session usable', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await open({ maxMessageBytes: 100 }, store);
    await t.send(EHLO);
    const out = await t.send(`MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n${'x'.repeat(80)}\r\n${'y'.repeat(80)}\r\n.\r\nNOOP\r\n`);
    expect(out).toMatch(/354 .*\r\n552 5\.3\.4 Message size exceeds fixed maximum message size\r\n250 2\.0\.0 OK\r\n$/);
    expect(store).toHaveLength(0);
    await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nsmall\r\n.\r\n');
    expect(store).toHaveLength(1);
  });

  it('is enforced during BDAT', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await open({ maxMessageBytes: 10 }, store);
    await t.send(EHLO);
    const out = await t.send(`MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nBDAT 8\r\n12345678BDAT 8 LAST\r\n12345678NOOP\r\n`);
    expect(out).toMatch(/250 2\.0\.0 8 octets received\r\n552 5\.3\.4 .*\r\n250 2\.0\.0 OK\r\n$/);
    expect(store).toHaveLength(0);
  });
});

describe('a refused BDAT (RFC 3030 §2)', () => {
  it('its octets are read and dropped, never taken for commands, then it is answered', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await open({}, store);
    await t.send(EHLO);
    // Every recipient refused; a pipelining client has already sent the chunk, which holds command lines.
    const chunk = 'RSET\r\nMAIL FROM:<x@evil.example>\r\n';
    const out = await t.send(`MAIL FROM:<a@client.example>\r\nRCPT TO:<b@elsewhere.example>\r\nBDAT ${chunk.length} LAST\r\n${chunk}NOOP\r\n`);
    expect(out).toBe('250 2.1.0 Sender OK\r\n550 5.1.1 No such user here\r\n554 5.5.1 No valid recipients\r\n250 2.0.0 OK\r\n');
    expect(store).toHaveLength(0);
    // The transaction is still open (MAIL was accepted): RSET, then a new one works.
    expect(await t.send('RSET\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nBDAT 3 LAST\r\nx\r\n')).toMatch(/250 2\.0\.0 Message accepted\r\n$/);
    expect(store.map((m) => m.body)).toEqual(['x\r\n']);
  });

  it('before MAIL, split one byte at a time', async () => {
    const t = await open();
    await t.send(EHLO);
    let out = '';
    for (const byte of Buffer.from('BDAT 6\r\nQUIT\r\nNOOP\r\n')) out += await t.send(Buffer.from([byte]));
    expect(out).toBe('503 5.5.1 Bad sequence of commands\r\n250 2.0.0 OK\r\n');
  });
});

describe('8BITMIME, BINARYMIME, SMTPUTF8', () => {
  it('BODY=8BITMIME is accepted; BINARYMIME only when enabled and only with BDAT', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await open({ extensions: { binaryMime: true } }, store);
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example> BODY=8BITMIME\r\n')).toMatch(/^250/);
    await t.send('RSET\r\n');
    expect(await t.send('MAIL FROM:<a@client.example> BODY=BINARYMIME\r\nRCPT TO:<b@example.org>\r\nDATA\r\n')).toMatch(/503 5\.5\.1 BODY=BINARYMIME requires BDAT\r\n$/);
    expect(await t.send('BDAT 3 LAST\r\n\0\r\n')).toMatch(/^250 2\.0\.0/);
    expect(store[0]?.body).toBe('\0\r\n');
    expect((store[0]?.envelope as SmtpEnvelope).mailParams.body).toBe('BINARYMIME');
  });

  it('UTF-8 local parts and IDN domains only with SMTPUTF8', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await open({ onRcptTo: () => Promise.resolve() }, store);
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<jösé@bücher.example>\r\n')).toBe('553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n');
    expect(await t.send('MAIL FROM:<jösé@bücher.example> SMTPUTF8\r\n')).toBe('250 2.1.0 Sender OK\r\n');
    expect(await t.send('RCPT TO:<用户@例子.广告>\r\nDATA\r\nhi\r\n.\r\n')).toMatch(/^250 2\.1\.5.*\r\n354.*\r\n250 2\.0\.0/);
    const env = store[0]?.envelope as SmtpEnvelope;
    expect(env.mailFrom?.asciiDomain).toBe('xn--bcher-kva.example');
    expect(env.mailParams.smtputf8).toBe(true);
    await t.send('MAIL FROM:<a@client.example>\r\n');
    expect(await t.send('RCPT TO:<用户@example.org>\r\n')).toBe('553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n');
  });
});

describe('DSN (RFC 3461)', () => {
  it('RET, ENVID, NOTIFY, ORCPT are parsed, validated and handed to onData', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await open({ extensions: { dsn: true } }, store);
    await t.send(EHLO);
    const out = await t.send('MAIL FROM:<a@client.example> RET=HDRS ENVID=QQ314159+2B1\r\nRCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+40example.org\r\nDATA\r\nx\r\n.\r\n');
    expect(out).toMatch(/250 2\.0\.0 Message accepted\r\n$/);
    const env = store[0]?.envelope as SmtpEnvelope;
    expect(env.mailParams).toEqual({ ret: 'HDRS', envid: 'QQ314159+1' });
    expect(env.rcptTo[0]?.params).toEqual({ notify: ['SUCCESS', 'FAILURE'], orcpt: { type: 'rfc822', address: 'B@example.org' } });
  });

  it('invalid DSN parameters are refused; without DSN they are unknown', async () => {
    const t = await open({ extensions: { dsn: true } });
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example> RET=ALL\r\n')).toMatch(/^501 5\.5\.4/);
    expect(await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org> NOTIFY=NEVER,SUCCESS\r\n')).toMatch(/501 5\.5\.4 Invalid NOTIFY/);
    const plain = await open();
    await plain.send(EHLO);
    expect(await plain.send('MAIL FROM:<a@client.example> RET=FULL\r\n')).toBe('555 5.5.4 Unsupported parameter RET\r\n');
  });
});

describe('REQUIRETLS (RFC 8689) and LIMITS (RFC 9422)', () => {
  it('REQUIRETLS only over TLS', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await open({ extensions: { requireTls: true } }, store);
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example> REQUIRETLS\r\n')).toMatch(/^555 /);
    await t.send('STARTTLS\r\n');
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example> REQUIRETLS\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n')).toMatch(/250 2\.0\.0/);
    expect((store[0]?.envelope as SmtpEnvelope).mailParams.requireTls).toBe(true);
  });

  it('more recipients than maxRecipients get 452 4.5.3', async () => {
    const t = await open({ maxRecipients: 2, extensions: { limits: true } });
    expect(await t.send(EHLO)).toContain('LIMITS RCPTMAX=2');
    const out = await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\nRCPT TO:<d@example.org>\r\n');
    expect(out).toMatch(/452 4\.5\.3 Too many recipients\r\n$/);
  });
});

function backendForAll(): SaslBackend {
  return {
    verifyPassword: ({ authcid, password }) => Promise.resolve(authcid === 'tim' && password.expose() === 'tanstaaf'),
    getCramMd5Secret: ({ authcid }) => Promise.resolve(authcid === 'tim' ? new Secret('tanstaaf') : undefined),
    getScramCredentials: async ({ authcid }) => (authcid === 'tim' ? deriveScramCredentials(new Secret('tanstaaf'), { hash: 'SHA-256', iterations: 4096 }) : undefined),
    verifyOAuthToken: ({ user, token }) => Promise.resolve(user === 'tim' && token.expose() === 'tok' ? { ok: true } : { ok: false, status: 'invalid_token' }),
  };
}

describe('AUTH (RFC 4954)', () => {
  const authOptions = { auth: { mechanisms: ['SCRAM-SHA-256', 'PLAIN', 'LOGIN', 'CRAM-MD5', 'XOAUTH2', 'OAUTHBEARER'] as const, backend: backendForAll() }, connection: { secure: true } };

  it('is refused before TLS (538 5.7.11) and not advertised', async () => {
    const t = await open({ auth: authOptions.auth });
    expect(await t.send(EHLO)).not.toContain('AUTH');
    expect(await t.send(`AUTH PLAIN ${b64('\0tim\0tanstaaf')}\r\n`)).toBe('538 5.7.11 Encryption required for requested authentication mechanism\r\n');
  });

  it('allowInsecureAuth allows it', async () => {
    const t = await open({ auth: authOptions.auth, allowInsecureAuth: true });
    expect(await t.send(EHLO)).toContain('AUTH');
    expect(await t.send(`AUTH PLAIN ${b64('\0tim\0tanstaaf')}\r\n`)).toBe('235 2.7.0 Authentication successful\r\n');
  });

  it('PLAIN with an initial response, and with an empty challenge', async () => {
    const t = await open(authOptions);
    await t.send(EHLO);
    expect(await t.send('AUTH PLAIN\r\n')).toBe('334 \r\n');
    expect(await t.send(`${b64('\0tim\0tanstaaf')}\r\n`)).toBe('235 2.7.0 Authentication successful\r\n');
    expect(t.session.info.user?.authcid).toBe('tim');
    expect(await t.send('AUTH PLAIN\r\n')).toMatch(/^503 5\.5\.1/);
  });

  it('PLAIN with "=" (empty initial response) and "*" (cancel)', async () => {
    const t = await open(authOptions);
    await t.send(EHLO);
    // "=" is the empty initial response (RFC 4954 §4); an empty PLAIN message is malformed.
    expect(await t.send('AUTH PLAIN =\r\n')).toBe('501 5.5.2 Malformed authentication response\r\n');
    const t2 = await open(authOptions);
    await t2.send(EHLO);
    await t2.send('AUTH LOGIN\r\n');
    expect(await t2.send('*\r\n')).toBe('501 5.0.0 Authentication cancelled\r\n');
    expect(await t2.send('NOOP\r\n')).toBe('250 2.0.0 OK\r\n');
  });

  it('LOGIN', async () => {
    const t = await open(authOptions);
    await t.send(EHLO);
    expect(await t.send('AUTH LOGIN\r\n')).toBe('334 VXNlcm5hbWU6\r\n');
    expect(await t.send(`${b64('tim')}\r\n`)).toBe('334 UGFzc3dvcmQ6\r\n');
    expect(await t.send(`${b64('tanstaaf')}\r\n`)).toBe('235 2.7.0 Authentication successful\r\n');
  });

  it('CRAM-MD5', async () => {
    const t = await open(authOptions);
    await t.send(EHLO);
    const challenge = (await t.send('AUTH CRAM-MD5\r\n')).slice(4, -2);
    const digest = createHmac('md5', 'tanstaaf').update(Buffer.from(challenge, 'base64')).digest('hex');
    expect(await t.send(`${b64(`tim ${digest}`)}\r\n`)).toBe('235 2.7.0 Authentication successful\r\n');
  });

  it('SCRAM-SHA-256', async () => {
    const t = await open(authOptions);
    await t.send(EHLO);
    const client = createSaslClient('SCRAM-SHA-256', { username: 'tim', password: new Secret('tanstaaf') });
    let out = await t.send(`AUTH SCRAM-SHA-256 ${client.initialResponseEncoded()}\r\n`);
    while (out.startsWith('334 ')) out = await t.send(`${await client.respondEncoded(out.slice(4, -2))}\r\n`);
    expect(out).toBe('235 2.7.0 Authentication successful\r\n');
  });

  it('XOAUTH2 and OAUTHBEARER', async () => {
    const t = await open(authOptions);
    await t.send(EHLO);
    expect(await t.send(`AUTH XOAUTH2 ${b64('user=tim\x01auth=Bearer tok\x01\x01')}\r\n`)).toBe('235 2.7.0 Authentication successful\r\n');
    const t2 = await open(authOptions);
    await t2.send(EHLO);
    expect(await t2.send(`AUTH OAUTHBEARER ${b64('n,a=tim,\x01auth=Bearer tok\x01\x01')}\r\n`)).toBe('235 2.7.0 Authentication successful\r\n');
    const t3 = await open(authOptions);
    await t3.send(EHLO);
    const challenge = await t3.send(`AUTH XOAUTH2 ${b64('user=tim\x01auth=Bearer bad\x01\x01')}\r\n`);
    expect(challenge).toMatch(/^334 /);
    expect(await t3.send('\r\n')).toMatch(/^535 5\.7\.8/);
  });

  it('onAuth can refuse an identity', async () => {
    const t = await open({ ...authOptions, onAuth: () => Promise.reject(smtpReply(535, '5.7.8', 'Account disabled')) });
    await t.send(EHLO);
    expect(await t.send(`AUTH PLAIN ${b64('\0tim\0tanstaaf')}\r\n`)).toBe('535 5.7.8 Account disabled\r\n');
  });

  it('a submission server requires AUTH before MAIL (530 5.7.0)', async () => {
    const t = await open({ ...authOptions, submission: true });
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example>\r\n')).toBe('530 5.7.0 Authentication required\r\n');
    await t.send(`AUTH PLAIN ${b64('\0tim\0tanstaaf')}\r\n`);
    expect(await t.send('MAIL FROM:<a@client.example>\r\n')).toBe('250 2.1.0 Sender OK\r\n');
  });
});

describe('hooks and "nothing lost"', () => {
  it('the final 250 goes out only after onData resolved', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const t = await open({
      onData: async (_env, body) => {
        for await (const chunk of body) void chunk;
        await gate;
      },
    });
    await t.send(EHLO);
    t.session.receive(Buffer.from('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nhello\r\n.\r\n'));
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(t.take()).not.toMatch(/250 2\.0\.0/);
    release();
    await t.send('');
    expect(t.take() + t.writes.at(-1)).toMatch(/250 2\.0\.0 Message accepted/);
  });

  it('a hook that throws a typed error gives its reply; an untyped throw gives 451 4.3.0', async () => {
    const typed = await open({ onData: () => Promise.reject(smtpReply(554, '5.6.0', 'Content rejected')) });
    await typed.send(EHLO);
    expect(await typed.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n')).toMatch(/554 5\.6\.0 Content rejected\r\n$/);
    const untyped = await open({ onData: () => Promise.reject(new Error('disk full')), onMailFrom: () => Promise.resolve({ text: 'Go ahead' }) });
    await untyped.send(EHLO);
    expect(await untyped.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n')).toBe(
      '250 2.1.0 Go ahead\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n451 4.3.0 Temporary local problem, please try again later\r\n',
    );
  });

  it('onConnect can refuse the connection, onEhlo and onMailFrom can refuse their commands', async () => {
    const refused = await createSmtpTestSession({ onConnect: () => Promise.reject(smtpReply(554, '5.7.1', 'Listed at a DNSBL')) });
    expect(refused.take()).toBe('554 5.7.1 Listed at a DNSBL\r\n');
    expect(refused.isClosed()).toBe(true);
    const t = await open({ onEhlo: (name) => (name === 'bad' ? Promise.reject(smtpReply(550, '5.7.1', 'No')) : Promise.resolve()), onMailFrom: () => Promise.reject(smtpReply(550, '5.7.1', 'Sender refused')) });
    expect(await t.send('EHLO bad\r\n')).toBe('550 5.7.1 No\r\n');
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example>\r\n')).toBe('550 5.7.1 Sender refused\r\n');
  });

  it('the body streams with backpressure: the session pauses while the consumer lags', async () => {
    let seen = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const t = await open({
      onData: async (_env, body) => {
        for await (const chunk of body) {
          seen += chunk.length;
          await gate; // a consumer stuck on its disk
        }
      },
    });
    await t.send(EHLO);
    await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n');
    const piece = Buffer.from(('x'.repeat(998) + '\r\n').repeat(64)); // 64 KB
    for (let i = 0; i < 16; i++) t.session.receive(piece);
    t.session.receive(Buffer.from('.\r\n'));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    // Paused with the body unfinished: the session did not read on to the terminator.
    expect(t.events.at(-1)).toBe('pause');
    expect(t.session.currentPhase).toBe('data');
    expect(seen).toBeLessThan(16 * piece.length);
    release();
    expect(await t.send('')).toMatch(/^250 2\.0\.0/);
    expect(seen).toBe(16 * piece.length);
  });

  it('the DATA timeout ends a transfer that trickles (421 4.4.2)', async () => {
    const clock = new VirtualClock(0);
    const t = await createSmtpTestSession({ ...receiver(), clock, dataTimeoutMs: 60_000 });
    t.take();
    await t.send(EHLO);
    await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\npart');
    clock.advance(59_999);
    expect(await t.send('ial')).toBe('');
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
    expect(t.take()).toMatch(/^421 4\.4\.2 /);
    expect(t.isClosed()).toBe(true);
  });

  it('the DATA timeout runs from the start of each body, not from an earlier one (one timer, re-armed lazily)', async () => {
    const clock = new VirtualClock(0);
    const t = await createSmtpTestSession({ ...receiver(), clock, dataTimeoutMs: 60_000 });
    t.take();
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nfirst\r\n.\r\n')).toMatch(/250 2\.0\.0/);
    clock.advance(50_000);
    await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\npart');
    // The first body's deadline passes: the second body, 10 s old, is not timed out.
    clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    expect(t.take()).toBe('');
    expect(t.isClosed()).toBe(false);
    clock.advance(49_999);
    await new Promise((r) => setImmediate(r));
    expect(t.take()).toBe('');
    clock.advance(1);
    await new Promise((r) => setImmediate(r));
    expect(t.take()).toMatch(/^421 4\.4\.2 /);
    expect(t.isClosed()).toBe(true);
  });

  it('no DATA timeout once the body is read, however long the session stays', async () => {
    const clock = new VirtualClock(0);
    const t = await createSmtpTestSession({ ...receiver(), clock, dataTimeoutMs: 60_000 });
    t.take();
    await t.send(EHLO);
    expect(await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nx\r\n.\r\n')).toMatch(/250 2\.0\.0/);
    clock.advance(600_000);
    await new Promise((r) => setImmediate(r));
    expect(t.isClosed()).toBe(false);
    expect(await t.send('NOOP\r\n')).toMatch(/^250 /);
  });
});

describe('LMTP (RFC 2033)', () => {
  it('LHLO, and one reply per accepted recipient after DATA and BDAT', async () => {
    const t = await open({
      lmtp: true,
      onData: async (env, body) => {
        for await (const chunk of body) void chunk;
        return { recipients: env.rcptTo.map((r) => (r.address.localPart === 'full' ? smtpReply(452, '4.2.2', 'Mailbox full') : undefined)) };
      },
    });
    expect(await t.send(EHLO)).toBe('500 5.5.1 Command unrecognized\r\n');
    expect(await t.send('LHLO client.example\r\n')).toMatch(/^250-mx\.example\.org/);
    const out = await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<one@example.org>\r\nRCPT TO:<nobody@else.example>\r\nRCPT TO:<full@example.org>\r\nDATA\r\nx\r\n.\r\n');
    expect(out.split('\r\n').slice(-3, -1)).toEqual(['250 2.0.0 <one@example.org> Delivered', '452 4.2.2 Mailbox full']);
    const bdat = await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<one@example.org>\r\nRCPT TO:<two@example.org>\r\nBDAT 3 LAST\r\nx\r\n');
    expect(bdat).toMatch(/250 2\.0\.0 <one@example\.org> Delivered\r\n250 2\.0\.0 <two@example\.org> Delivered\r\n$/);
  });
});

describe('XCLIENT (Postfix), trusted networks only', () => {
  it('is refused when not trusted, and replaces the client when trusted', async () => {
    const untrusted = await open();
    expect(await untrusted.send('XCLIENT ADDR=203.0.113.7\r\n')).toBe('500 5.5.1 Command unrecognized\r\n');
    const t = await open({ connection: { xclientAllowed: true } });
    expect(await t.send('XCLIENT ADDR=203.0.113.7 NAME=mail.example.net LOGIN=alice\r\n')).toBe('220 mx.example.org ESMTP\r\n');
    expect(t.session.info.remoteAddress).toBe('203.0.113.7');
    expect(t.session.info.user?.authcid).toBe('alice');
    expect(await t.send('MAIL FROM:<a@client.example>\r\n')).toMatch(/^503/);
  });
});

describe('onClose and lenient addresses', () => {
  it('onClose runs once when the session ends (QUIT, or the peer hanging up)', async () => {
    const closed: string[] = [];
    const t = await open({ onClose: (s) => (closed.push(s.id), Promise.resolve()) });
    await t.send('QUIT\r\n');
    await t.session.closed;
    t.session.end();
    const u = await open({ onClose: (s) => (closed.push(s.id), Promise.resolve()) });
    u.session.end();
    await u.session.closed;
    expect(closed).toEqual([t.session.info.id, u.session.info.id]);
  });

  it('invalid addresses are refused; the opt-in lenient parser accepts common mistakes', async () => {
    const strict = await open();
    await strict.send(EHLO);
    expect(await strict.send('MAIL FROM:a@client.example\r\n')).toMatch(/^501 5\.1\.7 /);
    expect(await strict.send('MAIL FROM:<a..b@client.example>\r\n')).toMatch(/^501 5\.1\.7 /);
    expect(await strict.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<b@[999.1.1.1]>\r\n')).toMatch(/501 5\.1\.3 .*\r\n$/);
    const lenient = await open({ lenientAddresses: true });
    await lenient.send(EHLO);
    expect(await lenient.send('MAIL FROM:a..b@client.example\r\nRCPT TO:<b@[IPv6:2001:db8::1]>\r\n')).toBe('250 2.1.0 Sender OK\r\n550 5.1.1 No such user here\r\n');
  });
});

describe('misc commands', () => {
  it('HELP, VRFY, EXPN, NOOP, RSET, QUIT', async () => {
    const t = await open();
    expect(await t.send('HELP\r\n')).toMatch(/^214-2\.0\.0 .*\r\n214 2\.0\.0 See RFC 5321\r\n$/);
    expect(await t.send('VRFY alice\r\nEXPN staff\r\n')).toBe('252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery\r\n'.repeat(2));
    expect(await t.send('RSET\r\nQUIT\r\n')).toBe('250 2.0.0 Flushed\r\n221 2.0.0 mx.example.org Bye\r\n');
    expect(t.isClosed()).toBe(true);
  });

  it('VRFY and EXPN through onVrfy / onExpn (RFC 5321 §3.5)', async () => {
    const seen: string[] = [];
    const t = await open({
      onVrfy: (query, session) => {
        seen.push(`${query} from ${session.remoteAddress}`);
        if (query === 'Smith') return Promise.resolve({ mailboxes: ['Fred Smith <fred@example.org>', 'Sam Smith <sam@example.org>'] });
        if (query === 'secret') return Promise.reject(smtpReply(550, '5.7.1', 'Not telling'));
        if (query === 'broken') return Promise.reject(new Error('db down'));
        return Promise.resolve({ mailboxes: query === 'Crispin' ? ['Mark Crispin <Admin.MRC@example.org>'] : [] });
      },
      onExpn: (list) => Promise.resolve({ mailboxes: list === 'staff' ? ['<alice@example.org>', 'Bob <bob@example.org>\r\nX'] : [] }),
    });
    expect(await t.send('VRFY Crispin\r\n')).toBe('250 2.1.5 Mark Crispin <Admin.MRC@example.org>\r\n');
    expect(await t.send('VRFY  Smith \r\n')).toBe('553-5.1.4 User ambiguous, possibilities are:\r\n553-5.1.4 Fred Smith <fred@example.org>\r\n553 5.1.4 Sam Smith <sam@example.org>\r\n');
    expect(await t.send('VRFY nobody\r\nVRFY secret\r\nVRFY broken\r\n')).toBe('550 5.1.1 User unknown\r\n550 5.7.1 Not telling\r\n451 4.3.0 Temporary local problem, please try again later\r\n');
    // A CR/LF in what the hook returns cannot start a new reply line.
    expect(await t.send('EXPN staff\r\nEXPN other\r\n')).toBe('250-2.1.5 <alice@example.org>\r\n250 2.1.5 Bob <bob@example.org>  X\r\n550 5.1.1 Mailing list unknown\r\n');
    expect(seen).toEqual(['Crispin from 192.0.2.1', 'Smith from 192.0.2.1', 'nobody from 192.0.2.1', 'secret from 192.0.2.1', 'broken from 192.0.2.1']);
  });

  it('graceful shutdown says 421 4.3.2', async () => {
    const t = await open();
    await t.send(EHLO);
    t.session.shutdown();
    expect(t.take()).toBe('421 4.3.2 mx.example.org Service shutting down, closing connection\r\n');
  });
});
