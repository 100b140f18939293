/**
 * The SMTP/LMTP client: greeting, EHLO (HELO fallback), STARTTLS, AUTH, and
 * mail transactions with PIPELINING, CHUNKING, SMTPUTF8, 8BITMIME, DSN and
 * SIZE, over any `ClientTransport`. No sockets and no clock of its own: the
 * Node adapter (`SmtpClient.connect`) gives it a socket transport and
 * `systemClock`; tests give it a scripted transport and a `VirtualClock`.
 */
import { createSaslClient, PigeonpostError, silentLogger } from '@pigeonpost/wire';
import type { ChannelBinding, Clock, Logger, SaslClientCredentials, SaslMechanismName, Secret } from '@pigeonpost/wire';
import { SmtpClientError } from '../errors.js';
import type { SmtpErrorCode } from '../errors.js';
import type { SmtpClientLimits } from '../limits.js';
import { resolveSmtpClientLimits } from '../limits.js';
import type { EsmtpParams } from '../codec/command-encoder.js';
import { encodeCommand, encodeOrcpt, isAscii } from '../codec/command-encoder.js';
import { encodeXtext } from '../codec/xtext.js';
import type { SmtpCapabilities } from '../codec/reply-parser.js';
import type { SmtpReply } from '../codec/reply.js';
import type { ClientCommand } from '../codec/command-encoder.js';
import { SmtpClientSession } from './session.js';
import type { ClientReplyTo } from './session.js';
import type { MessageBody } from './body.js';
import { bodyChunks, bodyHas8Bit, CrlfNormalizer, knownBodySize } from './body.js';

/** What the client needs from a connection: bytes both ways, TLS upgrade, close. */
export interface ClientTransport {
  /** The next bytes from the server; `null` at end of stream. Only one read is pending at a time. */
  read(): Promise<Uint8Array | null>;
  /** Send bytes; resolves when more may be written (back-pressure). */
  write(chunk: Uint8Array): Promise<void>;
  /** True when the connection already uses TLS. */
  readonly secure: boolean;
  /**
   * Upgrade to TLS after the server's 220 to STARTTLS. `discardedBytes` is
   * what the client's parser dropped; the transport drops what it still
   * holds too, and never delivers plaintext read before the handshake.
   */
  startTls?(discardedBytes: number): Promise<{ readonly discardedBytes: number; readonly channelBinding?: ChannelBinding }>;
  /** TLS channel-binding data for SCRAM -PLUS, when the connection is TLS. */
  channelBinding?(): ChannelBinding | undefined;
  /** Close gracefully (FIN after pending writes). */
  end(): Promise<void>;
  /** Close now. */
  destroy(error?: Error): void;
}

/** How to use TLS: `implicit` (port 465), `starttls` (required), `opportunistic` (if offered), `none`. */
export type SmtpSecureMode = 'implicit' | 'starttls' | 'opportunistic' | 'none';

export interface SmtpClientAuthOptions {
  readonly username?: string;
  readonly password?: Secret<string>;
  /** OAuth 2.0 access token, for XOAUTH2 / OAUTHBEARER. */
  readonly token?: Secret<string>;
  readonly authzid?: string;
  /** Use this mechanism, and fail if the server does not offer it. Default: the strongest both sides have. */
  readonly mechanism?: SaslMechanismName;
  /** Allow PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER without TLS (e.g. on loopback in tests). Default false. */
  readonly allowPlaintextAuth?: boolean;
}

export interface SmtpClientConnectionOptions {
  /** The client's name in EHLO/HELO/LHLO: a host name or an address literal. Default `'localhost'`. */
  readonly name?: string;
  /** LMTP (RFC 2033) instead of SMTP. */
  readonly lmtp?: boolean;
  /** Default `'none'` here; the transport says whether it is already TLS. */
  readonly secure?: SmtpSecureMode;
  readonly auth?: SmtpClientAuthOptions;
  /** Use BDAT when the server offers CHUNKING (RFC 3030). Default true. */
  readonly chunking?: boolean;
  /** Group commands when the server offers PIPELINING (RFC 2920). Default true. */
  readonly pipelining?: boolean;
  /**
   * Messages in flight on this connection when several `send()` calls are
   * pending and the server offers PIPELINING (RFC 2920). Default 1: one
   * message at a time, each `send()` waits for the previous final reply.
   *
   * Above 1, with DATA, the next message's MAIL, RCPT and DATA go out in the
   * same write as the previous message's end of data, before its final reply
   * (RFC 2920 §3.1: DATA may end a group, and the message content may start
   * one): one round trip per message instead of two. With CHUNKING and an
   * in-memory body (bytes or a string), whole messages — RSET, MAIL, RCPT,
   * `BDAT n LAST` and the data (RFC 3030 §4.2) — are written without waiting
   * for any reply, up to `pipelineDepth` messages ahead of the replies read.
   * Results, errors and their order are the same as one at a time.
   */
  readonly pipelineDepth?: number;
  /** Accept bare LF as a reply line ending (sloppy servers). Default false. */
  readonly allowBareLf?: boolean;
  readonly limits?: Partial<SmtpClientLimits>;
  readonly clock: Clock;
  readonly signal?: AbortSignal;
  readonly logger?: Logger;
  /** Host and port the client connected to (OAUTHBEARER sends them; logs). */
  readonly host?: string;
  readonly port?: number;
}

/** RFC 3461 DSN options of a message. Sent only when the server offers DSN. */
export interface DsnOptions {
  /** RET: return the full message or only its headers in a failure DSN. */
  readonly ret?: 'FULL' | 'HDRS';
  /** ENVID: an envelope identifier of up to 100 characters (sent as xtext). */
  readonly envid?: string;
  /** NOTIFY for every recipient that does not set its own. */
  readonly notify?: 'NEVER' | readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[];
  /** Send ORCPT (the original recipient) for every recipient. Default true when DSN is used. */
  readonly orcpt?: boolean;
}

export interface RecipientOptions {
  readonly address: string;
  readonly notify?: 'NEVER' | readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[];
  /** ORCPT address; default the address itself. */
  readonly orcpt?: string;
}

