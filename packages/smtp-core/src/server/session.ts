/**
 * The SMTP/ESMTP/LMTP server session: the protocol state machine of one
 * connection, sans I/O (after h11). Bytes go in with `receive(chunk)`; bytes,
 * "start TLS now", "pause/resume reading" and "close" come out through the
 * `SmtpServerTransport`; hooks are awaited; time comes from the `Clock`.
 *
 * Input runs through one loop. Framing comes first (STYLE habit 3): a
 * `LineFramer` for commands and SASL lines, a `DataDecoder` for DATA bodies
 * (it ends only on the exact CRLF.CRLF, so the smuggling sequences stay
 * inside the body), and a byte counter for BDAT chunks. Replies are buffered
 * and written when the loop needs more input, so the replies to a pipelined
 * group leave in one write (RFC 2920 §3.1).
 */
import { isAscii } from 'node:buffer';
import { DataDecoder, LineFramer, silentLogger } from '@pigeonpost/wire';
import type { Clock, DataDecoderEvent, Logger, SaslConnectionInfo, SaslIdentity, SaslServer, SaslServerSession, SaslServerStep, TimerHandle } from '@pigeonpost/wire';
import { createSaslServer } from '@pigeonpost/wire';
import { decodeXtext } from '../codec/xtext.js';
import { parseCommand, splitCommand } from '../codec/command.js';
import type { CommandParseContext, SmtpCommand, SmtpVerb } from '../codec/command.js';
import type { ParamSupport } from '../codec/params.js';
import { formatReply } from '../codec/reply.js';
import { SmtpError } from '../errors.js';
import { resolveSmtpLimits } from '../limits.js';
import type { SmtpServerLimits } from '../limits.js';
import { BodyStream } from './body-stream.js';
import { commandTable } from './commands.js';
import type { TransactionState } from './commands.js';
import type {
  SmtpConnectionInfo,
  SmtpDataResult,
  SmtpEnvelope,
  SmtpExtensions,
  SmtpHookReply,
  SmtpRecipient,
  SmtpServerSessionOptions,
  SmtpServerTransport,
  SmtpSessionInfo,
} from './types.js';
import type { Mailbox } from '../codec/address.js';
import type { MailParams } from '../codec/params.js';

type Phase = 'greeting' | 'command' | 'auth' | 'data' | 'bdat' | 'tls' | 'closed';

interface Transaction {
  mailFrom: Mailbox | null;
  mailParams: MailParams;
  rcptTo: SmtpRecipient[];
}

interface Transfer {
  readonly body: BodyStream;
  readonly result: Promise<{ ok: true; value: void | SmtpDataResult } | { ok: false; error: unknown }>;
  /** Why the message is refused whatever the hook says (too large, bare line ending). */
  failure: SmtpError | undefined;
  size: number;
  /** Normalising: drop the LF that follows a CR we already turned into CRLF. */
  skipLf: boolean;
}

const HTTP_REQUEST = /^(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|CONNECT|PATCH|TRACE) \S+ HTTP\/\d|^(?:Host|User-Agent|Accept|Content-Length): /i;
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true });
const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
const REPLY_CONTROL = /[\r\n\0]/;

let sessionCounter = 0;

const extensionDefaults: Required<SmtpExtensions> = {
  pipelining: true,
  size: true,
  eightBitMime: true,
  smtputf8: true,
  enhancedStatusCodes: true,
  dsn: false,
  chunking: true,
  binaryMime: false,
  requireTls: false,
  limits: false,
};

interface ResolvedOptions {
  readonly limits: SmtpServerLimits;
  readonly ext: Required<SmtpExtensions>;
  readonly hostname: string;
  readonly requireAuth: boolean;
  /** One SASL server for every session of these options: it only creates exchanges. */
  readonly sasl: SaslServer | undefined;
}

const resolvedOptions = new WeakMap<SmtpServerSessionOptions, ResolvedOptions>();

function resolveOptions(options: SmtpServerSessionOptions): ResolvedOptions {
  const limits = resolveSmtpLimits(
    ['maxCommandLineLength', 'maxAuthLineLength', 'maxRecipients', 'maxMessageBytes', 'maxUnrecognizedCommands', 'maxInvalidCommands', 'maxCommandsBeforeAuth', 'maxAuthFailures', 'authFailureDelayMs', 'dataTimeoutMs'],
    options,
  );
  const ext: Required<SmtpExtensions> = { ...extensionDefaults, ...stripUndefined(options.extensions ?? {}) };
  if (ext.binaryMime && !ext.chunking) throw new SmtpError('ERR_SMTP_CONFIG', 'BINARYMIME needs CHUNKING (RFC 3030 §3)', { side: 'local' });
  const hostname = options.hostname ?? 'localhost';
  if (/[\s\0]/.test(hostname) || hostname === '') throw new SmtpError('ERR_SMTP_CONFIG', 'hostname must be one non-empty token', { side: 'local' });
  const requireAuth = options.requireAuth ?? options.submission === true;
  if (requireAuth && options.auth === undefined) throw new SmtpError('ERR_SMTP_CONFIG', 'requireAuth (or submission) needs auth options', { side: 'local' });
  const auth = options.auth;
  const sasl =
    auth === undefined
      ? undefined
      : 'server' in auth
        ? auth.server
        : createSaslServer({ mechanisms: auth.mechanisms, backend: auth.backend, allowPlaintextWithoutTls: options.allowInsecureAuth === true, hostname, clock: options.clock });
  return { limits, ext, hostname, requireAuth, sasl };
}

/** Create a session for one connection. Call `start()` to send the greeting. */
export function createSmtpServerSession(options: SmtpServerSessionOptions, transport: SmtpServerTransport, connection: SmtpConnectionInfo): SmtpServerSession {
  return new SmtpServerSession(options, transport, connection);
}

export class SmtpServerSession {
  private readonly options: SmtpServerSessionOptions;
  private readonly limits: SmtpServerLimits;
  private readonly ext: Required<SmtpExtensions>;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly sasl: SaslServer | undefined;
  private readonly requireAuth: boolean;
  private readonly hostname: string;

  private conn: SmtpConnectionInfo;
  /** The frozen `info` snapshot, rebuilt only after conn, secure, helo, protocol or user change. */
  private infoSnapshot: SmtpSessionInfo | undefined;
  /** Parameter support and the common parse context, rebuilt when TLS changes them. */
  private paramSupport: ParamSupport | undefined;
  private plainContext: CommandParseContext | undefined;
  private readonly id: string;
  private secure: boolean;
  private helo: string | undefined;
  private protocol: SmtpSessionInfo['protocol'];
  private user: SaslIdentity | undefined;
  private state: TransactionState = 'fresh';
  private tx: Transaction | undefined;

