/**
 * The POP3 server session: the RFC 1939 state machine of one connection,
 * sans I/O (after h11). Bytes go in with `receive(chunk)`; bytes, "start TLS
 * now", "pause/resume reading" and "close" come out through the
 * `Pop3ServerTransport`; the backend is awaited; time comes from the `Clock`.
 *
 * Input runs through one loop. Framing comes first (STYLE habit 3): a
 * `LineFramer` under a hard cap splits command and SASL lines. Responses are
 * buffered and written when the loop needs more input, so the responses to a
 * pipelined group leave in one write (RFC 2449 §6.6). Message bodies stream
 * from the backend through wire's `DataEncoder` (CRLF line ends, dot-stuffing)
 * with back-pressure, so memory does not grow with message size; the next
 * pipelined RETR/TOPs are read ahead (`prefetchMessages`) while one is sent.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { DataEncoder, LineFramer, Secret, createSaslServer, silentLogger } from '@pigeonpost/wire';
import type { Clock, LineFramerEvent, Logger, SaslServer, SaslServerSession, SaslServerStep } from '@pigeonpost/wire';
import { parseCommand, splitCommand } from '../codec/command.js';
import type { Pop3Command, Pop3Verb } from '../codec/command.js';
import { formatMultiline, formatStatus } from '../codec/response.js';
import type { Pop3Status } from '../codec/response.js';
import { Pop3Error } from '../errors.js';
import type { Pop3ResponseCode } from '../errors.js';
import { resolvePop3Limits } from '../limits.js';
import type { Pop3ServerLimits } from '../limits.js';
import { commandTable } from './commands.js';
import type { Pop3ConnectionInfo, Pop3ServerMaildrop, Pop3ServerSessionOptions, Pop3ServerTransport, Pop3SessionInfo, Pop3State } from './types.js';

type Phase = 'greeting' | 'command' | 'auth' | 'tls' | 'closed';

/** diagnostics_channel names published by the POP3 server session. Publishing costs nothing while nobody listens. */
export const pop3Channels = Object.freeze({
  /** A login succeeded or failed. Message: `{ session, user, method, ok }` (never a password). */
  login: 'pigeonpost:pop3:login',
  /** The UPDATE state ran (QUIT from TRANSACTION). Message: `{ session, user, deleted, seen, ok }`. */
  update: 'pigeonpost:pop3:update',
});

const loginChannel = channel(pop3Channels.login);
const updateChannel = channel(pop3Channels.update);
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });
/** Flush a message body to the transport once this much is buffered. */
const BODY_FLUSH_BYTES = 64 * 1024;
/**
 * Between pipelined responses, buffered output is written once it reaches
 * this much: the client gets the first answers (and sends its next
 * commands) while the later ones are read, instead of one burst per batch.
 */
const RESPONSE_FLUSH_BYTES = 16 * 1024;
/** Before waiting for a message not read yet, buffered output is written when it is at least this much (smaller groups stay one write). */
const WAIT_FLUSH_BYTES = 4 * 1024;
/** How much of a message is read ahead for a pipelined RETR/TOP. */
const PREFETCH_BYTES = 64 * 1024;
/**
 * Responses are built in one output buffer, up to this size (a bigger one
 * when a response needs it), encoded straight into it; each write hands the
 * filled part to the transport and goes on in the rest, never touching
 * bytes still referenced (the transport's `written()` says when none are).
 */
const OUT_BUFFER_BYTES = 64 * 1024;
/** Room below which a message chunk is not encoded into the output buffer's rest: it is written out first. */
const MIN_ENCODE_ROOM = 8 * 1024;
const EMPTY = Buffer.alloc(0);
const DONE: Promise<void> = Promise.resolve();

/** A message being read ahead: its first chunks (up to a cap), and the iterator for the rest. */
interface Prefetch {
  readonly iterator: AsyncIterator<Uint8Array>;
  readonly head: Promise<{ chunks: Uint8Array[]; done: boolean }>;
  /** True once `head` has settled (awaiting it then costs no wait). */
  settled?: boolean;
}

/** A pipelined line as a RETR or TOP to read ahead, with its prefetch key; null when it is neither (or malformed). */
function parsePrefetchable(line: Buffer): { key: string; n: number; lines: number | undefined } | null {
  const m = /^(RETR|TOP) ([0-9]{1,9})(?: ([0-9]{1,9}))?$/i.exec(line.toString('latin1'));
  if (m === null) return null;
  const n = Number(m[2]);
  const lines = m[3] === undefined ? undefined : Number(m[3]);
  if ((m[1]!.toUpperCase() === 'TOP') !== (lines !== undefined)) return null;
  return { key: prefetchKey(n, lines), n, lines };
}

/** The message number of a line `RETR n` (any case, one space, 1–9 digits, n ≥ 1); 0 for any other line. */
function retrNumber(line: Uint8Array): number {
  const len = line.length;
  if (len < 6 || len > 14 || (line[0]! | 0x20) !== 0x72 || (line[1]! | 0x20) !== 0x65 || (line[2]! | 0x20) !== 0x74 || (line[3]! | 0x20) !== 0x72 || line[4] !== 0x20) return 0;
  let n = 0;
  for (let i = 5; i < len; i++) {
    const d = line[i]! - 0x30;
    if (d < 0 || d > 9) return 0;
    n = n * 10 + d;
  }
  return n;
}

function prefetchKey(n: number, lines: number | undefined): string {
  return lines === undefined ? `RETR ${n}` : `TOP ${n} ${lines}`;
}