export interface SendEnvelope {
  /** Reverse path; `''` for the null sender `<>` of bounces. */
  readonly from: string;
  readonly to: readonly (string | RecipientOptions)[];
  readonly dsn?: DsnOptions;
  /** The message size for SIZE (RFC 1870). Default: the length of an in-memory body. */
  readonly size?: number;
  /** BODY type (RFC 6152). Default: 8BITMIME when an in-memory body has 8-bit bytes, or a stream goes to a server with 8BITMIME. */
  readonly bodyType?: '7BIT' | '8BITMIME';
  /** Ask for SMTPUTF8 (RFC 6531) even with ASCII addresses, e.g. for UTF-8 headers. Default: when an address is non-ASCII. */
  readonly smtputf8?: boolean;
}

export interface RecipientResult {
  readonly address: string;
  /** True when the server took the message for this recipient. */
  readonly accepted: boolean;
  /** The reply to RCPT. */
  readonly rcptReply: SmtpReply;
  /** LMTP: this recipient's reply after the data (RFC 2033 §4.2). */
  readonly dataReply?: SmtpReply;
}

export interface SendResult {
  /** Recipients the message was accepted for. */
  readonly accepted: readonly string[];
  /** Recipients refused at RCPT (or, in LMTP, after the data). */
  readonly rejected: readonly string[];
  readonly recipients: readonly RecipientResult[];
  /** The final reply (the last one in LMTP). */
  readonly reply: SmtpReply;
  readonly transfer: 'DATA' | 'BDAT';
  readonly pipelined: boolean;
  /** DSN parameters were sent (the server offers DSN and the envelope asked). */
  readonly dsn: boolean;
  readonly smtputf8: boolean;
}

/** Most bytes held back to leave in one write with the next messages (pipelineDepth > 1): larger bodies are written at once. */
const HELD_BODY_BYTES = 64 * 1024;

/** Mechanisms in the order of preference when the caller names none (strongest first). */
const PASSWORD_MECHANISMS: readonly SaslMechanismName[] = [
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-256',
  'SCRAM-SHA-1-PLUS',
  'SCRAM-SHA-1',
  'CRAM-MD5',
  'PLAIN',
  'LOGIN',
];
const TOKEN_MECHANISMS: readonly SaslMechanismName[] = ['OAUTHBEARER', 'XOAUTH2'];
/** Mechanisms that put the password or token on the wire as it is. */
const CLEARTEXT_MECHANISMS: ReadonlySet<string> = new Set(['PLAIN', 'LOGIN', 'XOAUTH2', 'OAUTHBEARER']);

/** Errors after which the session is still in step with the server. */
function keepsConnection(err: unknown): boolean {
  if (!SmtpClientError.isInstance(err)) return false;
  switch (err.code) {
    case 'ERR_SMTP_CLIENT_UTF8_UNSUPPORTED':
    case 'ERR_SMTP_CLIENT_INVALID_ARGUMENT':
    case 'ERR_SMTP_CLIENT_SIZE_EXCEEDED':
    case 'ERR_SMTP_CLIENT_AUTH_INSECURE':
    case 'ERR_SMTP_CLIENT_AUTH_UNAVAILABLE':
    case 'ERR_SMTP_CLIENT_STARTTLS_UNAVAILABLE':
      return true;
    case 'ERR_SMTP_CLIENT_MALFORMED_REPLY':
    case 'ERR_SMTP_CLIENT_CONNECTION':
    case 'ERR_SMTP_CLIENT_TIMEOUT':
    case 'ERR_SMTP_CLIENT_ABORTED':
      return false;
    default:
      return err.side === 'remote' && err.serverReply !== undefined;
  }
}

function isOk(reply: SmtpReply): boolean {
  return reply.code >= 200 && reply.code < 300;
}

function replyError(code: SmtpErrorCode, what: string, reply: SmtpReply, recipients?: readonly RecipientResult[]): SmtpClientError {
  const text = reply.lines.join(' ');
  return new SmtpClientError(code, `${what}: ${reply.code}${reply.enhanced === undefined ? '' : ` ${reply.enhanced}`} ${text}`.trim(), {
    side: 'remote',
    serverReply: reply,
    ...(recipients === undefined ? {} : { recipients }),
  });
}

export class SmtpClientConnection implements AsyncDisposable {
  readonly #transport: ClientTransport;
  readonly #session: SmtpClientSession;
  readonly #limits: SmtpClientLimits;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #options: SmtpClientConnectionOptions;
  readonly #name: string;
  /** Operations run one at a time: each waits for the previous one. */
  #queue: Promise<unknown> = Promise.resolve();
  /** Set once the connection cannot be used any more. */
  #failure: Error | undefined;
  #closed = false;
  #transactions = 0;
  #authenticated: SaslMechanismName | undefined;
  #discardedAfterStartTls = 0;
  readonly #pipelineDepth: number;
  /**
   * Bytes held back to leave with the next write: the end of a pipelined
   * message body, so that the next message's commands join it (RFC 2920 §3.1).
   */
  #outbox: Uint8Array[] = [];
  #outboxBytes = 0;
  /** Reply reads in the order their commands were sent: each waits for the one before. */
  #reads: Promise<unknown> = Promise.resolve();
  /** Operations queued on `#exclusive` and not finished. */
  #queued = 0;
  /** Pipelined messages whose replies are not all read yet. */
  #inFlight = 0;
  #slotWaiters: (() => void)[] = [];
  /** A transaction ended without a reply to its data (refused envelope): RSET before the next MAIL. */
  #needsReset = false;