  private phase: Phase = 'greeting';
  private framer: LineFramer;
  private decoder: DataDecoder | undefined;
  /** A decoder event `stepDataNow` took but left to `stepData` (it may have to wait). */
  private dataEventDue: DataDecoderEvent | undefined;
  /** `stepDataNow` pushed a chunk past the body's high-water mark: wait for the consumer first. */
  private drainDue = false;
  private bdatRaw: Uint8Array[] = [];
  private bdatRemaining = 0;
  private bdatLast = false;
  /** A refused BDAT whose octets are being skipped: its reply, sent once they are. */
  private bdatDiscardAnswer: (() => void) | undefined;
  private transfer: Transfer | undefined;
  private dataTimer: TimerHandle | undefined;
  /** When the body in transfer times out (clock ms); 0 when no body is in transfer. */
  private dataDeadline = 0;
  private saslSession: SaslServerSession | undefined;

  private readonly input: Uint8Array[] = [];
  private out = '';
  private running = false;
  private sleeping = 0;
  /** The transport is paused (no more reads until `resume`). */
  private paused = false;
  /** A hook or the body consumer is awaited with the transport's `hold` (idle timer off, reading on until bytes come). */
  private holding = false;
  private shuttingDown = false;
  private idleWaiters: (() => void)[] = [];
  private closeResolve!: () => void;
  /** Resolves when the session has ended and `onClose` has run. */
  readonly closed: Promise<void>;

  private unrecognized = 0;
  private invalid = 0;
  private preAuthCommands = 0;
  private authFailures = 0;
  /** Plaintext bytes dropped at STARTTLS (RFC 3207 §4.2). */
  discardedPlaintextBytes = 0;

  constructor(options: SmtpServerSessionOptions, private readonly transport: SmtpServerTransport, connection: SmtpConnectionInfo) {
    this.options = options;
    // A server passes the same options object to every session: checked and resolved once.
    const resolved = resolvedOptions.get(options) ?? resolveOptions(options);
    resolvedOptions.set(options, resolved);
    this.limits = resolved.limits;
    this.ext = resolved.ext;
    this.clock = options.clock;
    this.logger = options.logger ?? silentLogger;
    this.hostname = resolved.hostname;
    this.requireAuth = resolved.requireAuth;
    this.sasl = resolved.sasl;
    this.conn = connection;
    this.id = connection.id ?? `smtp${++sessionCounter}`;
    this.secure = connection.secure === true;
    this.framer = this.newFramer();
    this.closed = new Promise((resolve) => (this.closeResolve = resolve));
  }

  // ---------------------------------------------------------------- public API

  /** What hooks see. */
  get info(): SmtpSessionInfo {
    // Hooks run several times per message; the snapshot only changes with the session's identity.
    return (this.infoSnapshot ??= Object.freeze({ ...this.conn, id: this.id, secure: this.secure, helo: this.helo, protocol: this.protocol, user: this.user }));
  }

  /** The session's phase, for tests and diagnostics. */
  get currentPhase(): Phase {
    return this.phase;
  }

  /** Run `onConnect` (after `greetingDelayMs`) and send the greeting. */
  async start(): Promise<void> {
    if (this.phase !== 'greeting') throw new SmtpError('ERR_SMTP_STATE', 'start() called twice', { side: 'local' });
    const delay = this.options.greetingDelayMs ?? 0;
    if (delay > 0) {
      await this.sleep(delay);
      if (this.isClosed()) return;
    }
    if (this.options.onConnect !== undefined) {
      try {
        await this.options.onConnect(this.info);
      } catch (error) {
        this.reply(this.errorReply(error, 554, '5.7.1'));
        this.logger.info({ session: this.id, code: codeOf(error) }, 'connection refused by onConnect');
        this.closeSession();
        return;
      }
      if (this.isClosed()) return;
    }
    // RFC 5321 §4.3.1 / §3.1: the client must wait for the greeting. A client
    // that talks first is a spam engine or a cross-protocol attack.
    if (this.input.length > 0) {
      this.reply({ code: 554, enhanced: '5.5.0', text: `${this.hostname} Protocol error: talking too soon` });
      this.closeSession();
      return;
    }
    this.greet();
    this.phase = 'command';
    this.flush();
    void this.run();
  }

  /** Bytes from the client. */
  receive(chunk: Uint8Array): void {
    if (this.phase === 'closed' || chunk.length === 0) return;
    if (this.phase === 'tls') {
      // Plaintext after STARTTLS, before the handshake: never processed.
      this.discardedPlaintextBytes += chunk.length;
      return;
    }
    this.input.push(chunk);
    // Bytes while a hook or the consumer is awaited: stop reading now (the
    // transport's `hold` only switched the idle timer off). At most this one
    // chunk waits in `input`.
    if (this.holding && !this.paused) {
      this.paused = true;
      this.transport.pause();
    }
    if (this.phase !== 'greeting') void this.run();
  }

  /** The TLS handshake requested by `transport.startTls()` is done. */
  tlsEstablished(): void {
    if (this.phase !== 'tls') throw new SmtpError('ERR_SMTP_STATE', 'tlsEstablished() without a STARTTLS in progress', { side: 'local' });
    // RFC 3207 §4.2: forget everything learnt before TLS: EHLO, AUTH, transaction.
    this.secure = true;
    this.paramSupport = undefined;
    this.plainContext = undefined;
    this.helo = undefined;
    this.protocol = undefined;
    this.user = undefined;
    this.infoSnapshot = undefined;
    this.tx = undefined;
    this.state = 'fresh';
    this.framer = this.newFramer();
    this.input.length = 0;
    this.phase = 'command';
    this.paused = false; // a new socket, reading from the start
    this.endHold();
    void this.run();
  }

  /** The peer closed the connection (or the socket failed). */
  end(): void {
    if (this.phase === 'closed') return;
    this.transfer?.body.fail(new SmtpError('ERR_SMTP_CONNECTION_LOST', 'Connection lost during the message body', { side: 'remote' }));
    this.closeSession(false);
  }

  /** Graceful shutdown: finish the command or message in flight, then 421 4.3.2 and close. */
  shutdown(): void {
    if (this.phase === 'closed') return;
    this.shuttingDown = true;
    if (!this.running && (this.phase === 'command' || this.phase === 'auth' || this.phase === 'greeting' || this.phase === 'tls')) this.sayGoodbye();
  }

  /** The idle timeout fired (RFC 5321 §4.5.3.2.7): 421 4.4.2 and close. */
  idleTimeout(): void {
    if (this.phase === 'closed') return;
    this.transfer?.body.fail(serverErr('ERR_SMTP_DATA_TIMEOUT', 421, '4.4.2', 'Timeout'));
    this.reply({ code: 421, enhanced: '4.4.2', text: `${this.hostname} Idle timeout, closing connection` });
    this.closeSession();
  }

  /** True while input is being handled or a hook is awaited. */
  get busy(): boolean {
    return this.running;
  }

