import { describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { createSmtpTestSession } from '../../src/testing/index.js';
import { receiver } from './helpers.js';

const EHLO = 'EHLO client.example\r\n';
const TX = 'MAIL FROM:<a@client.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n';

/** RFC 5321 §4.5.2 and the 2023 SMTP smuggling research (SEC Consult): only CRLF.CRLF ends a body. */
const smuggling = ['\n.\n', '\n.\r\n', '\r\n.\n', '\r.\r\n', '\r\n.\r', '\r.\r', '\r\n.\r\r\n', '\r\n.\x00\r\n'];

describe('SMTP smuggling', () => {
  for (const policy of ['reject', 'normalize'] as const) {
    for (const seq of smuggling) {
      it(`${JSON.stringify(seq)} then a second transaction: at most one message (${policy})`, async () => {
        const store: { envelope: unknown; body: string }[] = [];
        const t = await createSmtpTestSession(receiver(store, { bareLineEndings: policy }));
        await t.send(EHLO);
        const attack = `${TX}Subject: one\r\n\r\nfirst body${seq}MAIL FROM:<evil@client.example>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: smuggled\r\n\r\nsecond\r\n.\r\nQUIT\r\n`;
        const out = await t.send(attack);
        expect(store.length).toBeLessThanOrEqual(1);
        // The smuggled MAIL was never read as a command: exactly one MAIL reply.
        expect(out.match(/^250 2\.1\.0/gm)?.length).toBe(1);
        if (policy === 'reject' && /[\r\n]/.test(seq.replace(/\r\n/g, ''))) {
          expect(store.length).toBe(0);
          expect(out).toMatch(/^550 5\.5\.2 Bare CR or LF/m);
        }
        expect(out).toMatch(/^221 /m);
      });
    }
  }

  it('a body with only CRLF line endings is accepted unchanged under reject', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await createSmtpTestSession(receiver(store));
    await t.send(EHLO);
    const out = await t.send(`${TX}a\r\n..b\r\n.\r\n`);
    expect(out).toMatch(/^250 2\.0\.0/m);
    expect(store[0]?.body).toBe('a\r\n.b\r\n');
  });

  it('normalize turns bare CR and LF into CRLF', async () => {
    const store: { envelope: unknown; body: string }[] = [];
    const t = await createSmtpTestSession(receiver(store, { bareLineEndings: 'normalize' }));
    await t.send(EHLO);
    await t.send(`${TX}a\nb\rc\r\n.\r\n`);
    expect(store[0]?.body).toBe('a\r\nb\r\nc\r\n');
  });

  it('a command line with a bare LF is one refused line, not two commands', async () => {
    const t = await createSmtpTestSession(receiver());
    await t.send(EHLO);
    const out = await t.send('RSET\nNOOP\r\n');
    expect(out).toBe('500 5.5.2 Bare CR or LF not allowed\r\n');
  });
});

describe('STARTTLS injection (RFC 3207 §4.2, CVE-2011-0411)', () => {
  it('commands pipelined after STARTTLS in plaintext are discarded', async () => {
    const t = await createSmtpTestSession(receiver());
    await t.send(EHLO);
    const out = await t.send('STARTTLS\r\nMAIL FROM:<injected@evil.example>\r\n');
    expect(out).toBe('220 2.0.0 Ready to start TLS\r\n');
    expect(t.session.discardedPlaintextBytes).toBeGreaterThan(0);
    expect(await t.send('NOOP\r\n')).toBe('250 2.0.0 OK\r\n');
  });

  it('a partial line before the handshake completed after it gets no 250', async () => {
    const t = await createSmtpTestSession(receiver());
    await t.send(EHLO);
    expect(await t.send('STARTTLS\r\nNOOP')).toBe('220 2.0.0 Ready to start TLS\r\n');
    // Over "TLS": the CRLF that would complete the plaintext NOOP.
    const out = await t.send('\r\n');
    expect(out).not.toMatch(/^250/m);
  });

  it('after TLS all state is reset: MAIL before a new EHLO gets 503', async () => {
    const t = await createSmtpTestSession(receiver());
    await t.send(EHLO);
    await t.send('STARTTLS\r\n');
    expect(t.session.info.secure).toBe(true);
    expect(t.session.info.helo).toBeUndefined();
    expect(await t.send('MAIL FROM:<a@client.example>\r\n')).toMatch(/^503 5\.5\.1/);
    const ehlo = await t.send(EHLO);
    expect(ehlo).not.toMatch(/STARTTLS/);
  });

  it('bytes arriving during the handshake are never processed', async () => {
    const t = await createSmtpTestSession({ ...receiver(), autoTls: false });
    await t.send(EHLO);
    await t.send('STARTTLS\r\n');
    t.session.receive(Buffer.from('RSET\r\n'));
    t.session.tlsEstablished();
    expect(await t.send('')).toBe('');
    expect(t.session.discardedPlaintextBytes).toBe(6);
  });
});

