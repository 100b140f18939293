/**
 * Test helpers for POP3 servers built on @pigeonpost/pop3-core: an in-memory
 * backend (`createMemoryPop3Backend`), a session without sockets
 * (`createPop3TestSession`), `C:`/`S:` transcripts (`runPop3Transcript`, the
 * format of the RFCs' own examples) and an in-memory client↔server pair
 * (`createPop3Pair`).
 */
import type { Clock } from '@pigeonpost/wire';
import { Secret } from '@pigeonpost/wire';
import { createSessionHarness, runTranscript, VirtualClock } from '@pigeonpost/wire/testing';
import type { SessionHarness, TranscriptResult } from '@pigeonpost/wire/testing';
import { pop3Reply } from '../errors.js';
import { createPop3ServerSession } from '../server/session.js';
import type { Pop3ServerSession } from '../server/session.js';
import type { Pop3Backend, Pop3ConnectionInfo, Pop3ServerMaildrop, Pop3ServerSessionOptions } from '../server/types.js';
import { Pop3ClientConnection } from '../client/connection.js';
import type { ClientTransport, Pop3ClientConnectionOptions } from '../client/connection.js';

/** One message of a memory maildrop. `body` is stored as given; sizes count a bare LF as CRLF. */
export interface MemoryPop3Message {
  readonly uid: number;
  readonly body: Uint8Array;
  seen: boolean;
}

export interface MemoryPop3Backend extends Pop3Backend {
  /** Messages by user; change them freely between sessions (or during one, to play IMAP). */
  readonly maildrops: Map<string, MemoryPop3Message[]>;
  /** Users whose maildrop is locked now. */
  readonly locked: Set<string>;
  /** Add a message to a user's maildrop; returns its UID. */
  add(user: string, body: string | Uint8Array): number;
  /** How many times `commit` ran (the UPDATE state). */
  readonly commits: number;
}

/** An async iterable whose first `next()` rejects with `error`. */
function failing(error: Error): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(error) }) };
}

function crlfSize(body: Uint8Array): number {
  let size = body.length;
  for (let i = 0; i < body.length; i++) if (body[i] === 0x0a && (i === 0 || body[i - 1] !== 0x0d)) size++;
  return size;
}

async function* topLines(body: Uint8Array, lines: number | undefined): AsyncGenerator<Uint8Array, void, undefined> {
  await Promise.resolve();
  if (lines === undefined) {
    // Two chunks, so consumers see a body split across reads.
    const half = body.length >> 1;
    yield body.subarray(0, half);
    yield body.subarray(half);
    return;
  }
  const text = Buffer.from(body);
  const headerEnd = /\r?\n\r?\n/.exec(text.toString('latin1'));
  if (headerEnd === null) {
    yield text;
    return;
  }
  let end = headerEnd.index + headerEnd[0].length;
  for (let left = lines; left > 0 && end < text.length; left--) {
    const lf = text.indexOf(0x0a, end);
    end = lf === -1 ? text.length : lf + 1;
  }
  yield text.subarray(0, end);
}

/**
 * An in-memory backend: plain passwords (USER/PASS, SASL PLAIN/LOGIN, APOP),
 * one maildrop per user, an exclusive lock per maildrop, UIDLs from UIDs.
 */
export function createMemoryPop3Backend(users: Readonly<Record<string, string>> = { alice: 'alice-password' }): MemoryPop3Backend {
  const maildrops = new Map<string, MemoryPop3Message[]>();
  const locked = new Set<string>();
  let nextUid = 1;
  let commits = 0;
  for (const user of Object.keys(users)) maildrops.set(user, []);
  const backend: MemoryPop3Backend = {
    maildrops,
    locked,
    get commits() {
      return commits;
    },
    add(user, body) {
      const list = maildrops.get(user) ?? [];
      maildrops.set(user, list);
      const uid = nextUid++;
      list.push({ uid, body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body, seen: false });
      return uid;
    },
    verifyPassword: ({ user, password }) => Promise.resolve(Object.hasOwn(users, user) && users[user] === password.expose()),
    getApopSecret: ({ user }) => Promise.resolve(Object.hasOwn(users, user) ? new Secret(users[user]!) : undefined),
    openMaildrop(user) {
      if (locked.has(user)) return Promise.reject(pop3Reply('IN-USE', 'Maildrop is locked by another POP3 session'));
      const list = maildrops.get(user) ?? [];
      locked.add(user);
      const snapshot = [...list];
      let released = false;
      const release = (): Promise<void> => {
        if (!released) {
          released = true;
          locked.delete(user);
        }
        return Promise.resolve();
      };
      const maildrop: Pop3ServerMaildrop = {
        messages: snapshot.map((m) => ({ uidl: `uid${m.uid}`, size: crlfSize(m.body) })),
        read(number, options) {
          const m = snapshot[number - 1];
          if (m === undefined || !(maildrops.get(user) ?? []).includes(m)) {
            return failing(pop3Reply(undefined, `Message ${number} was removed by another session`));
          }
          return topLines(m.body, options?.lines);
        },
        async commit({ deleted, seen }) {
          await Promise.resolve();
          commits++;
          for (const n of seen) {
            const m = snapshot[n - 1];
            if (m !== undefined) m.seen = true;
          }
          const gone = new Set(deleted.map((n) => snapshot[n - 1]));
          maildrops.set(user, (maildrops.get(user) ?? []).filter((m) => !gone.has(m)));
          await release();
        },
        release,
      };
      return Promise.resolve(maildrop);
    },
  };
  return backend;
}