  /** True while the session waits on its clock (AUTH failure delay, greeting delay). */
  get waitingForClock(): boolean {
    return this.sleeping > 0;
  }

  /** Resolves when every byte received so far has been handled and no hook is running. For tests. */
  whenIdle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  // ---------------------------------------------------------------- the loop

  private async run(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      while (this.phase === 'command' || this.phase === 'auth' || this.phase === 'data' || this.phase === 'bdat') {
        // Body bytes that need no waiting are handled without a promise per chunk.
        const stepped = this.phase === 'data' ? this.stepDataNow() : undefined;
        if (stepped === true || (stepped === undefined && (await this.step()))) continue;
        const chunk = this.input.shift();
        if (chunk === undefined) break;
        this.feed(chunk);
      }
    } catch (error) {
      // A bug of ours, never the peer's: log it and end this session only.
      this.logger.error({ session: this.id, err: error }, 'SMTP session failed');
      this.reply({ code: 421, enhanced: '4.3.0', text: `${this.hostname} Internal error, closing connection` });
      this.closeSession();
    } finally {
      this.running = false;
      this.flush();
      // Not during a STARTTLS handshake: the plain socket belongs to TLS now.
      if (this.phase !== 'closed' && this.phase !== 'tls') {
        this.endHold();
        if (this.paused) {
          this.paused = false;
          this.transport.resume();
        }
      }
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
    if (this.shuttingDown && (this.phase === 'command' || this.phase === 'auth')) this.sayGoodbye();
  }

  private feed(chunk: Uint8Array): void {
    if (this.phase === 'data') this.decoder?.push(chunk);
    else if (this.phase === 'bdat') this.bdatRaw.push(chunk);
    else this.framer.push(chunk);
  }

  /** One unit of work; false when more input is needed. */
  private async step(): Promise<boolean> {
    if (this.phase === 'data') return this.stepData();
    if (this.phase === 'bdat') return this.stepBdat();
    if (this.shuttingDown && this.phase === 'command') {
      this.sayGoodbye();
      return true;
    }
    const ev = this.framer.next();
    if (ev === undefined) return false;
    if (ev.type === 'error') {
      if (this.phase === 'auth') this.abortSasl();
      this.refuse('invalid', 500, '5.5.2', 'Line too long');
      return true;
    }
    if (ev.type !== 'line') return true; // no literals in SMTP
    const line = ev.line;
    if (ev.bareLf || ev.bareCr) {
      // RFC 5321 §2.3.8: lines end with CRLF only. Reading `RSET\nDATA` as two
      // commands is how SMTP smuggling works, so the whole line is refused.
      if (this.phase === 'auth') this.abortSasl();
      this.refuse('invalid', 500, '5.5.2', 'Bare CR or LF not allowed');
      return true;
    }
    if (line.includes(0)) {
      if (this.phase === 'auth') this.abortSasl();
      this.refuse('invalid', 500, '5.5.2', 'NUL characters not allowed');
      return true;
    }
    let text: string;
    try {
      // Most lines are ASCII: a latin1 copy is exact for them and cheaper than the checking UTF-8 decoder.
      text = isAscii(line) ? latin1(line) : fatalUtf8.decode(line);
    } catch {
      if (this.phase === 'auth') this.abortSasl();
      this.refuse('invalid', 500, '5.5.2', 'Invalid UTF-8');
      return true;
    }
    if (this.phase === 'auth') {
      await this.saslContinue(text);
      return true;
    }
    await this.dispatch(text, line.length);
    return true;
  }

  // ---------------------------------------------------------------- commands

  private async dispatch(text: string, length: number): Promise<void> {
    const { verb } = splitCommand(text);
    const spec = commandTable[verb as SmtpVerb] as (typeof commandTable)[SmtpVerb] | undefined;
    // A request line of HTTP on port 25: a browser tricked into cross-protocol POSTs.
    // (No HTTP method or header name is an SMTP verb: known verbs skip the regex.)
    if (spec === undefined && HTTP_REQUEST.test(text)) {
      this.reply({ code: 554, enhanced: '5.7.0', text: 'This is an SMTP server, not HTTP' });
      this.closeSession();
      return;
    }
    if (this.requireAuth && this.user === undefined && ++this.preAuthCommands > this.limits.maxCommandsBeforeAuth) {
      this.reply({ code: 421, enhanced: '4.7.0', text: `${this.hostname} Too many commands before authentication` });
      this.closeSession();
      return;
    }
    if (verb !== 'AUTH' && length + 2 > this.limits.maxCommandLineLength) {
      this.refuse('invalid', 500, '5.5.2', 'Line too long');
      return;
    }
    if (spec === undefined || !spec.enabled(this)) {
      this.refuse('unrecognized', 500, '5.5.1', 'Command unrecognized');
      return;
    }
    if (!spec.states.includes(this.state)) {
      const answer = (): void => {
        if ((verb === 'DATA' || verb === 'BDAT') && this.state === 'mail') this.refuse('invalid', 554, '5.5.1', 'No valid recipients');
        else if (this.state === 'fresh' && spec.states.includes('greeted')) this.refuse('invalid', 503, '5.5.1', `Send ${this.options.lmtp === true ? 'LHLO' : 'EHLO/HELO'} first`);
        else this.refuse('invalid', 503, '5.5.1', 'Bad sequence of commands');
      };
      if (verb !== 'BDAT' || !this.discardBdat(text, answer)) answer();
      return;
    }
    if (spec.needsAuth && this.requireAuth && this.user === undefined) {
      const answer = (): void => this.reply({ code: 530, enhanced: '5.7.0', text: 'Authentication required' });
      if (verb !== 'BDAT' || !this.discardBdat(text, answer)) answer();
      return;
    }
    const parsed = parseCommand(text, this.parseContext());
    if (!parsed.ok) {
      const e = parsed.error;
      this.refuse(e.kind === 'size' ? 'none' : 'invalid', e.code, e.enhanced, e.text);
      return;
    }
    await spec.handler(this, parsed.command);
  }

  /**
   * RFC 3030 §2: a refused BDAT's octets are still read (and dropped) before
   * its reply, or they would be taken for commands — a pipelining client
   * (RFC 3030 §4.2) sends them before it knows the RCPT replies. False when
   * the command line gives no size to skip (its syntax reply follows).
   */
  private discardBdat(text: string, answer: () => void): boolean {
    const parsed = parseCommand(text, this.parseContext());
    if (!parsed.ok || parsed.command.verb !== 'BDAT') return false;
    this.bdatDiscardAnswer = answer;
    this.bdatRemaining = parsed.command.size;
    this.bdatLast = parsed.command.last;
    this.phase = 'bdat';
    const buffered = this.framer.takeBuffered();
    if (buffered.length > 0) this.bdatRaw.push(buffered);
    return true;
  }