  protected constructor(transport: ClientTransport, options: SmtpClientConnectionOptions) {
    this.#transport = transport;
    this.#options = options;
    this.#limits = resolveSmtpClientLimits(options.limits);
    this.#clock = options.clock;
    this.#logger = options.logger ?? silentLogger;
    this.#name = options.name ?? 'localhost';
    const depth = options.pipelineDepth ?? 1;
    if (!Number.isInteger(depth) || depth < 1) throw new RangeError(`pipelineDepth must be an integer >= 1, got ${String(depth)}`);
    this.#pipelineDepth = depth;
    this.#session = new SmtpClientSession({
      lmtp: options.lmtp === true,
      maxReplyLineLength: this.#limits.maxReplyLineLength,
      maxReplyLines: this.#limits.maxReplyLines,
      allowBareLf: options.allowBareLf === true,
    });
    if (transport.secure) this.#session.markSecure();
    // Aborting also ends an idle connection, not only a wait in progress.
    options.signal?.addEventListener(
      'abort',
      () => this.#fail(new SmtpClientError('ERR_SMTP_CLIENT_ABORTED', 'aborted', { side: 'none', cause: options.signal?.reason })),
      { once: true },
    );
  }

  /**
   * Run the opening of a session on a connected transport: greeting, EHLO
   * (HELO fallback; LHLO for LMTP), STARTTLS as `secure` says, AUTH when
   * `auth` is given. Rejects (and destroys the transport) on failure.
   */
  static async open(transport: ClientTransport, options: SmtpClientConnectionOptions): Promise<SmtpClientConnection> {
    const connection = new SmtpClientConnection(transport, options);
    await connection.start();
    return connection;
  }

  /** Subclasses (the Node adapter) construct, then call this. */
  protected async start(): Promise<void> {
    try {
      await this.#exclusive(() => this.#opening());
    } catch (err) {
      // The session is still in step (a refusal, not a broken connection): say goodbye properly.
      if (this.#failure === undefined) await this.#tryQuit();
      this.#transport.destroy();
      this.#closed = true;
      throw err;
    }
  }

  /** The server's extensions (after TLS, the ones announced over TLS). */
  get capabilities(): SmtpCapabilities | undefined {
    return this.#session.capabilities;
  }
  /** True when the connection uses TLS (implicit or after STARTTLS). */
  get secure(): boolean {
    return this.#session.secure;
  }
  /** The SASL mechanism used to log in, if any. */
  get authenticated(): SaslMechanismName | undefined {
    return this.#authenticated;
  }
  /** Plaintext bytes the server sent after its 220 to STARTTLS, dropped unread (normally 0). */
  get discardedAfterStartTls(): number {
    return this.#discardedAfterStartTls;
  }
  /** True once `quit()`/`close()` ran or the connection failed. */
  get closed(): boolean {
    return this.#closed || this.#failure !== undefined;
  }

  // --- the opening ---

  async #opening(): Promise<void> {
    const greeting = await this.#reply('greeting', this.#limits.greetingTimeoutMs);
    if (greeting.code !== 220) {
      // RFC 5321 §3.1: a 554 greeting means "no SMTP service here"; QUIT and go.
      await this.#tryQuit();
      throw replyError('ERR_SMTP_CLIENT_GREETING', 'server refused the session', greeting);
    }
    await this.#hello();
    const mode = this.#options.secure ?? 'none';
    if (!this.#session.secure && (mode === 'starttls' || mode === 'opportunistic')) await this.#startTls(mode);
    if (this.#options.auth !== undefined) await this.#authenticate(this.#options.auth);
  }

  async #hello(): Promise<void> {
    const lmtp = this.#session.lmtp;
    await this.#write(this.#session.send({ name: lmtp ? 'LHLO' : 'EHLO', domain: this.#name }));
    const reply = await this.#reply(lmtp ? 'LHLO' : 'EHLO', this.#limits.commandTimeoutMs);
    if (isOk(reply)) return;
    // RFC 5321 §3.2: a server that does not know EHLO answers 500/502/504/550; fall back to HELO. LMTP has no fallback.
    if (lmtp || reply.code < 500) throw replyError('ERR_SMTP_CLIENT_HELO', `${lmtp ? 'LHLO' : 'EHLO'} refused`, reply);
    await this.#write(this.#session.send({ name: 'HELO', domain: this.#name }));
    const helo = await this.#reply('HELO', this.#limits.commandTimeoutMs);
    if (!isOk(helo)) throw replyError('ERR_SMTP_CLIENT_HELO', 'EHLO and HELO refused', helo);
  }

  async #startTls(mode: 'starttls' | 'opportunistic'): Promise<void> {
    const offered = this.#session.capabilities?.startTls === true && this.#transport.startTls !== undefined;
    if (!offered) {
      if (mode === 'starttls') {
        throw new SmtpClientError('ERR_SMTP_CLIENT_STARTTLS_UNAVAILABLE', 'the server does not offer STARTTLS, and secure is "starttls"', { side: 'remote' });
      }
      this.#logger.info({ host: this.#options.host }, 'STARTTLS not offered: continuing without TLS (opportunistic)');
      return;
    }
    await this.#write(this.#session.send({ name: 'STARTTLS' }));
    const reply = await this.#reply('STARTTLS', this.#limits.commandTimeoutMs);
    if (reply.code !== 220) {
      if (mode === 'starttls') throw replyError('ERR_SMTP_CLIENT_STARTTLS_UNAVAILABLE', 'STARTTLS refused', reply);
      this.#logger.info({ host: this.#options.host, code: reply.code }, 'STARTTLS refused: continuing without TLS (opportunistic)');
      return;
    }
    // RFC 3207 §4.2: every byte after the 220 came in plaintext; drop it unread.
    const dropped = this.#session.startTls();
    if (this.#transport.startTls === undefined) throw new SmtpClientError('ERR_SMTP_CLIENT_STATE', 'transport cannot start TLS', { side: 'local' });
    const result = await this.#guard(this.#transport.startTls(dropped), this.#limits.commandTimeoutMs, 'TLS handshake');
    this.#discardedAfterStartTls = result.discardedBytes;
    if (result.discardedBytes > 0) {
      this.#logger.warn({ host: this.#options.host, discardedBytes: result.discardedBytes }, 'server sent plaintext after its 220 to STARTTLS: dropped');
    }
    await this.#hello();
  }

  async #authenticate(auth: SmtpClientAuthOptions): Promise<void> {
    const offered = this.#session.capabilities?.authMechanisms ?? [];
    const channelBinding = this.#transport.channelBinding?.();
    const wanted =
      auth.mechanism !== undefined
        ? [auth.mechanism]
        : [...(auth.token !== undefined ? TOKEN_MECHANISMS : []), ...(auth.password !== undefined ? PASSWORD_MECHANISMS : [])].filter(
            (m) => !m.endsWith('-PLUS') || channelBinding !== undefined,
          );
    const mechanism = wanted.find((m) => offered.includes(m));
    if (mechanism === undefined) {
      throw new SmtpClientError(
        'ERR_SMTP_CLIENT_AUTH_UNAVAILABLE',
        `no usable SASL mechanism: the server offers [${offered.join(' ')}], the client can use [${wanted.join(' ')}]`,
        { side: 'none' },
      );
    }
    if (CLEARTEXT_MECHANISMS.has(mechanism) && !this.#session.secure && auth.allowPlaintextAuth !== true) {
      throw new SmtpClientError(
        'ERR_SMTP_CLIENT_AUTH_INSECURE',
        `${mechanism} would send the credentials without TLS; use secure: 'starttls' or 'implicit', or set auth.allowPlaintextAuth`,
        { side: 'local' },
      );
    }
    const credentials: SaslClientCredentials = {
      ...(auth.username === undefined ? {} : { username: auth.username }),
      ...(auth.password === undefined ? {} : { password: auth.password }),
      ...(auth.token === undefined ? {} : { token: auth.token }),
      ...(auth.authzid === undefined ? {} : { authzid: auth.authzid }),
      ...(this.#options.host === undefined ? {} : { host: this.#options.host }),
      ...(this.#options.port === undefined ? {} : { port: this.#options.port }),
      ...(channelBinding === undefined ? {} : { channelBinding }),
    };
    let sasl;
    try {
      sasl = createSaslClient(mechanism, credentials);
    } catch (err) {
      throw new SmtpClientError('ERR_SMTP_CLIENT_INVALID_ARGUMENT', `cannot use ${mechanism}: ${(err as Error).message}`, { side: 'local', cause: err });
    }
    const ir = sasl.initialResponseEncoded();
    // RFC 4954 §4: a command line with an initial response that would pass 512 octets goes without it.
    const withIr = ir !== undefined && `AUTH ${mechanism} ${ir}\r\n`.length <= 512;
    await this.#write(this.#session.send(withIr ? { name: 'AUTH', mechanism, initialResponse: ir } : { name: 'AUTH', mechanism }));
    let reply = await this.#reply('AUTH', this.#limits.commandTimeoutMs);
    while (reply.code === 334) {
      let answer: string;
      try {
        answer = await sasl.respondEncoded((reply.lines[0] ?? '').trim());
      } catch (err) {
        // RFC 4954 §4: "*" cancels the exchange; the server answers 501.
        await this.#write(this.#session.saslResponse('*'));
        await this.#reply('sasl', this.#limits.commandTimeoutMs);
        throw new SmtpClientError('ERR_SMTP_CLIENT_AUTH_FAILED', `${mechanism} exchange failed: ${(err as Error).message}`, { side: 'remote', cause: err });
      }
      await this.#write(this.#session.saslResponse(answer));
      reply = await this.#reply('sasl', this.#limits.commandTimeoutMs);
    }
    // RFC 4954 §4 says 235; any 2xx is taken as success (Postfix's smtp-sink answers 250).
    if (!isOk(reply)) throw replyError('ERR_SMTP_CLIENT_AUTH_FAILED', `${mechanism} authentication failed`, reply);
    try {
      await sasl.complete();
    } catch (err) {
      // SCRAM: the server did not prove it knows the password. Do not use this connection.
      const error = new SmtpClientError('ERR_SMTP_CLIENT_AUTH_FAILED', `${mechanism}: the server could not be authenticated`, {
        side: 'remote',
        cause: err,
      });
      this.#fail(error);
      throw error;
    }
    this.#authenticated = mechanism;
  }

  // --- mail transactions ---

  /**
   * Send one message. The envelope's commands are pipelined when the server
   * offers PIPELINING; the body streams through DATA (dot-stuffed, bare CR/LF
   * made CRLF) or BDAT. Resolves with per-recipient results when at least
   * one recipient got the message; rejects with an `SmtpClientError`
   * otherwise. Calls queue up: with `pipelineDepth` 1 (the default) the
   * connection carries one message at a time; above 1, pending calls are
   * pipelined across messages (see `pipelineDepth`).
   */
  send(envelope: SendEnvelope, body: MessageBody): Promise<SendResult> {
    return this.#exclusive(() => this.#send(envelope, body), false).then((finish) => finish());
  }

  /** NOOP (RFC 5321 §4.1.1.9): keeps the session alive, checks it still works. */
  noop(): Promise<SmtpReply> {
    return this.#exclusive(async () => {
      await this.#write(this.#session.send({ name: 'NOOP' }));
      const reply = await this.#reply('NOOP', this.#limits.commandTimeoutMs);
      if (!isOk(reply)) throw replyError('ERR_SMTP_CLIENT_REPLY', 'NOOP refused', reply);
      return reply;
    });
  }

  /** QUIT (RFC 5321 §4.1.1.10), then close. Never rejects for a server that is already gone. */
  quit(): Promise<void> {
    return this.#exclusive(async () => {
      if (this.#closed) return;
      await this.#tryQuit();
      this.#closed = true;
      await this.#transport.end().catch(() => undefined);
      this.#transport.destroy();
    }).catch(() => undefined);
  }

  /** Close at once, without QUIT. */
  close(): void {
    this.#closed = true;
    this.#transport.destroy();
  }

  /** `await using client = …`: QUIT, then close. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.quit();
    this.close();
  }

  async #send(envelope: SendEnvelope, body: MessageBody): Promise<() => Promise<SendResult>> {
    const caps = this.#session.capabilities;
    if (caps === undefined) throw new SmtpClientError('ERR_SMTP_CLIENT_STATE', 'send before the session was opened', { side: 'local' });
    const recipients = envelope.to.map((r) => (typeof r === 'string' ? { address: r } : r));
    if (recipients.length === 0) throw new SmtpClientError('ERR_SMTP_CLIENT_INVALID_ARGUMENT', 'no recipients', { side: 'local' });

    // RFC 6531 §3.4: non-ASCII addresses need SMTPUTF8, and a server that lacks it cannot take them.
    const needsUtf8 = envelope.smtputf8 === true || !isAscii(envelope.from) || recipients.some((r) => !isAscii(r.address));
    if (needsUtf8 && !caps.smtpUtf8) {
      throw new SmtpClientError('ERR_SMTP_CLIENT_UTF8_UNSUPPORTED', 'the message needs SMTPUTF8 and the server does not offer it (RFC 6531 §3.4)', { side: 'remote' });
    }
    const size = envelope.size ?? knownBodySize(body);
    // RFC 1870 §6: do not send a message the server already said it will refuse.
    if (caps.size !== undefined && caps.size > 0 && size !== undefined && size > caps.size) {
      throw new SmtpClientError('ERR_SMTP_CLIENT_SIZE_EXCEEDED', `message of ${size} bytes exceeds the server's SIZE ${caps.size}`, { side: 'local' });
    }
    const eightBit = envelope.bodyType === undefined ? (bodyHas8Bit(body) ?? caps.eightBitMime) : envelope.bodyType === '8BITMIME';
    const useDsn = envelope.dsn !== undefined && caps.dsn;
    const mailParams: Record<string, string | true | undefined> = {};
    if (size !== undefined && caps.size !== undefined) mailParams['SIZE'] = String(size);
    // RFC 6152: BODY=8BITMIME only to a server that offers it.
    if (eightBit && caps.eightBitMime) mailParams['BODY'] = '8BITMIME';
    if (needsUtf8) mailParams['SMTPUTF8'] = true;
    if (useDsn && envelope.dsn !== undefined) {
      if (envelope.dsn.ret !== undefined) mailParams['RET'] = envelope.dsn.ret;
      if (envelope.dsn.envid !== undefined) {
        if (envelope.dsn.envid.length > 100) throw new SmtpClientError('ERR_SMTP_CLIENT_INVALID_ARGUMENT', 'ENVID longer than 100 characters (RFC 3461 §4.4)', { side: 'local' });
        mailParams['ENVID'] = encodeXtext(envelope.dsn.envid);
      }
    }
    const encodeOptions = { smtputf8: needsUtf8 };
    const rcptParams = (r: RecipientOptions): EsmtpParams | undefined => {
      if (!useDsn || envelope.dsn === undefined) return undefined;
      const notify = r.notify ?? envelope.dsn.notify;
      const params: Record<string, string | undefined> = {};
      if (notify !== undefined) params['NOTIFY'] = typeof notify === 'string' ? notify : notify.join(',');
      if (r.orcpt !== undefined || envelope.dsn.orcpt !== false) params['ORCPT'] = encodeOrcpt(r.orcpt ?? r.address);
      return params;
    };

    // Build every envelope command first: an invalid address fails before anything is sent.
    const pipelining = this.#options.pipelining !== false && (caps.pipelining || this.#session.lmtp);
    const useBdat = this.#options.chunking !== false && caps.chunking;
    // Across messages (pipelineDepth > 1): whole BDAT messages with in-memory bodies, or DATA envelopes behind the previous body.
    const inMemory = typeof body === 'string' || body instanceof Uint8Array;
    const across = this.#pipelineDepth > 1 && pipelining && (!useBdat || (inMemory && !this.#session.lmtp));
    const commands: ClientCommand[] = [];
    if (across) {
      // RFC 5321 §4.1.1.4: the reply to the data ends the transaction, whatever it says; only a refused
      // envelope leaves one open. Blind BDAT messages may follow a refused one (RFC 3030 §2 leaves the state
      // after a refused BDAT LAST open), so each one after the first starts with RSET.
      if (useBdat ? this.#transactions > 0 : this.#needsReset) commands.push({ name: 'RSET' });
    } else if (this.#transactions > 0) {
      // RSET between messages: resets whatever a previous failed transaction left, and checks the connection is alive.
      commands.push({ name: 'RSET' });
    }
    commands.push({ name: 'MAIL', from: envelope.from, params: mailParams });
    for (const r of recipients) {
      const params = rcptParams(r);
      commands.push(params === undefined ? { name: 'RCPT', to: r.address } : { name: 'RCPT', to: r.address, params });
    }
    // RFC 2920 §3.1: DATA may end a pipelined group. BDAT waits for the RCPT replies.
    if (!useBdat) commands.push({ name: 'DATA' });
    for (const c of commands) encodeCommand(c, encodeOptions); // validate all before the session commits to any
    if (!across && this.#unsettled()) await this.#settle();
    this.#transactions++;
    this.#needsReset = false;

    const timeoutFor = (to: ClientReplyTo): number =>
      to === 'MAIL' ? this.#limits.mailTimeoutMs : to === 'RCPT' ? this.#limits.rcptTimeoutMs : to === 'DATA' ? this.#limits.dataInitiationTimeoutMs : this.#limits.commandTimeoutMs;

    const results: { address: string; reply: SmtpReply }[] = [];
    let rcptIndex = 0;
    let dataReply: SmtpReply | undefined;
    let failure: SmtpClientError | undefined;
    const onReply = (command: ClientCommand, reply: SmtpReply): void => {
      if (command.name === 'RSET' && !isOk(reply)) failure ??= replyError('ERR_SMTP_CLIENT_REPLY', 'RSET refused', reply);
      if (command.name === 'MAIL') {
        if (!isOk(reply)) failure ??= replyError('ERR_SMTP_CLIENT_MAIL_REJECTED', 'MAIL FROM refused', reply);
      }
      if (command.name === 'RCPT') results.push({ address: recipients[rcptIndex++]?.address ?? '', reply });
      if (command.name === 'DATA') dataReply = reply;
    };

    if (across && useBdat) {
      return this.#sendBdatAcross(commands, encodeOptions, body as string | Uint8Array, onReply, results, () => failure, useDsn, needsUtf8);
    }
    if (across) {
      // RFC 2920 §3.1: this envelope joins the previous message's end of data (held in the outbox) in one write.
      await this.#slot();
      try {
        await this.#write(Buffer.concat(commands.map((c) => this.#session.send(c, encodeOptions))));
        await this.#ordered(async () => {
          for (const command of commands) onReply(command, await this.#reply(command.name, timeoutFor(command.name)));
        });
      } catch (err) {
        this.#release();
        throw err;
      }
    } else if (pipelining) {
      await this.#write(Buffer.concat(commands.map((c) => this.#session.send(c, encodeOptions))));
      for (const command of commands) onReply(command, await this.#reply(command.name, timeoutFor(command.name)));
    } else {
      // Without PIPELINING: one command, one reply, and stop at the first that makes the rest pointless.
      for (const command of commands) {
        if (command.name === 'DATA' && !results.some((r) => isOk(r.reply))) break;
        await this.#write(this.#session.send(command, encodeOptions));
        onReply(command, await this.#reply(command.name, timeoutFor(command.name)));
        if (failure !== undefined) break;
      }
    }
    const recipientResults = (): RecipientResult[] => results.map((r) => ({ address: r.address, accepted: isOk(r.reply), rcptReply: r.reply }));
    const acceptedCount = results.filter((r) => isOk(r.reply)).length;

    if (failure !== undefined || acceptedCount === 0) {
      if (across) this.#release();
      // RFC 2920 §3.1: if DATA got 354 anyway, the only safe thing to send is an empty message's "." — never the body.
      if (dataReply?.code === 354) {
        await this.#write(this.#session.bodyEnd());
        await this.#reply('data-end', this.#limits.dataTerminationTimeoutMs);
      } else {
        this.#session.bdatDone();
        this.#needsReset = true;
      }
      throw failure ?? new SmtpClientError('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED', 'every recipient was refused', {
        side: 'remote',
        recipients: recipientResults(),
        ...(results[0] === undefined ? {} : { serverReply: results[0].reply }),
      });
    }

    let finals: SmtpReply[];
    if (useBdat) {
      finals = await this.#sendBdat(body, acceptedCount, recipientResults);
    } else {
      if (dataReply === undefined || dataReply.code !== 354) {
        if (across) this.#release();
        this.#session.bdatDone();
        this.#needsReset = true;
        throw replyError('ERR_SMTP_CLIENT_DATA_REJECTED', 'DATA refused', dataReply ?? { code: 554, enhanced: undefined, lines: ['no reply'] }, recipientResults());
      }
      if (across) {
        // The end of data waits in the outbox for the next message's envelope; its reply is read in order.
        // A small in-memory body waits there too: then each message costs the client one write.
        try {
          const size = knownBodySize(body);
          if (size !== undefined && size <= HELD_BODY_BYTES) {
            this.#outbox.push(this.#session.bodyChunk(typeof body === 'string' ? Buffer.from(body, 'utf8') : (body as Uint8Array)));
          } else {
            await this.#streamBody(body);
          }
        } catch (err) {
          this.#release();
          throw err;
        }
        this.#outbox.push(this.#session.bodyEnd());
        const count = this.#session.lmtp ? acceptedCount : 1;
        const finalsRead = this.#ordered(async () => {
          try {
            const out: SmtpReply[] = [];
            for (let i = 0; i < count; i++) out.push(await this.#reply('data-end', this.#limits.dataTerminationTimeoutMs));
            return out;
          } finally {
            this.#release();
          }
        });
        // Observed by the caller only once the send's head has returned: never an unhandled rejection meanwhile.
        finalsRead.catch(() => undefined);
        return () => finalsRead.then((f) => this.#result(results, f, false, true, useDsn, needsUtf8));
      }
      finals = await this.#sendData(body, acceptedCount);
    }
    const result = this.#result(results, finals, useBdat, pipelining, useDsn, needsUtf8);
    return () => Promise.resolve(result);
  }

  /**
   * A whole message with an in-memory body as one write — [RSET] MAIL RCPT…
   * BDAT n [LAST] data… (RFC 3030 §4.2: BDAT may be pipelined, and the server
   * reads and drops the data of a refused BDAT) — with its replies read later,
   * in order, while the next messages are written.
   */
  async #sendBdatAcross(
    commands: readonly ClientCommand[],
    encodeOptions: { smtputf8: boolean },
    body: string | Uint8Array,
    onReply: (command: ClientCommand, reply: SmtpReply) => void,
    results: readonly { address: string; reply: SmtpReply }[],
    failure: () => SmtpClientError | undefined,
    useDsn: boolean,
    needsUtf8: boolean,
  ): Promise<() => Promise<SendResult>> {
    const normalizer = new CrlfNormalizer();
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    const head = normalizer.push(bytes);
    const tail = normalizer.end();
    const data = tail.length === 0 ? head : Buffer.concat([head, tail]);
    const max = Math.max(1, this.#limits.maxBdatChunkBytes);
    await this.#slot();
    let chunks = 0;
    try {
      // Every command is encoded (and its reply owed) before the first await: replies to earlier
      // messages, read meanwhile, then cannot meet this one half-sent.
      const envelope: Uint8Array[] = commands.map((c) => this.#session.send(c, encodeOptions));
      const parts: Uint8Array[] = [];
      for (let at = 0; ; at += max) {
        const piece = data.subarray(at, Math.min(data.length, at + max));
        const last = at + max >= data.length;
        parts.push(this.#session.send({ name: 'BDAT', size: piece.length, last }, encodeOptions), piece);
        chunks++;
        if (last) break;
      }
      this.#session.bdatDone();
      if (data.length >= HELD_BODY_BYTES) {
        // A large body is written as it is, never copied into a batch.
        await this.#write(Buffer.concat([...envelope, parts[0] ?? new Uint8Array(0)]), this.#limits.dataBlockTimeoutMs);
        for (let i = 1; i < parts.length; i++) await this.#write(parts[i] ?? new Uint8Array(0), this.#limits.dataBlockTimeoutMs);
      } else {
        // Into the outbox: the messages queued behind this one join it, and leave in one write
        // (when the queue runs dry, before waiting for room, or past HELD_BODY_BYTES).
        this.#outbox.push(...envelope, ...parts);
        this.#outboxBytes += data.length;
        if (this.#outboxBytes >= HELD_BODY_BYTES) await this.#flushOutbox();
      }
    } catch (err) {
      this.#release();
      throw err;
    }
    const read = this.#ordered(async () => {
      try {
        const timeout = (name: ClientReplyTo): number => (name === 'MAIL' ? this.#limits.mailTimeoutMs : name === 'RCPT' ? this.#limits.rcptTimeoutMs : this.#limits.commandTimeoutMs);
        for (const command of commands) onReply(command, await this.#reply(command.name, timeout(command.name)));
        const replies: SmtpReply[] = [];
        for (let i = 0; i < chunks; i++) {
          replies.push(await this.#reply('BDAT', i === chunks - 1 ? this.#limits.dataTerminationTimeoutMs : this.#limits.dataBlockTimeoutMs));
        }
        return replies;
      } finally {
        this.#release();
      }
    });
    read.catch(() => undefined); // observed when the caller runs the returned function
    return async () => {
      const replies = await read;
      const recipientResults = (): RecipientResult[] => results.map((r) => ({ address: r.address, accepted: isOk(r.reply), rcptReply: r.reply }));
      const refused = failure();
      if (refused !== undefined) throw refused;
      if (!results.some((r) => isOk(r.reply))) {
        throw new SmtpClientError('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED', 'every recipient was refused', {
          side: 'remote',
          recipients: recipientResults(),
          ...(results[0] === undefined ? {} : { serverReply: results[0].reply }),
        });
      }
      // RFC 3030 §2: after a refused chunk the server drops the message; report the first refusal.
      const bad = replies.slice(0, -1).find((r) => !isOk(r));
      if (bad !== undefined) throw replyError('ERR_SMTP_CLIENT_DATA_REJECTED', 'BDAT refused', bad, recipientResults());
      return this.#result(results, replies.slice(-1), true, true, useDsn, needsUtf8);
    };
  }

  #result(
    results: readonly { address: string; reply: SmtpReply }[],
    finals: readonly SmtpReply[],
    bdat: boolean,
    pipelined: boolean,
    dsn: boolean,
    smtputf8: boolean,
  ): SendResult {
    const lmtp = this.#session.lmtp;
    const recipients: RecipientResult[] = [];
    let next = 0;
    for (const r of results) {
      if (!isOk(r.reply)) {
        recipients.push({ address: r.address, accepted: false, rcptReply: r.reply });
        continue;
      }
      if (lmtp) {
        const dataReply = finals[next++];
        recipients.push({ address: r.address, accepted: dataReply !== undefined && isOk(dataReply), rcptReply: r.reply, ...(dataReply === undefined ? {} : { dataReply }) });
      } else {
        recipients.push({ address: r.address, accepted: true, rcptReply: r.reply });
      }
    }
    const reply = finals[finals.length - 1] ?? { code: 250, enhanced: undefined, lines: [] };
    const failedAll = lmtp ? !recipients.some((r) => r.accepted) : !isOk(reply);
    if (failedAll) throw replyError('ERR_SMTP_CLIENT_DATA_REJECTED', 'message refused', reply, recipients);
    return {
      accepted: recipients.filter((r) => r.accepted).map((r) => r.address),
      rejected: recipients.filter((r) => !r.accepted).map((r) => r.address),
      recipients,
      reply,
      transfer: bdat ? 'BDAT' : 'DATA',
      pipelined,
      dsn,
      smtputf8,
    };
  }

  /** Stream the body after 354 (dot-stuffed), without the end of data. */
  async #streamBody(body: MessageBody): Promise<void> {
    try {
      for await (const chunk of bodyChunks(body)) {
        const out = this.#session.bodyChunk(chunk);
        if (out.length > 0) await this.#write(out, this.#limits.dataBlockTimeoutMs);
      }
    } catch (err) {
      // Mid-body the only way out that cannot deliver a truncated message is to drop the connection.
      throw this.#abandon(err);
    }
  }

  /** Stream the body after 354; then read the final reply (one per accepted recipient in LMTP). */
  async #sendData(body: MessageBody, accepted: number): Promise<SmtpReply[]> {
    await this.#streamBody(body);
    await this.#write(this.#session.bodyEnd(), this.#limits.dataBlockTimeoutMs);
    const finals: SmtpReply[] = [];
    const count = this.#session.lmtp ? accepted : 1;
    for (let i = 0; i < count; i++) finals.push(await this.#reply('data-end', this.#limits.dataTerminationTimeoutMs));
    return finals;
  }

  /** RFC 3030: the body in BDAT chunks of at most `maxBdatChunkBytes`, the last one marked LAST. */
  async #sendBdat(body: MessageBody, accepted: number, recipientResults: () => RecipientResult[]): Promise<SmtpReply[]> {
    const max = Math.max(1, this.#limits.maxBdatChunkBytes);
    const normalizer = new CrlfNormalizer();
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (last: boolean): Promise<SmtpReply[]> => {
      const data = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      const header = this.#session.send({ name: 'BDAT', size: data.length, last });
      await this.#write(data.length === 0 ? header : Buffer.concat([header, data]), this.#limits.dataBlockTimeoutMs);
      const count = last && this.#session.lmtp ? accepted : 1;
      const replies: SmtpReply[] = [];
      for (let i = 0; i < count; i++) replies.push(await this.#reply('BDAT', last ? this.#limits.dataTerminationTimeoutMs : this.#limits.dataBlockTimeoutMs));
      const first = replies[0];
      if (!last && first !== undefined && !isOk(first)) {
        // RFC 3030 §2: after a refused chunk the server discards the message; the next send starts with RSET.
        this.#session.bdatDone();
        throw replyError('ERR_SMTP_CLIENT_DATA_REJECTED', 'BDAT refused', first, recipientResults());
      }
      return replies;
    };
    try {
      for await (const chunk of bodyChunks(body)) {
        let out = normalizer.push(chunk);
        while (out.length > 0) {
          const room = max - pendingBytes;
          pending.push(out.subarray(0, room));
          pendingBytes += Math.min(room, out.length);
          out = out.subarray(room);
          if (pendingBytes >= max) await flush(false);
        }
      }
    } catch (err) {
      if (SmtpClientError.isInstance(err) && err.code === 'ERR_SMTP_CLIENT_DATA_REJECTED') throw err;
      throw this.#abandon(err);
    }
    const tail = normalizer.end();
    if (tail.length > 0) {
      pending.push(tail);
      pendingBytes += tail.length;
    }
    const finals = await flush(true);
    this.#session.bdatDone();
    return finals;
  }

  // --- plumbing ---

  /**
   * Run `fn` after every earlier operation; a failed connection refuses new
   * work. With `settle` (all but `send`, which decides for itself) it first
   * waits until every reply owed to pipelined messages has been read.
   */
  #exclusive<T>(fn: () => Promise<T>, settle = true): Promise<T> {
    this.#queued++;
    const run = async (): Promise<T> => {
      try {
        this.#checkUsable();
        if (settle && this.#unsettled()) await this.#settle();
        return await fn();
      } catch (err) {
        // Errors that leave the protocol out of step end the connection; a refused command or a refused argument does not.
        if (!keepsConnection(err)) this.#fail(err instanceof Error ? err : new Error(String(err)));
        throw err;
      } finally {
        // Nothing queued behind: bytes held back for the next write go now.
        if (--this.#queued === 0 && this.#outbox.length > 0) await this.#flushOutbox();
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #checkUsable(): void {
    if (SmtpClientError.isInstance(this.#failure) && this.#failure.code === 'ERR_SMTP_CLIENT_ABORTED') {
      throw new SmtpClientError('ERR_SMTP_CLIENT_ABORTED', 'the connection was aborted', { side: 'none', cause: this.#options.signal?.reason });
    }
    if (this.#failure !== undefined) {
      throw new SmtpClientError('ERR_SMTP_CLIENT_STATE', `the connection failed earlier: ${this.#failure.message}`, { side: 'local', cause: this.#failure });
    }
    if (this.#closed) throw new SmtpClientError('ERR_SMTP_CLIENT_STATE', 'the connection is closed', { side: 'local' });
  }

  /** Bytes held back, or pipelined replies still to read. */
  #unsettled(): boolean {
    return this.#outbox.length > 0 || this.#inFlight > 0;
  }

  /** Send what the outbox holds, then wait for every pipelined reply to be read. */
  async #settle(): Promise<void> {
    await this.#flushOutbox();
    await this.#reads;
    this.#checkUsable();
  }

  async #flushOutbox(): Promise<void> {
    if (this.#outbox.length === 0 || this.#failure !== undefined || this.#closed) return;
    try {
      await this.#write(new Uint8Array(0));
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  /** Run reply reads after every earlier one (pipelined replies come in the order of their commands). */
  #ordered<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#reads.then(fn);
    this.#reads = result.catch(() => undefined);
    return result.catch((err: unknown) => {
      if (!keepsConnection(err)) this.#fail(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
  }

  /** Wait for room for one more pipelined message (`pipelineDepth`). */
  async #slot(): Promise<void> {
    while (this.#inFlight >= this.#pipelineDepth) {
      // The replies that free a slot may need the bytes held back for the next write.
      await this.#flushOutbox();
      await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
      this.#checkUsable();
    }
    this.#inFlight++;
  }

  #release(): void {
    this.#inFlight--;
    this.#slotWaiters.shift()?.();
  }

  #fail(err: Error): void {
    this.#failure ??= err;
    this.#outbox = [];
    this.#outboxBytes = 0;
    this.#transport.destroy();
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }

  #abandon(err: unknown): Error {
    const error = err instanceof Error ? err : new Error(String(err));
    this.#fail(error);
    return error;
  }

  async #tryQuit(): Promise<void> {
    try {
      await this.#write(this.#session.send({ name: 'QUIT' }));
      await this.#reply('QUIT', Math.min(this.#limits.commandTimeoutMs || 10_000, 10_000));
    } catch {
      // The server may close without answering QUIT; nothing to do about it.
    }
  }

  /** Write `bytes`, behind whatever the outbox holds, in one write. */
  async #write(bytes: Uint8Array, timeoutMs = this.#limits.commandTimeoutMs): Promise<void> {
    let out = bytes;
    if (this.#outbox.length > 0) {
      out = Buffer.concat([...this.#outbox, bytes]);
      this.#outbox = [];
      this.#outboxBytes = 0;
    }
    if (out.length === 0) return;
    await this.#guard(this.#transport.write(out), timeoutMs, 'write');
  }

  /** The next reply, which must answer `to`. Protocol errors, timeouts and a closed connection reject. */
  async #reply(to: ClientReplyTo, timeoutMs: number): Promise<SmtpReply> {
    for (;;) {
      const ev = this.#session.nextEvent();
      if (ev !== undefined) {
        if (ev.type === 'error') throw ev.error;
        if (ev.to !== to) {
          throw new SmtpClientError('ERR_SMTP_CLIENT_STATE', `internal: expected the reply to ${to}, got one to ${ev.to}`, { side: 'local' });
        }
        // RFC 5321 §3.8: 421 means the server is closing the channel; whatever else was pipelined will not be answered.
        if (ev.reply.code === 421 && to !== 'greeting' && to !== 'QUIT') {
          const error = replyError('ERR_SMTP_CLIENT_CONNECTION', `the server is closing the connection (reply to ${to})`, ev.reply);
          this.#fail(error);
          throw error;
        }
        return ev.reply;
      }
      const chunk = await this.#guard(this.#transport.read(), timeoutMs, `reply to ${to}`);
      if (chunk === null) {
        throw new SmtpClientError('ERR_SMTP_CLIENT_CONNECTION', `the server closed the connection while the client waited for the reply to ${to}`, {
          side: 'remote',
        });
      }
      this.#session.receive(chunk);
    }
  }

  /** `promise`, bounded by `timeoutMs` on the clock (0: no limit) and by the caller's signal. */
  #guard<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    const signal = this.#options.signal;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const finish = (): void => {
        done = true;
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      const onAbort = (): void => {
        if (done) return;
        finish();
        const error = new SmtpClientError('ERR_SMTP_CLIENT_ABORTED', `aborted while waiting for ${what}`, { side: 'none', cause: signal?.reason });
        this.#fail(error);
        reject(error);
      };
      const timer =
        timeoutMs > 0
          ? this.#clock.setTimeout(() => {
              if (done) return;
              finish();
              const error = new SmtpClientError('ERR_SMTP_CLIENT_TIMEOUT', `no ${what} within ${timeoutMs} ms`, { side: 'remote' });
              this.#fail(error);
              reject(error);
            }, timeoutMs)
          : undefined;
      if (signal?.aborted === true) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (value) => {
          if (done) return;
          finish();
          resolve(value);
        },
        (err: unknown) => {
          if (done) return;
          finish();
          reject(
            PigeonpostError.isInstance(err)
              ? err
              : new SmtpClientError('ERR_SMTP_CLIENT_CONNECTION', `connection failed during ${what}: ${(err as Error).message}`, { side: 'none', cause: err }),
          );
        },
      );
    });
  }
}
