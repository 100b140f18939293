/**
 * Drive a protocol server session without sockets: an in-memory transport
 * that records what the session writes and asks for (`createSessionHarness`),
 * and a runner for `C:`/`S:` transcripts, the format of the RFCs' own
 * examples (`runTranscript`). The SMTP and POP3 test helpers are built on it.
 */
import type { SessionTransport } from '../node/session-socket.js';

/** What the harness needs of a session. */
export interface HarnessSession {
  receive(chunk: Uint8Array): void;
  tlsEstablished(): void;
  /** Resolves when the session has handled everything it was given. */
  whenIdle(): Promise<unknown>;
  /** True while the session is working (a command, a hook, a backend call). */
  readonly busy: boolean;
  /** True while it waits for a timer (a delay the test advances on its clock). */
  readonly waitingForClock: boolean;
}

/** A transport event other than a write. */
export type SessionHarnessEvent = 'startTls' | 'close' | 'pause' | 'resume';

export interface SessionHarnessOptions {
  /** Complete a requested TLS handshake at once (simulated, on the microtask queue). Default true. */
  readonly autoTls?: boolean;
}

export interface SessionHarness {
  /** Hand it to the session, then `attach` the session. Records everything; never applies back-pressure (`write` returns true, `drain` resolves at once). */
  readonly transport: SessionTransport;
  /** The session the transport belongs to (for `send` and simulated TLS). Call once, right after creating it. */
  attach(session: HarnessSession): void;
  /** Every `transport.write`, as text, in order. */
  readonly writes: string[];
  /** Transport events other than writes, in order. */
  readonly events: SessionHarnessEvent[];
  /** True once the session asked to close the connection. */
  readonly isClosed: () => boolean;
  /** Everything written since the last `take()`, and forget it. */
  readonly take: () => string;
  /** Send bytes (optionally one byte per `receive`), let the session settle, and return what it wrote. */
  readonly send: (data: string | Uint8Array, options?: { byteByByte?: boolean }) => Promise<string>;
  /** Let pending work finish — but not work waiting for the clock — and return what was written meanwhile. (The functions need no `this`.) */
  readonly settle: () => Promise<string>;
}

/** Create a recording transport and the calls to drive its session. */
export function createSessionHarness(options: SessionHarnessOptions = {}): SessionHarness {
  const writes: string[] = [];
  const events: SessionHarnessEvent[] = [];
  let pending = '';
  let closed = false;
  let session: HarnessSession | undefined;
  const attached = (): HarnessSession => {
    if (session === undefined) throw new Error('createSessionHarness: attach(session) first');
    return session;
  };
  const tick = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));
  const settle = async (): Promise<void> => {
    const s = attached();
    // Hooks and backends resolve on the microtask queue; let them run, then
    // wait for the loop — but not forever: a session waiting on the (virtual)
    // clock, e.g. a failed-login delay, stays busy until the test advances it.
    for (let i = 0; i < 5; i++) {
      await tick();
      while (s.busy && !s.waitingForClock) await tick();
    }
  };
  const take = (): string => {
    const out = pending;
    pending = '';
    return out;
  };
  return {
    transport: {
      write: (bytes) => {
        const text = Buffer.from(bytes).toString('utf8');
        writes.push(text);
        pending += text;
        return true;
      },
      drain: () => Promise.resolve(),
      startTls: () => {
        events.push('startTls');
        if (options.autoTls !== false) queueMicrotask(() => session?.tlsEstablished());
      },
      close: () => {
        closed = true;
        events.push('close');
      },
      pause: () => events.push('pause'),
      resume: () => events.push('resume'),
    },
    attach(s) {
      session = s;
    },
    writes,
    events,
    isClosed: () => closed,
    take,
    send: async (data, sendOptions = {}) => {
      const s = attached();
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
      return take();
    },
    settle: async () => {
      await settle();
      return take();
    },
  };
}

/** Where a transcript is played: `take` the greeting, `send` each client chunk. */
export interface TranscriptTarget {
  take(): string;
  send(data: string, options?: { byteByByte?: boolean }): Promise<string>;
}

export interface TranscriptOptions {
  /** Send each `C:` group one byte per `receive`. Default false. */
  readonly byteByByte?: boolean;
  /** Let `*` in an `S:` line match a bare LF inside the line too. Default false. */
  readonly wildcardMatchesLineFeed?: boolean;
}

export interface TranscriptResult {
  /** The expected server lines; wildcard lines (`*`) replaced by the actual line they matched. */
  readonly expected: readonly string[];
  readonly actual: readonly string[];
}

/**
 * Play a `C:`/`S:` transcript. Consecutive `C:` lines are sent as one
 * pipelined chunk (each followed by CRLF); consecutive `S:` lines are the
 * server lines expected next (CRLF-separated). In an `S:` line, `*` matches
 * any text. Other lines are ignored; leading blanks are trimmed. Compare
 * `expected` with `actual` (unmatched server lines are appended to `actual`).
 */
export async function runTranscript(target: TranscriptTarget, transcript: string, options: TranscriptOptions = {}): Promise<TranscriptResult> {
  const expected: string[] = [];
  const actual: string[] = [];
  const queue: string[] = [];
  const collect = (text: string): void => {
    for (const line of text.split('\r\n').slice(0, -1)) queue.push(line);
  };
  const sendOptions = options.byteByByte === undefined ? {} : { byteByByte: options.byteByByte };
  collect(target.take());
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
      collect(await target.send(chunk, sendOptions));
      continue;
    }
    if (line.startsWith('S:')) {
      const want = line.slice(3);
      const got = queue.shift() ?? '<nothing>';
      const pattern = new RegExp('^' + want.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$', options.wildcardMatchesLineFeed === true ? 's' : '');
      expected.push(want.includes('*') && pattern.test(got) ? got : want);
      actual.push(got);
    }
    i++;
  }
  for (const extra of queue) actual.push(extra);
  return { expected, actual };
}