  private parseContext(): CommandParseContext {
    // What the parameters may use changes only with TLS; built once per session state, not per command.
    const support = (this.paramSupport ??= this.buildParamSupport());
    const transactionUtf8 = this.tx?.mailParams.smtputf8 === true;
    if (this.options.lenientAddresses !== true && !transactionUtf8) return (this.plainContext ??= { support, transactionUtf8: false, lenientAddresses: false });
    return { support, transactionUtf8, lenientAddresses: this.options.lenientAddresses === true };
  }

  private buildParamSupport(): ParamSupport {
    return {
      size: this.ext.size,
      eightBitMime: this.ext.eightBitMime,
      binaryMime: this.ext.binaryMime,
      smtputf8: this.ext.smtputf8,
      dsn: this.ext.dsn,
      auth: this.authAdvertised(),
      requireTls: this.ext.requireTls && this.secure,
      maxMessageBytes: this.limits.maxMessageBytes,
    };
  }

  /** @internal Which commands are on: used by the command table. */
  isEnabled(what: 'lmtp' | 'smtp' | 'starttls' | 'auth' | 'chunking' | 'xclient'): boolean {
    switch (what) {
      case 'lmtp':
        return this.options.lmtp === true;
      case 'smtp':
        return this.options.lmtp !== true;
      case 'starttls':
        return this.conn.startTlsAvailable === true && !this.secure;
      case 'auth':
        return this.sasl !== undefined;
      case 'chunking':
        return this.ext.chunking;
      case 'xclient':
        return this.conn.xclientAllowed === true;
    }
  }

  private authAdvertised(): boolean {
    return this.sasl !== undefined && (this.secure || this.options.allowInsecureAuth === true);
  }

  /** @internal EHLO, HELO, LHLO. */
  async cmdHello(command: Extract<SmtpCommand, { verb: 'HELO' | 'EHLO' | 'LHLO' }>): Promise<void> {
    const onEhlo = this.options.onEhlo;
    // No hook, no await: the socket is not paused for nothing.
    if (onEhlo !== undefined && !(await this.hook(() => onEhlo(command.domain, this.info), 550, '5.7.1'))) return;
    // RFC 5321 §4.1.4: EHLO mid-transaction is an implicit RSET.
    this.resetTransaction();
    this.helo = command.domain;
    this.protocol = command.verb === 'HELO' ? 'SMTP' : command.verb === 'LHLO' ? 'LMTP' : 'ESMTP';
    this.infoSnapshot = undefined;
    this.state = 'greeted';
    const first = `${this.hostname} Hello ${command.domain} [${this.conn.remoteAddress}]`;
    if (command.verb === 'HELO') {
      this.reply({ code: 250, text: first, noEnhanced: true });
      return;
    }
    const lines = [first];
    if (this.ext.pipelining) lines.push('PIPELINING');
    if (this.ext.size) lines.push(`SIZE ${this.limits.maxMessageBytes}`);
    if (this.ext.eightBitMime) lines.push('8BITMIME');
    if (this.ext.smtputf8) lines.push('SMTPUTF8');
    if (this.ext.enhancedStatusCodes) lines.push('ENHANCEDSTATUSCODES');
    if (this.ext.dsn) lines.push('DSN');
    if (this.ext.chunking) lines.push('CHUNKING');
    if (this.ext.binaryMime) lines.push('BINARYMIME');
    if (this.isEnabled('starttls')) lines.push('STARTTLS');
    if (this.authAdvertised() && this.sasl !== undefined) {
      const mechanisms = this.sasl.advertise(this.saslConnection());
      if (mechanisms.length > 0) lines.push(`AUTH ${mechanisms.join(' ')}`);
    }
    if (this.ext.requireTls && this.secure) lines.push('REQUIRETLS');
    if (this.ext.limits) lines.push(`LIMITS RCPTMAX=${this.limits.maxRecipients}`);
    if (this.isEnabled('xclient')) lines.push('XCLIENT NAME ADDR PORT PROTO HELO LOGIN DESTADDR DESTPORT');
    lines.push('HELP');
    this.replyLines(250, undefined, lines);
  }

  /** @internal MAIL FROM. */
  async cmdMail(command: Extract<SmtpCommand, { verb: 'MAIL' }>): Promise<void> {
    const { from, params } = command;
    // RFC 6531 §3.4: UTF-8 addresses only with the SMTPUTF8 parameter (the parser enforced it).
    let positive: void | SmtpHookReply = undefined;
    const onMailFrom = this.options.onMailFrom;
    if (onMailFrom !== undefined) {
      const ok = await this.hook(async () => {
        positive = await onMailFrom(from, params, this.info);
      }, 451, '4.3.0');
      if (!ok) return;
    }
    this.tx = { mailFrom: from, mailParams: params, rcptTo: [] };
    this.state = 'mail';
    this.replyPositive(positive, 250, '2.1.0', 'Sender OK');
  }

  /** @internal RCPT TO. */
  async cmdRcpt(command: Extract<SmtpCommand, { verb: 'RCPT' }>): Promise<void> {
    const tx = this.tx;
    if (tx === undefined) throw new SmtpError('ERR_SMTP_STATE', 'RCPT without a transaction', { side: 'local' });
    if (tx.rcptTo.length >= this.limits.maxRecipients) {
      // RFC 5321 §4.5.3.1.10: 452 tells the client to send the rest in another transaction.
      this.reply({ code: 452, enhanced: '4.5.3', text: 'Too many recipients' });
      return;
    }
    const hook = this.options.onRcptTo;
    if (hook === undefined) {
      // Safe default: nobody is a local recipient until the user says so.
      this.reply({ code: 550, enhanced: '5.7.1', text: 'Relaying denied' });
      return;
    }
    let positive: void | SmtpHookReply = undefined;
    const envelope = { mailFrom: tx.mailFrom, mailParams: tx.mailParams, rcptTo: [...tx.rcptTo] };
    const ok = await this.hook(async () => {
      positive = await hook(command.to, command.params, envelope, this.info);
    }, 451, '4.3.0');
    if (!ok) return;
    tx.rcptTo.push({ address: command.to, params: command.params });
    this.state = 'rcpt';
    this.replyPositive(positive, 250, '2.1.5', 'Recipient OK');
  }

  /** @internal DATA. */
  cmdData(): Promise<void> {
    const tx = this.tx;
    if (tx === undefined) throw new SmtpError('ERR_SMTP_STATE', 'DATA without a transaction', { side: 'local' });
    if (tx.mailParams.body === 'BINARYMIME') {
      // RFC 3030 §3: a BINARYMIME body can only be sent with BDAT.
      this.refuse('invalid', 503, '5.5.1', 'BODY=BINARYMIME requires BDAT');
      return Promise.resolve();
    }
    this.beginTransfer(tx, 'DATA');
    this.reply({ code: 354, text: 'End data with <CR><LF>.<CR><LF>', noEnhanced: true });
    this.decoder = new DataDecoder({ maxDataBytes: this.limits.maxMessageBytes });
    this.dataEventDue = undefined;
    this.drainDue = false;
    this.phase = 'data';
    this.decoder.push(this.framer.takeBuffered());
    return Promise.resolve();
  }