export interface Pop3TestSessionOptions extends Omit<Pop3ServerSessionOptions, 'clock' | 'backend'> {
  /** Default: `createMemoryPop3Backend()` (alice / alice-password). */
  readonly backend?: Pop3Backend;
  /** Default: a `VirtualClock` at 0 (advance it yourself). */
  readonly clock?: Clock;
  /** The connection as the session sees it. Default: 192.0.2.1, plaintext, STLS available. */
  readonly connection?: Partial<Pop3ConnectionInfo>;
  /** Complete a requested TLS handshake at once (simulated). Default true. */
  readonly autoTls?: boolean;
}

/** The session, its backend and clock, and wire's `SessionHarness` calls (`settle` lets backend work finish). */
export interface Pop3TestSession extends Pick<SessionHarness, 'writes' | 'events' | 'isClosed' | 'take' | 'send' | 'settle'> {
  readonly session: Pop3ServerSession;
  readonly backend: Pop3Backend;
  readonly clock: Clock;
}

/** Start a session on an in-memory transport (wire's `createSessionHarness`); the greeting is in `take()`. */
export function createPop3TestSession(options: Pop3TestSessionOptions = {}): Pop3TestSession {
  const clock = options.clock ?? new VirtualClock(0);
  const backend = options.backend ?? createMemoryPop3Backend();
  const harness = createSessionHarness(options.autoTls === undefined ? {} : { autoTls: options.autoTls });
  const connection: Pop3ConnectionInfo = { remoteAddress: '192.0.2.1', remotePort: 40000, startTlsAvailable: true, ...options.connection };
  const session: Pop3ServerSession = createPop3ServerSession({ ...options, backend, clock }, harness.transport, connection);
  harness.attach(session);
  session.start();
  const { writes, events, isClosed, take, send, settle } = harness;
  return { session, backend, clock, writes, events, isClosed, take, send, settle };
}

/** The result of `runPop3Transcript` (wire's `TranscriptResult`). */
export type Pop3TranscriptResult = TranscriptResult;

/**
 * Run a `C:`/`S:` transcript against a fresh session (wire's `runTranscript`;
 * `*` also matches a bare LF inside a line). Consecutive `C:` lines are sent
 * as one pipelined chunk (each followed by CRLF), or one byte at a time with
 * `byteByByte`; consecutive `S:` lines are the lines expected next. Compare
 * `expected` with `actual`.
 */
export async function runPop3Transcript(transcript: string, options: Pop3TestSessionOptions = {}, runOptions: { byteByByte?: boolean } = {}): Promise<Pop3TranscriptResult> {
  return runTranscript(createPop3TestSession(options), transcript, { ...runOptions, wildcardMatchesLineFeed: true });
}

/** An in-memory transport pair end for the client side. */
class PairTransport implements ClientTransport {
  readonly #chunks: Uint8Array[] = [];
  #ended = false;
  #wake: (() => void) | undefined;
  secure = false;
  constructor(private readonly toServer: (bytes: Uint8Array) => void, private readonly onEnd: () => void) {}
  deliver(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#wake?.();
  }
  finish(): void {
    this.#ended = true;
    this.#wake?.();
  }
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const c = this.#chunks.shift();
      if (c !== undefined) return c;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
    }
  }
  write(chunk: Uint8Array): Promise<void> {
    if (this.#ended) return Promise.reject(new Error('connection closed'));
    this.toServer(chunk);
    return Promise.resolve();
  }
  startTls(): Promise<{ discardedBytes: number }> {
    this.secure = true;
    return Promise.resolve({ discardedBytes: 0 });
  }
  end(): Promise<void> {
    this.onEnd();
    this.finish();
    return Promise.resolve();
  }
  destroy(): void {
    this.onEnd();
    this.finish();
  }
}

export interface Pop3Pair {
  readonly client: Pop3ClientConnection;
  readonly session: Pop3ServerSession;
  readonly backend: Pop3Backend;
}

/**
 * A client and a server session joined in memory (no sockets): the client
 * logs in with `clientOptions` and is returned ready. STLS "handshakes" at
 * once on both sides.
 */
export async function createPop3Pair(serverOptions: Pop3TestSessionOptions = {}, clientOptions: Partial<Pop3ClientConnectionOptions> = {}): Promise<Pop3Pair> {
  const clock = serverOptions.clock ?? new VirtualClock(0);
  const backend = serverOptions.backend ?? createMemoryPop3Backend();
  // eslint-disable-next-line prefer-const
  let session: Pop3ServerSession;
  const transport = new PairTransport(
    (bytes) => queueMicrotask(() => session.receive(bytes)),
    () => queueMicrotask(() => session.end()),
  );
  session = createPop3ServerSession(
    { ...serverOptions, backend, clock },
    {
      write: (bytes) => {
        transport.deliver(Buffer.from(bytes));
        return true;
      },
      drain: () => Promise.resolve(),
      startTls: () => queueMicrotask(() => session.tlsEstablished()),
      close: () => transport.finish(),
      pause: () => undefined,
      resume: () => undefined,
    },
    { remoteAddress: '192.0.2.1', startTlsAvailable: true, ...serverOptions.connection },
  );
  session.start();
  const client = await Pop3ClientConnection.open(transport, {
    secure: 'starttls',
    auth: { username: 'alice', password: 'alice-password' },
    clock,
    ...clientOptions,
  });
  return { client, session, backend };
}