/** Start reading message `n`: at least its first chunk, and more while under `bytes`. */
function startPrefetch(maildrop: Pop3ServerMaildrop, n: number, lines: number | undefined, bytes: number): Prefetch {
  let iterator: AsyncIterator<Uint8Array>;
  try {
    iterator = maildrop.read(n, lines === undefined ? undefined : { lines })[Symbol.asyncIterator]();
  } catch (thrown) {
    const error = thrown instanceof Error ? thrown : new Error(String(thrown));
    const head = Promise.reject(error);
    head.catch(() => undefined);
    return { iterator: { next: () => Promise.reject(error) }, head };
  }
  const head = (async () => {
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const r = await iterator.next();
      if (r.done === true) return { chunks, done: true };
      chunks.push(r.value);
      size += r.value.length;
      if (size >= bytes) return { chunks, done: false };
    }
  })();
  const prefetch: Prefetch = { iterator, head };
  // Read ahead of its turn: its failure is reported when the command is handled, never as an unhandled rejection.
  head.then(
    () => (prefetch.settled = true),
    () => (prefetch.settled = true),
  );
  return prefetch;
}

let sessionCounter = 0;

/** Create a session for one connection. Call `start()` to send the greeting. */
export function createPop3ServerSession(options: Pop3ServerSessionOptions, transport: Pop3ServerTransport, connection: Pop3ConnectionInfo): Pop3ServerSession {
  return new Pop3ServerSession(options, transport, connection);
}

export class Pop3ServerSession {
  private readonly options: Pop3ServerSessionOptions;
  private readonly limits: Pop3ServerLimits;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly sasl: SaslServer | undefined;
  private readonly hostname: string;
  private readonly id: string;
  private readonly conn: Pop3ConnectionInfo;
  /** RFC 1939 §7: the APOP timestamp in the greeting, when the backend can do APOP. */
  private readonly apopTimestamp: string | undefined;

  private secure: boolean;
  private state: Pop3State = 'authorization';
  private phase: Phase = 'greeting';
  private user: string | undefined;
  private authMethod: Pop3SessionInfo['authMethod'];
  private pendingUser: string | undefined;
  private utf8 = false;
  private infoSnapshot: Pop3SessionInfo | undefined;

  private maildrop: Pop3ServerMaildrop | undefined;
  private deleted: boolean[] = [];
  private seen = new Set<number>();

  private framer: LineFramer;
  /** Lines taken from the framer ahead of their turn, to read pipelined messages early; handled in order. */
  private readonly lookahead: LineFramerEvent[] = [];
  /** What readAhead() made of each lookahead line (null: not a RETR/TOP to read ahead), so each is matched once. */
  private readonly lookaheadParsed = new WeakMap<LineFramerEvent, { key: string; n: number; lines: number | undefined } | null>();
  /** Messages being read ahead for pipelined RETR/TOP, by `verb number lines`. */
  private readonly prefetched = new Map<string, Prefetch>();
  private saslSession: SaslServerSession | undefined;
  private readonly input: Uint8Array[] = [];
  /** Where output is built: `outBytes` bytes filled at its start, the rest free. A view of `arena`. */
  private outBuf: Buffer = EMPTY;
  /** The output buffer `outBuf` is part of. */
  private arena: Buffer = EMPTY;
  private outBytes = 0;
  /** A write of a message body was refused (the peer is behind): drain before reading more of it. */
  private behind = false;
  private running = false;
  private sleeping = 0;
  private paused = false;
  private shuttingDown = false;
  private idleWaiters: (() => void)[] = [];
  private closeResolve!: () => void;
  /** Resolves when the session has ended, the maildrop lock is released and `onClose` has run. */
  readonly closed: Promise<void>;

  private badCommands = 0;
  private authFailures = 0;
  /** Plaintext bytes dropped at STLS (RFC 2595 §4). */
  discardedPlaintextBytes = 0;

  constructor(
    options: Pop3ServerSessionOptions,
    private readonly transport: Pop3ServerTransport,
    connection: Pop3ConnectionInfo,
  ) {
    this.options = options;
    this.limits = resolvePop3Limits(['maxCommandLineLength', 'maxAuthLineLength', 'maxBadCommands', 'maxAuthFailures', 'authFailureDelayMs', 'prefetchMessages'], options);
    this.clock = options.clock;
    this.logger = options.logger ?? silentLogger;
    this.hostname = options.hostname ?? 'localhost';
    if (/[\s\0<>@]/.test(this.hostname) || this.hostname === '') throw new Pop3Error('ERR_POP3_CONFIG', 'hostname must be one non-empty token', { side: 'local' });
    const loginDelay = options.loginDelaySeconds ?? 0;
    if (!Number.isInteger(loginDelay) || loginDelay < 0) throw new Pop3Error('ERR_POP3_CONFIG', 'loginDelaySeconds must be an integer >= 0', { side: 'local' });
    if (loginDelay > 0 && options.loginTracker === undefined) throw new Pop3Error('ERR_POP3_CONFIG', 'loginDelaySeconds needs a loginTracker', { side: 'local' });
    const backend = options.backend;
    const auth = options.auth;
    this.sasl =
      auth !== undefined
        ? 'server' in auth
          ? auth.server
          : createSaslServer({ mechanisms: auth.mechanisms, backend: auth.backend, allowPlaintextWithoutTls: options.allowInsecureAuth === true, hostname: this.hostname, clock: this.clock })
        : backend.verifyPassword !== undefined
          ? createSaslServer({
              mechanisms: ['PLAIN', 'LOGIN'],
              backend: {
                verifyPassword: ({ authcid, password }) => backend.verifyPassword!({ user: authcid, password, session: this.info }),
              },
              allowPlaintextWithoutTls: options.allowInsecureAuth === true,
              hostname: this.hostname,
              clock: this.clock,
            })
          : undefined;
    this.conn = connection;
    this.id = connection.id ?? `pop3-${++sessionCounter}`;
    this.secure = connection.secure === true;
    // RFC 1939 §7: "<process-ID.clock@hostname>", unique per greeting; random bytes stand in for the PID.
    this.apopTimestamp = backend.getApopSecret === undefined ? undefined : options.apopTimestamp ?? `<${randomBytes(8).toString('hex')}.${this.clock.now()}@${this.hostname}>`;
    this.framer = this.newFramer();
    this.closed = new Promise((resolve) => (this.closeResolve = resolve));
  }