  /** @internal BDAT (RFC 3030). */
  cmdBdat(command: Extract<SmtpCommand, { verb: 'BDAT' }>): Promise<void> {
    const tx = this.tx;
    if (tx === undefined) throw new SmtpError('ERR_SMTP_STATE', 'BDAT without a transaction', { side: 'local' });
    if (this.state === 'rcpt') this.beginTransfer(tx, 'BDAT');
    this.state = 'bdat';
    this.bdatRemaining = command.size;
    this.bdatLast = command.last;
    this.phase = 'bdat';
    const buffered = this.framer.takeBuffered();
    if (buffered.length > 0) this.bdatRaw.push(buffered);
    return Promise.resolve();
  }

  /** VRFY / EXPN through the user's hook (RFC 5321 §3.5). */
  private async verify(verb: 'VRFY' | 'EXPN', hook: NonNullable<SmtpServerSessionOptions['onVrfy']>, argument: string): Promise<void> {
    let found: readonly string[] = [];
    const ok = await this.hook(async () => {
      found = (await hook(argument.trim(), this.info)).mailboxes;
    }, 451, '4.3.0');
    if (!ok) return;
    if (found.length === 0) this.reply({ code: 550, enhanced: '5.1.1', text: verb === 'VRFY' ? 'User unknown' : 'Mailing list unknown' });
    else if (verb === 'VRFY' && found.length > 1) this.replyLines(553, '5.1.4', ['User ambiguous, possibilities are:', ...found]);
    else this.replyLines(250, '2.1.5', found);
  }

  /** @internal RSET. */
  cmdRset(): Promise<void> {
    this.resetTransaction();
    this.reply({ code: 250, enhanced: '2.0.0', text: 'Flushed' });
    return Promise.resolve();
  }

  /** @internal NOOP, HELP, VRFY, EXPN, QUIT. */
  cmdSimple(command: SmtpCommand): Promise<void> {
    switch (command.verb) {
      case 'NOOP':
        this.reply({ code: 250, enhanced: '2.0.0', text: 'OK' });
        break;
      case 'HELP':
        this.replyLines(214, '2.0.0', ['Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH', 'See RFC 5321']);
        break;
      case 'VRFY':
      case 'EXPN': {
        const hook = command.verb === 'VRFY' ? this.options.onVrfy : this.options.onExpn;
        // RFC 5321 §3.5.3: 252 when we will not verify, but may accept the message.
        if (hook === undefined) this.reply({ code: 252, enhanced: '2.5.2', text: 'Cannot VRFY user, but will accept message and attempt delivery' });
        else return this.verify(command.verb, hook, command.argument);
        break;
      }
      case 'QUIT':
        this.reply({ code: 221, enhanced: '2.0.0', text: `${this.hostname} Bye` });
        this.closeSession();
        break;
      default:
        break;
    }
    return Promise.resolve();
  }

  /** @internal STARTTLS (RFC 3207). */
  cmdStartTls(): Promise<void> {
    this.reply({ code: 220, enhanced: '2.0.0', text: 'Ready to start TLS' });
    this.flush();
    // RFC 3207 §4.2 (CVE-2011-0411): anything received after the STARTTLS line
    // and before the handshake is plaintext an attacker may have injected.
    this.discardedPlaintextBytes += this.framer.discardBuffered();
    for (const chunk of this.input.splice(0)) this.discardedPlaintextBytes += chunk.length;
    if (this.discardedPlaintextBytes > 0) this.logger.warn({ session: this.id, bytes: this.discardedPlaintextBytes }, 'plaintext after STARTTLS discarded');
    this.phase = 'tls';
    this.transport.startTls();
    return Promise.resolve();
  }

  /** @internal AUTH (RFC 4954). */
  async cmdAuth(command: Extract<SmtpCommand, { verb: 'AUTH' }>): Promise<void> {
    const sasl = this.sasl;
    if (sasl === undefined) return;
    if (this.user !== undefined) {
      this.refuse('invalid', 503, '5.5.1', 'Already authenticated');
      return;
    }
    if (!this.secure && this.options.allowInsecureAuth !== true) {
      // RFC 4954 §4 / RFC 5248: 538 5.7.11 "Encryption required for requested authentication mechanism".
      this.reply({ code: 538, enhanced: '5.7.11', text: 'Encryption required for requested authentication mechanism' });
      return;
    }
    const session = sasl.createSession(command.mechanism, this.saslConnection());
    this.saslSession = session;
    this.pause();
    const step = command.initialResponse === undefined ? await session.start() : await session.startEncoded(command.initialResponse);
    await this.saslOutcome(step);
  }

  /** What SASL may use of this connection: TLS, and its channel bindings for SCRAM -PLUS. */
  private saslConnection(): SaslConnectionInfo {
    const channelBindings = this.secure ? this.transport.channelBindings?.() : undefined;
    return channelBindings !== undefined && channelBindings.length > 0 ? { tls: this.secure, channelBindings } : { tls: this.secure };
  }

  /** @internal XCLIENT (Postfix XCLIENT_README), trusted networks only. */
  async cmdXclient(command: Extract<SmtpCommand, { verb: 'XCLIENT' }>): Promise<void> {
    const next: { -readonly [K in keyof SmtpConnectionInfo]: SmtpConnectionInfo[K] } = { ...this.conn };
    let login: string | undefined;
    for (const [name, raw] of command.attributes) {
      const value = decodeXtext(raw);
      if (value === undefined) {
        this.refuse('invalid', 501, '5.5.4', `Bad XCLIENT value for ${name}`);
        return;
      }
      const unavailable = value === '[UNAVAILABLE]' || value === '[TEMPUNAVAIL]';
      switch (name) {
        case 'NAME':
          next.remoteName = unavailable ? undefined : value;
          break;
        case 'ADDR':
          if (!unavailable) next.remoteAddress = value.replace(/^IPV6:/i, '');
          break;
        case 'PORT':
          if (!unavailable) next.remotePort = Number(value);
          break;
        case 'DESTADDR':
          if (!unavailable) next.localAddress = value.replace(/^IPV6:/i, '');
          break;
        case 'DESTPORT':
          if (!unavailable) next.localPort = Number(value);
          break;
        case 'LOGIN':
          login = unavailable ? undefined : value;
          break;
        case 'HELO':
        case 'PROTO':
          break;
        default:
          this.refuse('invalid', 501, '5.5.4', `Bad XCLIENT attribute ${name}`);
          return;
      }
    }
    this.conn = next;
    this.helo = undefined;
    this.protocol = undefined;
    this.resetTransaction();
    this.state = 'fresh';
    if (login !== undefined) this.user = { mechanism: 'XCLIENT' as never, authcid: login, authzid: login };
    this.infoSnapshot = undefined;
    // Postfix answers XCLIENT with a new greeting: the session starts over as the named client.
    if (!(await this.hook(() => this.options.onConnect?.(this.info), 554, '5.7.1'))) return;
    this.greet();
  }