describe('open relay', () => {
  it('without onRcptTo every recipient is refused', async () => {
    const t = await createSmtpTestSession({ hostname: 'mx.example.org' });
    await t.send(EHLO);
    const out = await t.send('MAIL FROM:<a@client.example>\r\nRCPT TO:<anyone@elsewhere.example>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n');
    expect(out).toBe('250 2.1.0 Sender OK\r\n550 5.7.1 Relaying denied\r\n550 5.7.1 Relaying denied\r\n554 5.5.1 No valid recipients\r\n');
  });
});

describe('AUTH throttling', () => {
  it('each failure waits longer, then 421 and close', async () => {
    const clock = new VirtualClock(0);
    const t = await createSmtpTestSession({
      clock,
      connection: { secure: true },
      auth: { mechanisms: ['PLAIN'], backend: { verifyPassword: () => Promise.resolve(false) } },
      authFailureDelayMs: 1000,
      maxAuthFailures: 3,
    });
    await t.send(EHLO);
    const bad = 'AUTH PLAIN ' + Buffer.from('\0u\0wrong').toString('base64') + '\r\n';
    const tick = async (): Promise<void> => {
      for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    };
    const delays: number[] = [];
    for (let i = 0; i < 3; i++) {
      t.session.receive(Buffer.from(bad));
      await tick();
      expect(t.take()).toBe('');
      let waited = 0;
      let out = '';
      while (out === '' && waited < 10_000) {
        clock.advance(250);
        waited += 250;
        await tick();
        out = t.take();
      }
      delays.push(waited);
      if (i < 2) expect(out).toMatch(/^535 5\.7\.8 /);
      else expect(out).toMatch(/^421 4\.7\.0 /);
    }
    expect(delays).toEqual([1000, 2000, 4000]);
    expect(t.isClosed()).toBe(true);
  });
});

describe('hostile clients', () => {
  it('a client talking before the greeting is refused', async () => {
    const clock = new VirtualClock(0);
    const t = await createSmtpTestSession({ ...receiver(), clock, greetingDelayMs: 1000 });
    t.session.receive(Buffer.from(EHLO));
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    expect(t.take()).toBe('554 5.5.0 mx.example.org Protocol error: talking too soon\r\n');
    expect(t.isClosed()).toBe(true);
  });

  it('an HTTP request line closes the connection', async () => {
    const t = await createSmtpTestSession(receiver());
    t.take();
    const out = await t.send('POST / HTTP/1.1\r\nHost: mx.example.org\r\n\r\n');
    expect(out).toBe('554 5.7.0 This is an SMTP server, not HTTP\r\n');
    expect(t.isClosed()).toBe(true);
  });

  it('NUL bytes are refused', async () => {
    const t = await createSmtpTestSession(receiver());
    t.take();
    expect(await t.send('EHLO a\0b\r\n')).toBe('500 5.5.2 NUL characters not allowed\r\n');
  });

  it('over-long lines are refused and the session resynchronises', async () => {
    const t = await createSmtpTestSession(receiver());
    t.take();
    const out = await t.send('NOOP ' + 'x'.repeat(5000) + '\r\nNOOP\r\n');
    expect(out).toBe('500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n');
    const huge = await t.send('NOOP ' + 'x'.repeat(20000) + '\r\nNOOP\r\n');
    expect(huge).toBe('500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n');
  });

  it('too many unrecognized commands: 421 and close', async () => {
    const t = await createSmtpTestSession({ ...receiver(), maxUnrecognizedCommands: 3 });
    t.take();
    const out = await t.send('FOO\r\nBAR\r\nBAZ\r\nQUX\r\nNOOP\r\n');
    expect(out).toBe('500 5.5.1 Command unrecognized\r\n'.repeat(3) + '421 4.7.0 mx.example.org Too many errors, closing connection\r\n');
    expect(t.isClosed()).toBe(true);
  });

  it('too many invalid commands: 421 and close', async () => {
    const t = await createSmtpTestSession({ ...receiver(), maxInvalidCommands: 2 });
    await t.send(EHLO);
    const out = await t.send('MAIL FROM:bad\r\nMAIL FROM:bad\r\nMAIL FROM:bad\r\n');
    expect(out).toMatch(/^501 5\.1\.7 .*\r\n501 5\.1\.7 .*\r\n421 4\.7\.0 /);
  });

  it('too many commands before AUTH on a submission server: 421', async () => {
    const t = await createSmtpTestSession({
      ...receiver(),
      submission: true,
      connection: { secure: true },
      auth: { mechanisms: ['PLAIN'], backend: { verifyPassword: () => Promise.resolve(true) } },
      maxCommandsBeforeAuth: 3,
    });
    const out = await t.send('EHLO a\r\nNOOP\r\nNOOP\r\nNOOP\r\n');
    expect(out).toMatch(/250 2\.0\.0 OK\r\n250 2\.0\.0 OK\r\n421 4\.7\.0 .*before authentication\r\n$/);
  });

  it('invalid UTF-8 in a command is refused', async () => {
    const t = await createSmtpTestSession(receiver());
    t.take();
    expect(await t.send(Buffer.from([0x45, 0x48, 0x4c, 0x4f, 0x20, 0xff, 0x0d, 0x0a]))).toBe('500 5.5.2 Invalid UTF-8\r\n');
  });
});