  // ---------------------------------------------------------------- public API

  /** What the backend sees. */
  get info(): Pop3SessionInfo {
    return (this.infoSnapshot ??= Object.freeze({ ...this.conn, id: this.id, secure: this.secure, state: this.state, user: this.user, authMethod: this.authMethod, utf8: this.utf8 }));
  }

  get currentState(): Pop3State {
    return this.state;
  }

  /** Send the greeting and start reading. */
  start(): void {
    if (this.phase !== 'greeting') throw new Pop3Error('ERR_POP3_STATE', 'start() called twice', { side: 'local' });
    const banner = this.options.banner ?? 'POP3 server ready';
    this.status({ ok: true, text: this.apopTimestamp === undefined ? banner : `${banner} ${this.apopTimestamp}` });
    this.phase = 'command';
    this.flush();
    void this.run();
  }

  /** Bytes from the client. */
  receive(chunk: Uint8Array): void {
    if (this.phase === 'closed' || chunk.length === 0) return;
    if (this.phase === 'tls') {
      // Plaintext after STLS, before the handshake: never processed (RFC 2595 §4).
      this.discardedPlaintextBytes += chunk.length;
      return;
    }
    this.input.push(chunk);
    if (this.phase !== 'greeting') void this.run();
  }

  /** The TLS handshake requested by `transport.startTls()` is done. */
  tlsEstablished(): void {
    if (this.phase !== 'tls') throw new Pop3Error('ERR_POP3_STATE', 'tlsEstablished() without an STLS in progress', { side: 'local' });
    this.secure = true;
    this.pendingUser = undefined;
    this.infoSnapshot = undefined;
    this.framer = this.newFramer();
    this.input.length = 0;
    this.phase = 'command';
    this.paused = false;
    void this.run();
  }

  /**
   * The peer closed the connection (or the socket failed). RFC 1939 §6: no
   * UPDATE state without QUIT — the maildrop is released, nothing deleted.
   */
  end(): void {
    this.closeSession(false);
  }

  /** Graceful shutdown: finish the command in flight, then `-ERR [SYS/TEMP]` and close, without UPDATE. */
  shutdown(): void {
    if (this.phase === 'closed') return;
    this.shuttingDown = true;
    if (!this.running) this.sayGoodbye();
  }

  /**
   * The idle timer fired (RFC 1939 §3, at least 10 minutes): "the server
   * should close the TCP connection without removing any messages or
   * sending any response to the client".
   */
  idleTimeout(): void {
    this.closeSession(false);
  }

  /** True while input is being handled or the backend is awaited. */
  get busy(): boolean {
    return this.running;
  }

  /** True while the session waits on its clock (failed-login delay). */
  get waitingForClock(): boolean {
    return this.sleeping > 0;
  }