  // ---------------------------------------------------------------- SASL

  private async saslContinue(line: string): Promise<void> {
    const session = this.saslSession;
    if (session === undefined) {
      this.phase = 'command';
      return;
    }
    if (line.length + 2 > this.limits.maxAuthLineLength) {
      this.abortSasl();
      this.refuse('invalid', 500, '5.5.6', 'Authentication exchange line too long');
      return;
    }
    this.pause();
    await this.saslOutcome(await session.stepEncoded(line));
  }

  private async saslOutcome(step: SaslServerStep): Promise<void> {
    if (step.type === 'challenge') {
      this.phase = 'auth';
      // RFC 4954 §4: "334" SP [base64] — written raw, no enhanced code.
      this.out += `334 ${step.encoded}\r\n`;
      return;
    }
    this.phase = 'command';
    this.saslSession = undefined;
    if (step.type === 'success') {
      const onAuth = this.options.onAuth;
      let refused: unknown;
      if (onAuth !== undefined) {
        try {
          await onAuth(step.identity, this.info);
        } catch (error) {
          refused = error;
        }
      }
      if (refused === undefined) {
        this.user = step.identity;
        this.infoSnapshot = undefined;
        this.reply({ code: 235, enhanced: '2.7.0', text: 'Authentication successful' });
        return;
      }
      await this.authFailed(this.errorReply(refused, 535, '5.7.8'));
      return;
    }
    const smtp = step.error.reply?.smtp;
    const reply = { code: smtp?.code ?? 535, enhanced: smtp?.enhanced ?? '5.7.8', text: step.error.reply?.text ?? 'Authentication failed' };
    if (step.error.code === 'ERR_SASL_CANCELLED' || step.error.code === 'ERR_SASL_MECHANISM_UNSUPPORTED' || step.error.code === 'ERR_SASL_ENCRYPTION_REQUIRED') {
      this.reply(reply);
      return;
    }
    await this.authFailed(reply);
  }

  private async authFailed(reply: ReplyInit): Promise<void> {
    this.authFailures++;
    // Each failure waits longer before the answer: guessing gets slower (Dovecot's auth_failure_delay).
    const delay = this.limits.authFailureDelayMs * 2 ** (this.authFailures - 1);
    if (delay > 0) await this.sleep(delay);
    if (this.phase === 'closed') return;
    if (this.authFailures >= this.limits.maxAuthFailures) {
      this.reply({ code: 421, enhanced: '4.7.0', text: `${this.hostname} Too many failed authentication attempts` });
      this.closeSession();
      return;
    }
    this.reply(reply);
  }

  private abortSasl(): void {
    this.saslSession?.cancel();
    this.saslSession = undefined;
    this.phase = 'command';
  }

  // ---------------------------------------------------------------- bodies

  private beginTransfer(tx: Transaction, kind: 'DATA' | 'BDAT'): void {
    const body = new BodyStream();
    const envelope: SmtpEnvelope = Object.freeze({ mailFrom: tx.mailFrom, mailParams: tx.mailParams, rcptTo: Object.freeze([...tx.rcptTo]), transfer: kind });
    const onData = this.options.onData;
    const info = this.info;
    const result = (async () => {
      if (onData === undefined) throw serverErr('ERR_SMTP_REJECTED', 554, '5.3.0', 'No message handler configured');
      return onData(envelope, body, info);
    })().then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    // Once the hook settles it reads no more: drop the rest of the body.
    void result.then(() => body.detach());
    this.transfer = { body, result, failure: undefined, size: 0, skipLf: false };
    if (this.limits.dataTimeoutMs > 0) {
      this.dataDeadline = this.clock.now() + this.limits.dataTimeoutMs;
      // One timer serves message after message: it is not cleared when a body
      // ends, and when it fires for an earlier body it sleeps for what is left
      // of this one (no setTimeout/clearTimeout pair per message).
      this.dataTimer ??= this.clock.setTimeout(() => this.dataTimeout(), this.limits.dataTimeoutMs);
    }
  }

  /** The body has been read (or the transaction is gone): no data timeout until the next one. */
  private stopDataTimer(): void {
    this.dataDeadline = 0;
  }

  private dataTimeout(): void {
    this.dataTimer = undefined;
    if (this.phase === 'closed' || this.dataDeadline === 0) return;
    const left = this.dataDeadline - this.clock.now();
    if (left > 0) {
      this.dataTimer = this.clock.setTimeout(() => this.dataTimeout(), left);
      return;
    }
    this.dataDeadline = 0;
    const error = serverErr('ERR_SMTP_DATA_TIMEOUT', 421, '4.4.2', `${this.hostname} Timeout receiving the message, closing connection`);
    this.transfer?.body.fail(error);
    this.reply({ code: 421, enhanced: '4.4.2', text: error.message });
    this.closeSession();
  }

  /**
   * The common DATA step without an await: a chunk of body the consumer has
   * room for. `undefined` when the step may have to wait (backpressure, the
   * end of the body, a failure): then `stepData` does it.
   */
  private stepDataNow(): boolean | undefined {
    const decoder = this.decoder;
    const transfer = this.transfer;
    if (decoder === undefined || transfer === undefined || this.dataEventDue !== undefined || this.drainDue) return undefined;
    const ev = decoder.next();
    if (ev === undefined) return false;
    if (ev.type === 'data') {
      if (transfer.failure !== undefined) return true; // refused already: the rest of the body is dropped
      if (this.options.bareLineEndings !== 'normalize' && ev.bareCr + ev.bareLf === 0) {
        if (!transfer.body.push(ev.chunk)) this.drainDue = true; // the consumer lags: stepData waits
        return !this.drainDue || undefined;
      }
    }
    this.dataEventDue = ev;
    return undefined;
  }

