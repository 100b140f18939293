/**
 * Waiting on hooks without pausing the socket for nothing: with a transport
 * that has `hold`/`release` (the Node adapter's), the session pauses reading
 * only when bytes arrive while a hook or the body consumer is awaited.
 * Without them (custom transports), it pauses at once, as before.
 */
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { createSmtpServerSession } from '../../src/server/session.js';
import type { SmtpServerSessionOptions, SmtpServerTransport } from '../../src/server/types.js';
import { createSmtpTestSession } from '../../src/testing/index.js';
import { receiver } from './helpers.js';

type Event = 'hold' | 'release' | 'pause' | 'resume';

function open(options: Partial<SmtpServerSessionOptions>, withHold = true) {
  const events: Event[] = [];
  let out = '';
  const transport: SmtpServerTransport = {
    write: (bytes) => void (out += Buffer.from(bytes).toString('utf8')),
    startTls: () => undefined,
    close: () => undefined,
    pause: () => void events.push('pause'),
    resume: () => void events.push('resume'),
    ...(withHold ? { hold: () => void events.push('hold'), release: () => void events.push('release') } : {}),
  };
  const session = createSmtpServerSession({ ...receiver(), ...options, clock: new VirtualClock() }, transport, { remoteAddress: '192.0.2.1' });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  };
  const take = (): string => {
    const text = out;
    out = '';
    return text;
  };
  return { session, events, settle, take };
}

const gate = (): { wait: Promise<void>; open: () => void } => {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
};

describe('hold and release around hooks', () => {
  it('hooks that resolve at once: held and released, the transport never paused', async () => {
    const t = open({});
    await t.session.start();
    t.session.receive(Buffer.from('EHLO c.example\r\n'));
    await t.settle();
    t.session.receive(Buffer.from('MAIL FROM:<a@c.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n'));
    await t.settle();
    t.session.receive(Buffer.from('Subject: x\r\n\r\nbody\r\n.\r\n'));
    await t.settle();
    expect(t.take()).toMatch(/250 2\.1\.5 Recipient OK\r\n354 [^\r]*\r\n250 2\.0\.0 Message accepted\r\n$/);
    expect(t.events).not.toContain('pause');
    expect(t.events).not.toContain('resume');
    // onRcptTo, then onData's result: each wait held the idle timer, and released it.
    expect(t.events.filter((e) => e === 'hold').length).toBeGreaterThanOrEqual(2);
    expect(t.events.filter((e) => e === 'hold').length).toBe(t.events.filter((e) => e === 'release').length);
    expect(t.events.at(-1)).toBe('release');
  });

  it('bytes that arrive while a hook waits pause the transport once; all is answered in order after', async () => {
    const g = gate();
    const t = open({ onMailFrom: () => g.wait });
    await t.session.start();
    t.session.receive(Buffer.from('EHLO c.example\r\n'));
    await t.settle();
    t.take();
    t.events.length = 0;
    t.session.receive(Buffer.from('MAIL FROM:<a@c.example>\r\n'));
    await t.settle();
    expect(t.events).toEqual(['hold']); // the hook waits; nothing came in: still reading
    t.session.receive(Buffer.from('RCPT TO:<b@example.org>\r\n'));
    t.session.receive(Buffer.from('NOOP\r\n')); // a socket may hand over one more chunk before pause takes effect
    await t.settle();
    expect(t.events).toEqual(['hold', 'pause']);
    expect(t.take()).toBe('');
    g.open();
    await t.settle();
    expect(t.take()).toBe('250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.0.0 OK\r\n');
    expect(t.events).toEqual(['hold', 'pause', 'release', 'resume']);
  });

  it('a lagging body consumer: the transport is paused once body bytes arrive, and the body is complete after', async () => {
    let seen = 0;
    const g = gate();
    const t = open({
      onData: async (_env, body) => {
        for await (const chunk of body) {
          seen += chunk.length;
          await g.wait; // a consumer stuck on its disk
        }
      },
    });
    await t.session.start();
    t.session.receive(Buffer.from('EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n'));
    await t.settle();
    const piece = Buffer.from(('x'.repeat(998) + '\r\n').repeat(64)); // 64 KB
    for (let i = 0; i < 8; i++) t.session.receive(piece);
    await t.settle();
    expect(t.events).toContain('pause');
    expect(t.session.currentPhase).toBe('data');
    expect(seen).toBeLessThan(8 * piece.length);
    t.session.receive(Buffer.from('.\r\n'));
    g.open();
    await t.settle();
    expect(t.take()).toMatch(/250 2\.0\.0 Message accepted\r\n$/);
    expect(seen).toBe(8 * piece.length);
    expect(t.events.at(-1)).toBe('resume');
  });

  it('a transport without hold/release is paused as soon as a hook is awaited', async () => {
    const g = gate();
    const t = open({ onMailFrom: () => g.wait }, false);
    await t.session.start();
    t.session.receive(Buffer.from('EHLO c.example\r\nMAIL FROM:<a@c.example>\r\n'));
    await t.settle();
    expect(t.events).toEqual(['pause']);
    g.open();
    await t.settle();
    expect(t.take()).toMatch(/250 2\.1\.0 Sender OK\r\n$/);
    expect(t.events).toEqual(['pause', 'resume']);
  });
});

describe('command lines (fast paths keep the checks)', () => {
  it('HTTP request lines and header lines are refused whichever comes first', async () => {
    for (const line of ['GET / HTTP/1.0', 'Host: mx.example.org', 'user-agent: curl/8']) {
      const t = await createSmtpTestSession(receiver());
      t.take();
      expect(await t.send(`${line}\r\n`)).toBe('554 5.7.0 This is an SMTP server, not HTTP\r\n');
      expect(t.isClosed()).toBe(true);
    }
  });

  it('an SMTP verb whose argument looks like HTTP is still an SMTP command', async () => {
    const t = await createSmtpTestSession(receiver());
    t.take();
    expect(await t.send('HELO GET\r\n')).toMatch(/^250 mx\.example\.org Hello GET /);
    expect(await t.send('NOOP HTTP/1.1\r\n')).toBe('250 2.0.0 OK\r\n');
    expect(t.isClosed()).toBe(false);
  });

  it('UTF-8 command lines are decoded as UTF-8, and only valid UTF-8 is taken', async () => {
    const t = await createSmtpTestSession(receiver());
    t.take();
    expect(await t.send('EHLO bücher.example\r\n')).toMatch(/^250-mx\.example\.org Hello bücher\.example /);
    expect(await t.send('MAIL FROM:<jösé@bücher.example> SMTPUTF8\r\n')).toBe('250 2.1.0 Sender OK\r\n');
    // Latin-1 bytes of the same name are not UTF-8.
    expect(await t.send(Buffer.concat([Buffer.from('RCPT TO:<j'), Buffer.from([0xf6]), Buffer.from('@example.org>\r\n')]))).toBe('500 5.5.2 Invalid UTF-8\r\n');
  });
});