  /** Resolves when every byte received so far has been handled. For tests. */
  whenIdle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ---------------------------------------------------------------- the loop

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.phase === 'command' || this.phase === 'auth') {
        if (this.shuttingDown) {
          this.sayGoodbye();
          break;
        }
        if (await this.step()) continue;
        const chunk = this.input.shift();
        if (chunk === undefined) break;
        this.framer.push(chunk);
      }
    } catch (error) {
      // A bug of ours, never the peer's: log it and end this session only.
      this.logger.error({ session: this.id, err: error }, 'POP3 session failed');
      this.status({ ok: false, code: 'SYS/TEMP', text: 'Internal error, closing connection' });
      this.closeSession();
    } finally {
      this.running = false;
      this.flush();
      if (this.paused && this.phase !== 'closed' && this.phase !== 'tls') {
        this.paused = false;
        this.transport.resume();
      }
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** One line; false when more input is needed. */
  private async step(): Promise<boolean> {
    const ev = this.lookahead.shift() ?? this.framer.next();
    if (ev === undefined) return false;
    if (ev.type === 'error') {
      if (this.phase === 'auth') this.abortSasl();
      this.bad('Line too long');
      return true;
    }
    if (ev.type !== 'line') return true;
    const line = ev.line;
    // RFC 1939 §3: lines end in CRLF. A bare LF ending is tolerated (old clients), a CR inside a line is not.
    if (ev.bareCr || line.includes(0)) {
      if (this.phase === 'auth') this.abortSasl();
      this.bad(ev.bareCr ? 'Bare CR not allowed' : 'NUL characters not allowed');
      return true;
    }
    // The hot command of a download: a pipelined RETR, parsed from the bytes (what dispatch would make of it).
    if (this.phase === 'command' && this.state === 'transaction') {
      const n = retrNumber(line);
      if (n > 0 && line.length + 2 <= this.limits.maxCommandLineLength) {
        await this.cmdRetr({ verb: 'RETR', message: n });
        return true;
      }
    }
    let text: string;
    try {
      text = fatalUtf8.decode(line);
    } catch {
      if (this.phase === 'auth') this.abortSasl();
      this.bad('Invalid UTF-8');
      return true;
    }
    if (this.phase === 'auth') {
      await this.saslContinue(text);
      return true;
    }
    await this.dispatch(text, line.length);
    return true;
  }

  private async dispatch(text: string, length: number): Promise<void> {
    const { verb } = splitCommand(text);
    if (verb !== 'AUTH' && length + 2 > this.limits.maxCommandLineLength) {
      this.bad('Line too long');
      return;
    }
    const spec = commandTable[verb as Pop3Verb] as (typeof commandTable)[Pop3Verb] | undefined;
    if (spec === undefined) {
      this.bad('Unknown command');
      return;
    }
    if (!spec.states.includes(this.state)) {
      this.bad(this.state === 'authorization' ? 'Not logged in' : `${verb} not allowed in TRANSACTION state`);
      return;
    }
    // RFC 6856 §2: without UTF8, arguments are US-ASCII (UTF-8 user names only after UTF8).
    if (!this.utf8 && !isAscii(text) && verb !== 'PASS') {
      this.bad('Non-ASCII arguments need the UTF8 command first', 'UTF8');
      return;
    }
    const parsed = parseCommand(text);
    if (!parsed.ok) {
      this.bad(parsed.error.text);
      return;
    }
    await spec.handler(this, parsed.command);
  }

  // ---------------------------------------------------------------- AUTHORIZATION

  /** Plaintext passwords only over TLS, unless allowed (RFC 2595 §2; DESIGN "TLS first"). */
  private plaintextAllowed(): boolean {
    return this.secure || this.options.allowInsecureAuth === true;
  }

  /** @internal USER (RFC 1939 §7). */
  cmdUser(command: Extract<Pop3Command, { verb: 'USER' }>): Promise<void> {
    if (this.options.backend.verifyPassword === undefined) {
      this.bad('USER/PASS is not available; use AUTH');
      return Promise.resolve();
    }
    if (!this.plaintextAllowed()) {
      this.status({ ok: false, code: 'AUTH', text: 'Plaintext authentication disallowed on non-secure connections; use STLS' });
      return Promise.resolve();
    }
    this.pendingUser = command.name;
    // Same answer for every name: USER must not tell which users exist.
    this.status({ ok: true, text: 'Send your password' });
    return Promise.resolve();
  }

  /** @internal PASS (RFC 1939 §7). */
  async cmdPass(command: Extract<Pop3Command, { verb: 'PASS' }>): Promise<void> {
    const user = this.pendingUser;
    const backend = this.options.backend;
    if (user === undefined || backend.verifyPassword === undefined) {
      this.bad('Send USER first');
      return;
    }
    this.pendingUser = undefined;
    this.pause();
    let ok: boolean;
    try {
      ok = await backend.verifyPassword({ user, password: new Secret(command.password), session: this.info });
    } catch (error) {
      this.backendFailed(error);
      return;
    }
    if (this.isClosed()) return;
    if (!ok) {
      await this.loginFailed(user, 'USER');
      return;
    }
    await this.login(user, 'USER');
  }

  /** @internal APOP (RFC 1939 §7). */
  async cmdApop(command: Extract<Pop3Command, { verb: 'APOP' }>): Promise<void> {
    const backend = this.options.backend;
    const timestamp = this.apopTimestamp;
    if (backend.getApopSecret === undefined || timestamp === undefined) {
      this.bad('APOP is not available');
      return;
    }
    this.pause();
    let secret: Secret<string> | undefined;
    try {
      secret = await backend.getApopSecret({ user: command.name, session: this.info });
    } catch (error) {
      this.backendFailed(error);
      return;
    }
    if (this.isClosed()) return;
    // Unknown users cost the same work as known ones.
    const expected = createHash('md5')
      .update(timestamp + (secret?.expose() ?? randomBytes(16).toString('hex')), 'utf8')
      .digest();
    const given = Buffer.from(command.digest, 'hex');
    if (secret === undefined || given.length !== expected.length || !timingSafeEqual(given, expected)) {
      await this.loginFailed(command.name, 'APOP');
      return;
    }
    await this.login(command.name, 'APOP');
  }

  /** @internal STLS (RFC 2595 §4). */
  cmdStls(): Promise<void> {
    if (this.secure) {
      this.bad('Already using TLS');
      return Promise.resolve();
    }
    if (this.conn.startTlsAvailable !== true) {
      this.bad('STLS is not available');
      return Promise.resolve();
    }
    this.status({ ok: true, text: 'Begin TLS negotiation' });
    this.flush();
    // RFC 2595 §4 (CVE-2011-0411 for SMTP): what arrived after the STLS line
    // and before the handshake is plaintext an attacker may have injected.
    this.discardedPlaintextBytes += this.framer.discardBuffered();
    for (const ev of this.lookahead.splice(0)) if (ev.type === 'line') this.discardedPlaintextBytes += ev.line.length + (ev.ending === 'crlf' ? 2 : 1);
    for (const chunk of this.input.splice(0)) this.discardedPlaintextBytes += chunk.length;
    if (this.discardedPlaintextBytes > 0) this.logger.warn({ session: this.id, bytes: this.discardedPlaintextBytes }, 'plaintext after STLS discarded');
    this.phase = 'tls';
    this.transport.startTls();
    return Promise.resolve();
  }

  /** @internal AUTH (RFC 5034). */
  async cmdAuth(command: Extract<Pop3Command, { verb: 'AUTH' }>): Promise<void> {
    const sasl = this.sasl;
    if (sasl === undefined) {
      this.bad('AUTH is not available');
      return;
    }
    if (command.mechanism === undefined) {
      // Not in RFC 5034, but RFC 1734 clients (and Dovecot) list the mechanisms this way.
      this.write(formatMultiline(undefined, sasl.advertise({ tls: this.secure })));
      return;
    }
    const session = sasl.createSession(command.mechanism, { tls: this.secure, peer: this.info });
    this.saslSession = session;
    this.pause();
    const step = command.initialResponse === undefined ? await session.start() : await session.startEncoded(command.initialResponse);
    await this.saslOutcome(step);
  }

  private async saslContinue(line: string): Promise<void> {
    const session = this.saslSession;
    if (session === undefined) {
      this.phase = 'command';
      return;
    }
    if (line.length + 2 > this.limits.maxAuthLineLength) {
      this.abortSasl();
      this.bad('Authentication exchange line too long');
      return;
    }
    this.pause();
    await this.saslOutcome(await session.stepEncoded(line));
  }

  private async saslOutcome(step: SaslServerStep): Promise<void> {
    if (this.isClosed()) return;
    if (step.type === 'challenge') {
      this.phase = 'auth';
      // RFC 5034 §4: "+" SP base64 (an empty challenge is "+ ").
      this.write(`+ ${step.encoded}\r\n`);
      return;
    }
    this.phase = 'command';
    const mechanism = this.saslSession?.mechanism;
    this.saslSession = undefined;
    if (step.type === 'success') {
      await this.login(step.identity.authzid, step.identity.mechanism);
      return;
    }
    const code = step.error.code;
    const text = step.error.reply?.text ?? 'Authentication failed';
    const responseCode = step.error.reply?.pop3?.code;
    if (code === 'ERR_SASL_CANCELLED' || code === 'ERR_SASL_MECHANISM_UNSUPPORTED' || code === 'ERR_SASL_ENCRYPTION_REQUIRED' || code === 'ERR_SASL_MALFORMED' || code === 'ERR_SASL_TEMPORARY_FAILURE') {
      this.status({ ok: false, code: responseCode, text });
      return;
    }
    await this.loginFailed(undefined, mechanism ?? 'AUTH', { ok: false, code: responseCode ?? 'AUTH', text });
  }

  private abortSasl(): void {
    this.saslSession?.cancel();
    this.saslSession = undefined;
    this.phase = 'command';
  }

  /** @internal UTF8 (RFC 6856 §2). */
  cmdUtf8(): Promise<void> {
    this.utf8 = true;
    this.infoSnapshot = undefined;
    this.status({ ok: true, text: 'UTF8 enabled' });
    return Promise.resolve();
  }

  /** The password was right: open the maildrop (its lock) and enter TRANSACTION. */
  private async login(user: string, method: NonNullable<Pop3SessionInfo['authMethod']>): Promise<void> {
    const delay = this.options.loginDelaySeconds ?? 0;
    const tracker = this.options.loginTracker;
    if (delay > 0 && tracker !== undefined) {
      const wait = tracker.remaining(user, this.clock.now(), delay);
      if (wait > 0) {
        // RFC 2449 §8.1.1 (LOGIN-DELAY): right credentials, too soon.
        this.status({ ok: false, code: 'LOGIN-DELAY', text: `Wait ${wait} more seconds before logging in again` });
        return;
      }
    }
    this.pause();
    let maildrop: Pop3ServerMaildrop;
    try {
      maildrop = await this.options.backend.openMaildrop(user, { ...this.info, user, authMethod: method });
    } catch (error) {
      if (this.isClosed()) return;
      this.backendFailed(error);
      return;
    }
    if (this.isClosed()) {
      // The client went away while the maildrop was opening: let go of the lock at once.
      await maildrop.release().catch((error: unknown) => this.logger.warn({ session: this.id, err: error }, 'maildrop release failed'));
      return;
    }
    tracker?.record(user, this.clock.now());
    this.maildrop = maildrop;
    this.deleted = new Array<boolean>(maildrop.messages.length).fill(false);
    this.seen.clear();
    this.user = user;
    this.authMethod = method;
    this.state = 'transaction';
    this.infoSnapshot = undefined;
    if (loginChannel.hasSubscribers) loginChannel.publish({ session: this.id, user, method, ok: true });
    const { count, octets } = this.totals();
    this.status({ ok: true, text: `Logged in, maildrop has ${count} messages (${octets} octets)` });
  }

  private async loginFailed(user: string | undefined, method: string, reply: Pop3Status = { ok: false, code: 'AUTH', text: 'Authentication failed' }): Promise<void> {
    this.authFailures++;
    if (loginChannel.hasSubscribers) loginChannel.publish({ session: this.id, user, method, ok: false });
    // Each failure waits longer before the answer: guessing gets slower (Dovecot's auth_failure_delay).
    const delay = this.limits.authFailureDelayMs * 2 ** (this.authFailures - 1);
    if (delay > 0) await this.sleep(delay);
    if (this.isClosed()) return;
    if (this.authFailures >= this.limits.maxAuthFailures) {
      this.status({ ok: false, code: 'AUTH', text: 'Too many failed logins, closing connection' });
      this.closeSession();
      return;
    }
    this.status(reply);
  }

  // ---------------------------------------------------------------- TRANSACTION

  private totals(): { count: number; octets: number } {
    let count = 0;
    let octets = 0;
    const messages = this.maildrop?.messages ?? [];
    for (let i = 0; i < messages.length; i++) {
      if (this.deleted[i] === true) continue;
      count++;
      octets += messages[i]!.size;
    }
    return { count, octets };
  }

  /** The message `n` if it exists and is not marked deleted; else replies `-ERR` and returns undefined. */
  private message(n: number): { readonly uidl: string; readonly size: number } | undefined {
    const m = this.maildrop?.messages[n - 1];
    if (m === undefined) {
      this.status({ ok: false, text: 'No such message' });
      return undefined;
    }
    if (this.deleted[n - 1] === true) {
      this.status({ ok: false, text: `Message ${n} already deleted` });
      return undefined;
    }
    return m;
  }

  /** @internal STAT (RFC 1939 §5). */
  cmdStat(): Promise<void> {
    const { count, octets } = this.totals();
    this.status({ ok: true, text: `${count} ${octets}` });
    return Promise.resolve();
  }

  /** @internal LIST (RFC 1939 §5). */
  cmdList(command: Extract<Pop3Command, { verb: 'LIST' }>): Promise<void> {
    this.listing(command.message, (n, m) => `${n} ${m.size}`, () => {
      const { count, octets } = this.totals();
      return `${count} messages (${octets} octets)`;
    });
    return Promise.resolve();
  }

  /** @internal UIDL (RFC 1939 §7). */
  cmdUidl(command: Extract<Pop3Command, { verb: 'UIDL' }>): Promise<void> {
    this.listing(command.message, (n, m) => `${n} ${m.uidl}`, () => 'Unique-ID listing follows');
    return Promise.resolve();
  }

  private listing(n: number | undefined, line: (n: number, m: { readonly uidl: string; readonly size: number }) => string, heading: () => string): void {
    if (n !== undefined) {
      const m = this.message(n);
      if (m !== undefined) this.status({ ok: true, text: line(n, m) });
      return;
    }
    const messages = this.maildrop?.messages ?? [];
    let out = formatStatus({ ok: true, text: heading() });
    for (let i = 0; i < messages.length; i++) {
      if (this.deleted[i] !== true) out += `${line(i + 1, messages[i]!)}\r\n`;
    }
    this.write(`${out}.\r\n`);
  }

  /** @internal RETR (RFC 1939 §5). */
  cmdRetr(command: Extract<Pop3Command, { verb: 'RETR' }>): Promise<void> {
    const n = command.message;
    const m = this.message(n);
    if (m === undefined) return DONE;
    if (this.sendNow(n, `${m.size} octets`)) {
      this.seen.add(n);
      if (this.outBytes >= RESPONSE_FLUSH_BYTES && !this.flush()) this.behind = true;
      if (!this.behind) return DONE;
      this.behind = false;
      return this.transport.drain();
    }
    return this.sendMessage(n, undefined, `${m.size} octets`).then((sent) => {
      if (sent) this.seen.add(n);
    });
  }

  /**
   * RETR of a message the backend has in memory now (`readNow`): `+OK`, the
   * encoded bytes and the terminator go straight into the output buffer,
   * with no promise, iterator or copy per chunk; pipelined RETRs of such
   * messages are answered one after the other in one synchronous run.
   * False (nothing written) when the backend cannot answer now: then
   * `sendMessage` reads it (and reports a vanished message).
   */
  private sendNow(n: number, okText: string): boolean {
    const maildrop = this.maildrop;
    if (maildrop?.readNow === undefined || this.phase === 'closed' || (this.prefetched.size > 0 && this.prefetched.has(prefetchKey(n, undefined)))) return false;
    let bytes: Uint8Array | undefined;
    try {
      bytes = maildrop.readNow(n);
    } catch (error) {
      // A backend bug, never the client's: read() answers this RETR instead.
      this.logger.warn({ session: this.id, message: n, err: error }, 'readNow failed');
      return false;
    }
    if (bytes === undefined) return false;
    const room = DataEncoder.maxEncodedLength(bytes.length) + okText.length * 3 + 16;
    // Too little room left: write out what earlier answers made (if that is a fair amount) rather than copy it into a new buffer.
    if (this.outBuf.length - this.outBytes < room && this.outBytes >= WAIT_FLUSH_BYTES && !this.flush()) this.behind = true;
    this.status({ ok: true, text: okText });
    const encoder = new DataEncoder();
    this.reserve(DataEncoder.maxEncodedLength(bytes.length) + 5);
    this.outBytes = encoder.encodeInto(bytes, this.outBuf, this.outBytes);
    this.outBytes = encoder.endInto(this.outBuf, this.outBytes);
    return true;
  }

  /** @internal TOP (RFC 1939 §7). `TOP n 99999999` sends the whole message. */
  async cmdTop(command: Extract<Pop3Command, { verb: 'TOP' }>): Promise<void> {
    if (this.message(command.message) === undefined) return;
    await this.sendMessage(command.message, command.lines, 'Top of message follows');
  }

  /**
   * Stream a message as a multi-line response. The first chunk is read before
   * `+OK` goes out, so a message that vanished (expunged over IMAP since the
   * snapshot) gets a clean `-ERR`. A failure after `+OK` cannot be reported
   * in-band: the connection is closed without the final ".", so the client
   * sees a truncated response rather than a wrong message.
   */
  private async sendMessage(n: number, lines: number | undefined, okText: string): Promise<boolean> {
    const maildrop = this.maildrop;
    if (maildrop === undefined) throw new Pop3Error('ERR_POP3_STATE', 'no maildrop in TRANSACTION', { side: 'local' });
    this.pause();
    const key = prefetchKey(n, lines);
    let ahead = this.prefetched.get(key);
    this.prefetched.delete(key);
    this.readAhead(maildrop);
    ahead ??= startPrefetch(maildrop, n, lines, 0);
    // About to wait for the file system: what earlier commands produced goes out meanwhile.
    if (ahead.settled !== true && this.outBytes >= WAIT_FLUSH_BYTES) this.flush();
    let head: { chunks: Uint8Array[]; done: boolean };
    try {
      head = await ahead.head;
    } catch (error) {
      if (this.isClosed()) return false;
      if (Pop3Error.isInstance(error) && error.reply !== undefined) this.status({ ok: false, code: error.responseCode, text: error.reply.text });
      else {
        this.logger.warn({ session: this.id, message: n, err: error }, 'message unreadable');
        this.status({ ok: false, text: `Message ${n} is no longer available (removed by another session?)` });
      }
      return false;
    }
    const iterator = ahead.iterator;
    if (this.isClosed()) {
      void iterator.return?.();
      return false;
    }
    this.status({ ok: true, text: okText });
    const encoder = new DataEncoder();
    try {
      for (const chunk of head.chunks) this.writeEncoded(encoder, chunk);
      for (let r = head.done ? undefined : await iterator.next(); r !== undefined && r.done !== true; r = await iterator.next()) {
        this.writeEncoded(encoder, r.value);
        if (this.behind) {
          this.behind = false;
          await this.transport.drain();
        }
        if (this.isClosed()) {
          void iterator.return?.();
          return false;
        }
      }
    } catch (error) {
      if (this.isClosed()) return false;
      this.logger.error({ session: this.id, message: n, err: error }, 'message read failed after +OK; closing without the terminator');
      this.closeSession();
      return false;
    }
    if (this.phase !== 'closed') {
      this.reserve(5);
      this.outBytes = encoder.endInto(this.outBuf, this.outBytes);
    }
    if (this.outBytes >= RESPONSE_FLUSH_BYTES && !this.flush()) await this.transport.drain();
    return true;
  }

  /**
   * Encode a chunk of a message into the output buffer, as much at a time as
   * the free room takes: with little room left, what is buffered is written
   * first when it is much (else moved to a bigger buffer).
   */
  private writeEncoded(encoder: DataEncoder, chunk: Uint8Array): void {
    if (this.phase === 'closed') return;
    for (let pos = 0; pos < chunk.length; ) {
      if (this.outBuf.length - this.outBytes < MIN_ENCODE_ROOM) {
        // Much buffered: written out rather than copied into a bigger buffer (a small group stays one write).
        if (this.outBytes >= BODY_FLUSH_BYTES / 2 && !this.flush()) this.behind = true;
        this.reserve(MIN_ENCODE_ROOM);
      }
      const take = Math.min(chunk.length - pos, (this.outBuf.length - this.outBytes) >> 1);
      this.outBytes = encoder.encodeInto(chunk, this.outBuf, this.outBytes, pos, pos + take);
      pos += take;
    }
    if (this.outBytes >= BODY_FLUSH_BYTES && !this.flush()) this.behind = true;
  }

  /**
   * Pipelined RETR/TOP commands already received are read ahead, up to
   * `prefetchMessages` at once and 64 KiB each, so the file system works on
   * the next messages while this one is sent. Only lines already in the
   * input are looked at; they are still handled in order, one by one.
   */
  private readAhead(maildrop: Pop3ServerMaildrop): void {
    const max = this.limits.prefetchMessages;
    if (max === 0 || this.state !== 'transaction') return;
    // Bytes received but not yet framed are commands too (the framer keeps them in order).
    for (const chunk of this.input.splice(0)) this.framer.push(chunk);
    while (this.lookahead.length < max * 2) {
      const ev = this.framer.next();
      if (ev === undefined) break;
      this.lookahead.push(ev);
    }
    for (const ev of this.lookahead) {
      if (this.prefetched.size >= max) break;
      if (ev.type !== 'line') continue;
      let parsed = this.lookaheadParsed.get(ev);
      if (parsed === undefined) {
        parsed = parsePrefetchable(ev.line);
        this.lookaheadParsed.set(ev, parsed);
      }
      // A RETR the backend can answer from memory (readNow) needs no read-ahead here: the backend reads ahead itself.
      if (parsed === null || (parsed.lines === undefined && maildrop.readNow !== undefined)) continue;
      const { key, n, lines } = parsed;
      if (this.prefetched.has(key) || this.deleted[n - 1] !== false) continue;
      this.prefetched.set(key, startPrefetch(maildrop, n, lines, PREFETCH_BYTES));
    }
  }

  private dropPrefetched(): void {
    for (const p of this.prefetched.values()) void p.head.then(() => p.iterator.return?.(), () => undefined);
    this.prefetched.clear();
  }

  /** @internal DELE (RFC 1939 §5): only marks; UPDATE removes. */
  cmdDele(command: Extract<Pop3Command, { verb: 'DELE' }>): Promise<void> {
    if (this.message(command.message) !== undefined) {
      this.deleted[command.message - 1] = true;
      for (const [key, p] of this.prefetched) {
        if (key === `RETR ${command.message}` || key.startsWith(`TOP ${command.message} `)) {
          this.prefetched.delete(key);
          void p.head.then(() => p.iterator.return?.(), () => undefined);
        }
      }
      this.status({ ok: true, text: `Message ${command.message} deleted` });
    }
    return Promise.resolve();
  }

  /** @internal RSET (RFC 1939 §5). */
  cmdRset(): Promise<void> {
    this.deleted.fill(false);
    const { count, octets } = this.totals();
    this.status({ ok: true, text: `Maildrop has ${count} messages (${octets} octets)` });
    return Promise.resolve();
  }

  /** @internal NOOP (RFC 1939 §5). */
  cmdNoop(): Promise<void> {
    this.status({ ok: true });
    return Promise.resolve();
  }

  /** @internal QUIT: from AUTHORIZATION just close (§4); from TRANSACTION enter UPDATE (§6). */
  async cmdQuit(): Promise<void> {
    const maildrop = this.maildrop;
    if (this.state !== 'transaction' || maildrop === undefined) {
      this.status({ ok: true, text: `${this.hostname} POP3 server signing off` });
      this.closeSession();
      return;
    }
    this.state = 'update';
    this.infoSnapshot = undefined;
    const deleted: number[] = [];
    for (let i = 0; i < this.deleted.length; i++) if (this.deleted[i] === true) deleted.push(i + 1);
    const seen = [...this.seen].filter((n) => this.deleted[n - 1] !== true).sort((a, b) => a - b);
    this.pause();
    let ok = true;
    try {
      // One call: the backend applies every change or none (atomic UPDATE).
      await maildrop.commit({ deleted, seen });
    } catch (error) {
      ok = false;
      this.logger.error({ session: this.id, err: error }, 'POP3 UPDATE failed');
      await maildrop.release().catch(() => undefined);
    }
    this.maildrop = undefined;
    this.dropPrefetched();
    if (updateChannel.hasSubscribers) updateChannel.publish({ session: this.id, user: this.user, deleted: deleted.length, seen: seen.length, ok });
    if (ok) {
      const left = this.deleted.length - deleted.length;
      this.status({ ok: true, text: `${this.hostname} POP3 server signing off (${left} messages left)` });
    } else {
      // RFC 1939 §6: "-ERR some deleted messages not removed".
      this.status({ ok: false, code: 'SYS/TEMP', text: 'Some deleted messages not removed' });
    }
    this.closeSession();
  }

  // ---------------------------------------------------------------- both states

  /** @internal CAPA (RFC 2449 §5). */
  cmdCapa(): Promise<void> {
    const lines = ['TOP', 'UIDL', 'RESP-CODES', 'PIPELINING', 'AUTH-RESP-CODE'];
    if (this.state === 'authorization') {
      if (this.options.backend.verifyPassword !== undefined && this.plaintextAllowed()) lines.push('USER');
      if (this.sasl !== undefined) {
        const mechanisms = this.sasl.advertise({ tls: this.secure });
        if (mechanisms.length > 0) lines.push(`SASL ${mechanisms.join(' ')}`);
      }
      if (this.conn.startTlsAvailable === true && !this.secure) lines.push('STLS');
      lines.push('UTF8 USER');
    }
    const expire = this.options.expire ?? 'NEVER';
    lines.push(`EXPIRE ${expire === 'NEVER' ? 'NEVER' : String(expire)}`);
    lines.push(`LOGIN-DELAY ${this.options.loginDelaySeconds ?? 0}`);
    lines.push('LANG');
    const implementation = this.options.implementation ?? 'Pigeonpost';
    if (implementation !== false) lines.push(`IMPLEMENTATION ${implementation}`);
    this.write(formatMultiline('Capability list follows', lines));
    return Promise.resolve();
  }

  /** @internal LANG (RFC 6856 §3). */
  cmdLang(command: Extract<Pop3Command, { verb: 'LANG' }>): Promise<void> {
    const languages = this.options.languages ?? [['en', 'English']];
    if (command.tag === undefined) {
      this.write(formatMultiline('Language listing follows', languages.map(([tag, name]) => `${tag} ${name}`)));
      return Promise.resolve();
    }
    const wanted = command.tag.toLowerCase();
    const match = wanted === '*' ? languages[0] : languages.find(([tag]) => tag.toLowerCase() === wanted || wanted.startsWith(`${tag.toLowerCase()}-`));
    if (match === undefined) this.status({ ok: false, text: 'Invalid language' });
    else this.status({ ok: true, text: `${match[0]} Language changed` });
    return Promise.resolve();
  }

  // ---------------------------------------------------------------- helpers

  /** A backend error: its own reply when it chose one, `-ERR [SYS/TEMP]` otherwise. */
  private backendFailed(error: unknown): void {
    if (Pop3Error.isInstance(error) && error.reply !== undefined) {
      this.status({ ok: false, code: error.responseCode, text: error.reply.text });
      return;
    }
    this.logger.error({ session: this.id, err: error }, 'POP3 backend failed');
    this.status({ ok: false, code: 'SYS/TEMP', text: 'Temporary problem, try again later' });
  }

  /** Answer a bad command, counting it; too many end the session. */
  private bad(text: string, code?: Pop3ResponseCode): void {
    if (++this.badCommands > this.limits.maxBadCommands) {
      this.status({ ok: false, text: 'Too many bad commands, closing connection' });
      this.closeSession();
      return;
    }
    this.status({ ok: false, code, text });
  }

  private status(status: Pop3Status): void {
    this.write(formatStatus(status));
  }

  private write(text: string): void {
    if (this.phase === 'closed') return;
    // At most 3 bytes a UTF-16 unit in UTF-8; a long text (LIST, UIDL) is measured instead.
    this.reserve(text.length <= 4096 ? text.length * 3 : Buffer.byteLength(text, 'utf8'));
    this.outBytes += this.outBuf.write(text, this.outBytes, 'utf8');
  }

  /**
   * Make room for `bytes` more in the output buffer. Nothing is written to
   * the transport here (a pipelined group stays one write): a buffer too
   * small is replaced by a bigger one holding what is buffered.
   */
  private reserve(bytes: number): void {
    if (this.outBuf.length - this.outBytes >= bytes) return;
    // Small at first (an idle session holds little), doubling up to OUT_BUFFER_BYTES as output flows.
    const next = Buffer.allocUnsafe(Math.max(this.outBytes + bytes, Math.min(OUT_BUFFER_BYTES, Math.max(1024, 2 * this.arena.length))));
    this.outBuf.copy(next, 0, 0, this.outBytes);
    this.outBuf = this.arena = next;
  }

  /** Write what is buffered in one call; false when the transport asks us to wait. */
  private flush(): boolean {
    if (this.outBytes === 0) return true;
    // The transport may keep these bytes until sent: the buffer goes on after them, never over them.
    const bytes = this.outBuf.subarray(0, this.outBytes);
    this.outBuf = this.outBuf.subarray(this.outBytes);
    this.outBytes = 0;
    const ok = this.transport.write(bytes);
    // Taken whole by the kernel already (the usual case on a socket keeping up): start over at the beginning.
    if (this.transport.written?.() === true) this.outBuf = this.arena;
    return ok;
  }

  private pause(): void {
    if (!this.paused) {
      this.paused = true;
      this.transport.pause();
    }
  }

  private sayGoodbye(): void {
    this.status({ ok: false, code: 'SYS/TEMP', text: 'Server shutting down, try again later' });
    this.closeSession();
  }

  private closeSession(flush = true): void {
    if (this.phase === 'closed') return;
    if (flush) this.flush();
    this.phase = 'closed';
    this.outBuf = this.arena = EMPTY;
    this.outBytes = 0;
    this.saslSession?.cancel();
    this.input.length = 0;
    this.transport.close();
    const maildrop = this.maildrop;
    this.maildrop = undefined;
    this.dropPrefetched();
    const onClose = this.options.onClose;
    void (async () => {
      // RFC 1939 §6: without QUIT no UPDATE; only the lock is given back.
      if (maildrop !== undefined) await maildrop.release().catch((error: unknown) => this.logger.warn({ session: this.id, err: error }, 'maildrop release failed'));
      try {
        await onClose?.(this.info);
      } catch (error) {
        this.logger.warn({ session: this.id, err: error }, 'onClose failed');
      }
      this.closeResolve();
    })();
  }

  private isClosed(): boolean {
    return this.phase === 'closed';
  }

  private sleep(ms: number): Promise<void> {
    this.sleeping++;
    return new Promise((resolve) =>
      this.clock.setTimeout(() => {
        this.sleeping--;
        resolve();
      }, ms),
    );
  }

  private newFramer(): LineFramer {
    // The cap is the longest line any state accepts (AUTH, RFC 5034 §4); the per-command cap is checked after framing.
    return new LineFramer({ maxLineLength: Math.max(this.limits.maxCommandLineLength, this.limits.maxAuthLineLength), allowBareLf: true });
  }
}

/** Only US-ASCII (RFC 6856 §2: UTF-8 arguments need the UTF8 command). */
function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}