  private async stepData(): Promise<boolean> {
    const decoder = this.decoder;
    const transfer = this.transfer;
    if (decoder === undefined || transfer === undefined) throw new SmtpError('ERR_SMTP_STATE', 'data phase without a decoder', { side: 'local' });
    if (this.drainDue) {
      this.drainDue = false;
      this.pause();
      await transfer.body.drained();
      return true;
    }
    const ev = this.dataEventDue ?? decoder.next();
    this.dataEventDue = undefined;
    if (ev === undefined) return false;
    if (ev.type === 'data') {
      if (transfer.failure === undefined) await this.deliverText(transfer, ev.chunk, ev.bareCr + ev.bareLf);
      return true;
    }
    if (ev.type === 'error') {
      // RFC 1870 §6: too large. The decoder reads on to the real end, so the session stays in sync.
      this.failTransfer(transfer, serverErr('ERR_SMTP_MESSAGE_TOO_LARGE', 552, '5.3.4', 'Message size exceeds fixed maximum message size'));
      return true;
    }
    // A CR at the very end of a chunk is counted once the next byte shows it bare: check the final count too.
    if (transfer.failure === undefined && this.options.bareLineEndings !== 'normalize' && ev.bareCr + ev.bareLf > 0) this.failBareLineEnding(transfer);
    const leftover = decoder.takeLeftover();
    this.decoder = undefined;
    this.phase = 'command';
    this.framer.push(leftover);
    await this.completeMessage(transfer);
    return true;
  }

  /**
   * Hand a DATA chunk to the body, applying the bare CR/LF policy. `bare` is
   * the decoder's count of bare CRs and LFs in the body so far (this chunk
   * included), so the body is not scanned a second time.
   */
  private async deliverText(transfer: Transfer, chunk: Uint8Array, bare: number): Promise<void> {
    const normalize = this.options.bareLineEndings === 'normalize';
    let out: Uint8Array = chunk;
    if (normalize) {
      out = normalizeLineEndings(transfer, chunk);
    } else if (bare > 0) {
      this.failBareLineEnding(transfer);
      return;
    }
    await this.deliver(transfer, out);
  }

  private failBareLineEnding(transfer: Transfer): void {
    // Postfix's smtpd_forbid_bare_newline: a body with bare CR/LF is refused, so it
    // cannot be a carrier for a smuggled second message when relayed on.
    this.failTransfer(transfer, serverErr('ERR_SMTP_BARE_LINE_ENDING', 550, '5.5.2', 'Bare CR or LF in message body not allowed'));
  }

  private async deliver(transfer: Transfer, chunk: Uint8Array): Promise<void> {
    if (!transfer.body.push(chunk)) {
      this.pause();
      await transfer.body.drained();
    }
  }

  private failTransfer(transfer: Transfer, error: SmtpError): void {
    transfer.failure ??= error;
    transfer.body.fail(transfer.failure);
  }

  private async stepBdat(): Promise<boolean> {
    if (this.bdatDiscardAnswer !== undefined) return this.skipBdat(this.bdatDiscardAnswer);
    const transfer = this.transfer;
    if (transfer === undefined) throw new SmtpError('ERR_SMTP_STATE', 'bdat phase without a transfer', { side: 'local' });
    if (this.bdatRemaining > 0) {
      const chunk = this.bdatRaw.shift();
      if (chunk === undefined) return false;
      let piece = chunk;
      if (chunk.length > this.bdatRemaining) {
        piece = chunk.subarray(0, this.bdatRemaining);
        this.bdatRaw.unshift(chunk.subarray(this.bdatRemaining));
      }
      this.bdatRemaining -= piece.length;
      transfer.size += piece.length;
      if (transfer.failure === undefined) {
        if (transfer.size > this.limits.maxMessageBytes) {
          this.failTransfer(transfer, serverErr('ERR_SMTP_MESSAGE_TOO_LARGE', 552, '5.3.4', 'Message size exceeds fixed maximum message size'));
        } else {
          await this.deliver(transfer, piece);
        }
      }
      return true;
    }
    // The chunk is complete: what follows it is commands again.
    this.phase = 'command';
    for (const rest of this.bdatRaw.splice(0)) this.framer.push(rest);
    if (this.bdatLast) {
      await this.completeMessage(transfer);
    } else if (transfer.failure !== undefined) {
      this.reply(replyOf(transfer.failure));
    } else {
      this.reply({ code: 250, enhanced: '2.0.0', text: `${transfer.size} octets received` });
    }
    return true;
  }

  /** Drop a refused BDAT chunk's octets, then answer it. */
  private skipBdat(answer: () => void): boolean {
    if (this.bdatRemaining > 0) {
      const chunk = this.bdatRaw.shift();
      if (chunk === undefined) return false;
      if (chunk.length > this.bdatRemaining) this.bdatRaw.unshift(chunk.subarray(this.bdatRemaining));
      this.bdatRemaining -= Math.min(chunk.length, this.bdatRemaining);
      return true;
    }
    this.bdatDiscardAnswer = undefined;
    this.phase = 'command';
    for (const rest of this.bdatRaw.splice(0)) this.framer.push(rest);
    answer();
    return true;
  }

  /** The body is complete: wait for `onData`, then answer (RFC 5321 §4.1.1.4; RFC 2033 §4.2 for LMTP). */
  private async completeMessage(transfer: Transfer): Promise<void> {
    this.stopDataTimer();
    if (transfer.failure === undefined) transfer.body.end();
    this.pause();
    const outcome = await transfer.result;
    if (this.phase === 'closed') return;
    const recipients = this.tx?.rcptTo ?? [];
    this.transfer = undefined;
    this.resetTransaction();
    const lmtp = this.options.lmtp === true;
    let replies: ReplyInit[];
    if (transfer.failure !== undefined) {
      const r = replyOf(transfer.failure);
      replies = lmtp ? recipients.map(() => r) : [r];
    } else if (!outcome.ok) {
      // Nothing lost: the hook did not make the message durable, so no 250.
      const r = this.errorReply(outcome.error, 451, '4.3.0');
      replies = lmtp ? recipients.map(() => r) : [r];
      this.logger.warn({ session: this.id, code: codeOf(outcome.error) }, 'onData refused the message');
    } else {
      const value = outcome.value ?? undefined;
      if (lmtp) {
        replies = recipients.map((rcpt, i) => {
          const refusal = value?.recipients?.[i];
          return refusal !== undefined ? this.errorReply(refusal, 451, '4.3.0') : { code: 250, enhanced: '2.0.0', text: `<${rcpt.address.address}> Delivered` };
        });
      } else {
        replies = [{ code: 250, enhanced: '2.0.0', text: value?.text ?? 'Message accepted' }];
      }
    }
    for (const r of replies) this.reply(r);
  }

  // ---------------------------------------------------------------- helpers

  private greet(): void {
    const banner = this.options.banner ?? (this.options.lmtp === true ? 'LMTP' : 'ESMTP');
    this.reply({ code: 220, text: `${this.hostname} ${banner}`, noEnhanced: true });
  }

  private resetTransaction(): void {
    if (this.transfer !== undefined) {
      this.transfer.body.fail(new SmtpError('ERR_SMTP_STATE', 'Transaction reset', { side: 'remote' }));
      this.transfer = undefined;
    }
    this.stopDataTimer();
    this.tx = undefined;
    if (this.state !== 'fresh') this.state = 'greeted';
  }

