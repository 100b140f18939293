/**
 * Test helpers for SMTP servers built on @pigeonpost/smtp-core: drive a
 * server session without sockets (`createSmtpTestSession`) and check it
 * against `C:`/`S:` transcripts (`runSmtpTranscript`), the format of the RFCs'
 * own examples.
 */
import type { Clock } from '@pigeonpost/wire';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { createSmtpServerSession } from '../server/session.js';
import type { SmtpServerSession } from '../server/session.js';
import type { SmtpConnectionInfo, SmtpServerSessionOptions } from '../server/types.js';

export interface SmtpTestSessionOptions extends Omit<SmtpServerSessionOptions, 'clock'> {
  /** Default: a `VirtualClock` at 0 (advance it yourself). */
  readonly clock?: Clock;
  /** The connection as the session sees it. Default: 192.0.2.1, plaintext, STARTTLS available. */
  readonly connection?: Partial<SmtpConnectionInfo>;
  /** Complete a requested TLS handshake at once (simulated). Default true. */
  readonly autoTls?: boolean;
}

export interface SmtpTestSession {
  readonly session: SmtpServerSession;
  readonly clock: Clock;
  /** Every `transport.write`, as text, in order. */
  readonly writes: string[];
  /** Transport events other than writes, in order. */
  readonly events: ('startTls' | 'close' | 'pause' | 'resume')[];
  /** True once the session asked to close the connection. */
  readonly isClosed: () => boolean;
  /** Everything written since the last `take()`, and forget it. */
  take(): string;
  /** Send bytes (optionally one byte per `receive`), wait until the session is idle, and return what it wrote. */
  send(data: string | Uint8Array, options?: { byteByByte?: boolean }): Promise<string>;
}

/** Start a session on an in-memory transport and wait for its greeting. */
export async function createSmtpTestSession(options: SmtpTestSessionOptions = {}): Promise<SmtpTestSession> {
  const clock = options.clock ?? new VirtualClock(0);
  const writes: string[] = [];
  const events: SmtpTestSession['events'] = [];
  let pending = '';
  let closed = false;
  const connection: SmtpConnectionInfo = { remoteAddress: '192.0.2.1', remotePort: 40000, startTlsAvailable: true, ...options.connection };
  const session: SmtpServerSession = createSmtpServerSession(
    { ...options, clock },
    {
      write: (bytes) => {
        const text = Buffer.from(bytes).toString('utf8');
        writes.push(text);
        pending += text;
      },
      startTls: () => {
        events.push('startTls');
        if (options.autoTls !== false) queueMicrotask(() => session.tlsEstablished());
      },
      close: () => {
        closed = true;
        events.push('close');
      },
      pause: () => events.push('pause'),
      resume: () => events.push('resume'),
    },
    connection,
  );
  const started = session.start();
  const s = session;
  const tick = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
  const settle = async (): Promise<void> => {
    // Hooks resolve on the microtask queue; let them run, then wait for the
    // loop — but not forever: a session waiting on the (virtual) clock, e.g.
    // the AUTH failure delay, stays busy until the test advances it.
    for (let i = 0; i < 5; i++) {
      await tick();
      while (s.busy && !s.waitingForClock) await tick();
    }
  };
  if (!(clock instanceof VirtualClock) || (options.greetingDelayMs ?? 0) === 0) await started;
  return {
    session: s,
    clock,
    writes,
    events,
    isClosed: () => closed,
    take() {
      const out = pending;
      pending = '';
      return out;
    },
    async send(data, sendOptions = {}) {
      const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      if (sendOptions.byteByByte === true) {
        for (let i = 0; i < bytes.length; i++) {
          s.receive(bytes.subarray(i, i + 1));
          await Promise.race([s.whenIdle(), tick()]);
        }
      } else {
        s.receive(bytes);
      }
      await settle();
      const out = pending;
      pending = '';
      return out;
    },
  };
}

export interface TranscriptResult {
  /** The expected server lines; wildcard lines (`*`) replaced by the actual line they matched. */
  readonly expected: readonly string[];
  readonly actual: readonly string[];
}

/**
 * Run a `C:`/`S:` transcript against a fresh session. Consecutive `C:` lines
 * are sent as one pipelined chunk (each followed by CRLF), or one byte at a
 * time with `byteByByte`; consecutive `S:` lines are the replies expected
 * next. In an `S:` line, `*` matches any text. Other lines are ignored.
 * Compare `expected` with `actual`.
 */
export async function runSmtpTranscript(transcript: string, options: SmtpTestSessionOptions = {}, runOptions: { byteByByte?: boolean } = {}): Promise<TranscriptResult> {
  const t = await createSmtpTestSession(options);
  const expected: string[] = [];
  const actual: string[] = [];
  const queue: string[] = [];
  const collect = (text: string): void => {
    for (const line of text.split('\r\n').slice(0, -1)) queue.push(line);
  };
  collect(t.take());
  const lines = transcript.split('\n').map((l) => l.replace(/\r$/, '').replace(/^\s+/, ''));
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? '';
    if (line.startsWith('C:')) {
      let chunk = '';
      while (i < lines.length && (lines[i] ?? '').startsWith('C:')) {
        chunk += (lines[i] ?? '').slice(3) + '\r\n';
        i++;
      }
      collect(await t.send(chunk, runOptions));
      continue;
    }
    if (line.startsWith('S:')) {
      const want = line.slice(3);
      const got = queue.shift() ?? '<nothing>';
      const pattern = new RegExp('^' + want.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$');
      expected.push(want.includes('*') && pattern.test(got) ? got : want);
      actual.push(got);
    }
    i++;
  }
  for (const extra of queue) actual.push(extra);
  return { expected, actual };
}