  /** Run a hook; on a throw, reply with its error (or the fallback) and return false. */
  private async hook(fn: () => Promise<unknown> | undefined, fallbackCode: number, fallbackEnhanced: string): Promise<boolean> {
    try {
      this.pause();
      await fn();
      return this.phase !== 'closed';
    } catch (error) {
      if (this.phase === 'closed') return false;
      this.reply(this.errorReply(error, fallbackCode, fallbackEnhanced));
      return false;
    }
  }

  private errorReply(error: unknown, fallbackCode: number, fallbackEnhanced: string): ReplyInit {
    if (SmtpError.isInstance(error) && error.reply?.smtp !== undefined) return replyOf(error);
    this.logger.error({ session: this.id, err: error }, 'hook failed');
    return { code: fallbackCode, enhanced: fallbackEnhanced, text: fallbackCode >= 500 ? 'Refused' : 'Temporary local problem, please try again later' };
  }

  /** Answer an error, counting it; too many errors end the session (421). */
  private refuse(kind: 'unrecognized' | 'invalid' | 'none', code: number, enhanced: string, text: string): void {
    const tooMany =
      (kind === 'unrecognized' && ++this.unrecognized > this.limits.maxUnrecognizedCommands) ||
      (kind !== 'none' && ++this.invalid > this.limits.maxInvalidCommands);
    if (tooMany) {
      this.reply({ code: 421, enhanced: '4.7.0', text: `${this.hostname} Too many errors, closing connection` });
      this.closeSession();
      return;
    }
    this.reply({ code, enhanced, text });
  }

  private replyPositive(positive: void | SmtpHookReply, code: number, enhanced: string, text: string): void {
    const p = positive === undefined ? undefined : positive;
    this.reply({ code: p?.code ?? code, enhanced: p?.enhanced ?? enhanced, text: p?.text ?? text });
  }

  /** One-line replies (all but EHLO and HELP): formatted here without the arrays of `formatReply`, same bytes. */
  private reply(r: ReplyInit): void {
    if (this.phase === 'closed') return;
    const code = r.code;
    if (!Number.isInteger(code) || code < 200 || code > 599) throw new SmtpError('ERR_SMTP_STATE', `invalid reply code ${code}`, { side: 'local' });
    const enhanced = r.noEnhanced === true || !this.ext.enhancedStatusCodes ? undefined : r.enhanced;
    const text = REPLY_CONTROL.test(r.text) ? r.text.replace(/[\r\n\0]/g, ' ') : r.text;
    const line = enhanced === undefined ? `${code} ${text}` : text === '' ? `${code} ${enhanced}` : `${code} ${enhanced} ${text}`;
    this.out += line.trimEnd() + '\r\n';
  }

  private replyLines(code: number, enhanced: string | undefined, lines: readonly string[]): void {
    if (this.phase === 'closed') return;
    this.out += formatReply({ code, enhanced: this.ext.enhancedStatusCodes ? enhanced : undefined, lines: lines.map((l) => l.replace(/[\r\n\0]/g, ' ')) });
  }

  private flush(): void {
    if (this.out === '') return;
    const bytes = Buffer.from(this.out, 'utf8');
    this.out = '';
    this.transport.write(bytes);
  }

  /**
   * Something is about to be awaited (a hook, `onData`'s result, the body
   * consumer): no more input may be read until the loop ends. With the
   * transport's `hold`, reading stops only when bytes do arrive (`receive`);
   * without it, the transport is paused now.
   */
  private pause(): void {
    if (this.paused || this.holding) return;
    if (this.transport.hold !== undefined) {
      this.holding = true;
      this.transport.hold();
    } else {
      this.paused = true;
      this.transport.pause();
    }
  }

  private endHold(): void {
    if (!this.holding) return;
    this.holding = false;
    this.transport.release?.();
  }

  private sayGoodbye(): void {
    this.reply({ code: 421, enhanced: '4.3.2', text: `${this.hostname} Service shutting down, closing connection` });
    this.closeSession();
  }

  private closeSession(flush = true): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    if (flush) this.flush();
    this.out = '';
    this.dataDeadline = 0;
    if (this.dataTimer !== undefined) this.clock.clearTimeout(this.dataTimer);
    this.dataTimer = undefined;
    this.transfer?.body.fail(new SmtpError('ERR_SMTP_CONNECTION_LOST', 'Session closed', { side: 'none' }));
    this.saslSession?.cancel();
    this.input.length = 0;
    this.transport.close();
    const onClose = this.options.onClose;
    const info = this.info;
    void (async () => {
      try {
        await onClose?.(info);
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
    // The framer's cap is the longest line any state accepts (AUTH lines,
    // RFC 4954 §4); shorter per-command caps are checked after framing.
    return new LineFramer({ maxLineLength: Math.max(this.limits.maxCommandLineLength, this.limits.maxAuthLineLength) });
  }
}

interface ReplyInit {
  readonly code: number;
  readonly enhanced?: string | undefined;
  readonly text: string;
  readonly noEnhanced?: boolean;
}

function replyOf(error: SmtpError): ReplyInit {
  return { code: error.reply?.smtp?.code ?? 451, enhanced: error.reply?.smtp?.enhanced, text: error.reply?.text ?? error.message };
}

function serverErr(code: SmtpError['code'], reply: number, enhanced: string, text: string): SmtpError {
  return new SmtpError(code, text, { side: 'remote', reply: { smtp: { code: reply, enhanced }, text } });
}

function codeOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Turn every bare CR and bare LF into CRLF (state carried across chunks). */
function normalizeLineEndings(t: Transfer, chunk: Uint8Array): Uint8Array {
  // Fast path: CRLF-only text is passed on without a copy.
  if (!t.skipLf && chunk[chunk.length - 1] !== 13 && !containsBare(chunk)) return chunk;
  const out = Buffer.allocUnsafe(chunk.length * 2);
  let n = 0;
  for (const b of chunk) {
    if (t.skipLf) {
      t.skipLf = false;
      if (b === 10) continue; // the LF of a CRLF whose CR was already written as CRLF
    }
    if (b === 13) {
      out[n++] = 13;
      out[n++] = 10;
      t.skipLf = true;
    } else if (b === 10) {
      out[n++] = 13;
      out[n++] = 10;
    } else {
      out[n++] = b;
    }
  }
  return out.subarray(0, n);
}

/** A bare CR or LF inside one chunk (a CR at its very end is left to the caller). */
function containsBare(chunk: Uint8Array): boolean {
  for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) if (i === 0 || chunk[i - 1] !== 13) return true;
  for (let i = chunk.indexOf(13); i !== -1; i = chunk.indexOf(13, i + 1)) if (i + 1 < chunk.length && chunk[i + 1] !== 10) return true;
  return false;
}
