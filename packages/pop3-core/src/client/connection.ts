/**
 * The POP3 client, over any `ClientTransport` (the Node adapter gives it a
 * socket; tests give it an in-memory pipe). It never touches a socket or a
 * timer itself: time comes from the `Clock`.
 *
 * Opening: greeting (its APOP timestamp kept), CAPA, STLS when asked (and
 * CAPA again: RFC 2595 §4 says to forget what was learnt before TLS), then
 * the strongest shared login: SASL (SCRAM before PLAIN/LOGIN), APOP, USER/PASS.
 *
 * Commands are sent at once when the server offers PIPELINING (RFC 2449
 * §6.6), else one at a time; responses are always read in order. `retr()`
 * and `top()` resolve at the `+OK` with the message as an async iterable of
 * un-stuffed chunks: read it to the end (or `break`, which drains the rest)
 * before the next response can be read.
 */
import { createHash } from 'node:crypto';
import { Secret, createSaslClient, silentLogger } from '@pigeonpost/wire';
import type { ChannelBinding, Clock, Logger, SaslClientCredentials, SaslMechanismName } from '@pigeonpost/wire';
import { encodeCommand } from '../codec/command.js';
import type { Pop3Command } from '../codec/command.js';
import { Pop3ResponseParser, parseStatusLine } from '../codec/response.js';
import { Pop3ClientError } from '../errors.js';
import type { Pop3ServerReply } from '../errors.js';
import { resolvePop3ClientLimits } from '../limits.js';
import type { Pop3ClientLimits } from '../limits.js';

/** What the client needs from a connection. */
export interface ClientTransport {
  /** The next bytes from the server; `null` at end of stream. Only one read is pending at a time. */
  read(): Promise<Uint8Array | null>;
  /** Send bytes; resolves when more may be written. */
  write(chunk: Uint8Array): Promise<void>;
  /** True when the connection already uses TLS. */
  readonly secure: boolean;
  /** Upgrade to TLS after the `+OK` to STLS; never deliver plaintext read before the handshake. */
  startTls?(discardedBytes: number): Promise<{ readonly discardedBytes: number; readonly channelBinding?: ChannelBinding }>;
  /** TLS channel-binding data for SCRAM -PLUS. */
  channelBinding?(): ChannelBinding | undefined;
  /** Close gracefully. */
  end(): Promise<void>;
  /** Close now. */
  destroy(error?: Error): void;
}

/** `implicit` (port 995), `starttls` (STLS required: no downgrade), `none`. */
export type Pop3SecureMode = 'implicit' | 'starttls' | 'none';

/** How to log in. */
export type Pop3LoginMethod = SaslMechanismName | 'APOP' | 'USER';

export interface Pop3ClientAuthOptions {
  readonly username: string;
  readonly password?: string | Secret<string>;
  /** OAuth 2.0 token (XOAUTH2, OAUTHBEARER). */
  readonly token?: string | Secret<string>;
  /** SASL authorization identity, when different from `username`. */
  readonly authzid?: string;
  /** Use this method only. Default: the strongest the server offers. */
  readonly method?: Pop3LoginMethod;
  /** Allow a password in the clear (PLAIN, LOGIN, USER/PASS) without TLS. Default false. */
  readonly allowPlaintextAuth?: boolean;
}

export interface Pop3ClientConnectionOptions {
  /** Default `'none'` here; the Node adapter defaults to `'starttls'`. */
  readonly secure?: Pop3SecureMode;
  readonly auth?: Pop3ClientAuthOptions;
  /** Send UTF8 (RFC 6856) when the server offers it. Default true. */
  readonly utf8?: boolean;
  readonly signal?: AbortSignal;
  readonly limits?: Partial<Pop3ClientLimits>;
  readonly clock: Clock;
  readonly logger?: Logger;
  /** For OAUTHBEARER's host/port keys. */
  readonly host?: string;
  readonly port?: number;
}

/** CAPA, parsed: capability name (upper case) → its arguments. */
export type Pop3Capabilities = ReadonlyMap<string, readonly string[]>;

/** A message of a listing. */
export interface Pop3ListEntry {
  readonly number: number;
  readonly size: number;
}

export interface Pop3UidlEntry {
  readonly number: number;
  readonly uidl: string;
}

/** A message body, as sent by the server and un-stuffed, in chunks. */
export interface Pop3MessageStream extends AsyncIterable<Uint8Array> {
  /** The status line's text (`"1205 octets"`). */
  readonly status: string;
  /** Read the whole message into one buffer (convenient for small messages). */
  bytes(): Promise<Buffer>;
}

/** Strongest first. SCRAM proves the password without sending it; PLAIN and LOGIN send it. */
const PASSWORD_MECHANISMS: readonly SaslMechanismName[] = ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-1', 'CRAM-MD5', 'PLAIN', 'LOGIN'];
const TOKEN_MECHANISMS: readonly SaslMechanismName[] = ['OAUTHBEARER', 'XOAUTH2'];
const CLEARTEXT: ReadonlySet<string> = new Set(['PLAIN', 'LOGIN', 'USER', 'XOAUTH2', 'OAUTHBEARER']);

interface Status extends Pop3ServerReply {
  readonly line: string;
}

export class Pop3ClientConnection implements AsyncDisposable {
  readonly #transport: ClientTransport;
  readonly #options: Pop3ClientConnectionOptions;
  readonly #limits: Pop3ClientLimits;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #parser: Pop3ResponseParser;
  #greeting = '';
  #apopTimestamp: string | undefined;
  #capabilities: Pop3Capabilities = new Map();
  #authMethod: Pop3LoginMethod | undefined;
  /** Resolves when the previous command's response has been read completely. */
  #turn: Promise<void> = Promise.resolve();
  /** Writes, in order. */
  #writes: Promise<void> = Promise.resolve();
  #closed = false;
  #failure: Error | undefined;

  protected constructor(transport: ClientTransport, options: Pop3ClientConnectionOptions) {
    this.#transport = transport;
    this.#options = options;
    this.#limits = resolvePop3ClientLimits(options.limits);
    this.#clock = options.clock;
    this.#logger = options.logger ?? silentLogger;
    this.#parser = new Pop3ResponseParser({ maxLineLength: this.#limits.maxResponseLineLength });
  }

  /** Open a session on `transport`: greeting, CAPA, STLS, login. */
  static async open(transport: ClientTransport, options: Pop3ClientConnectionOptions): Promise<Pop3ClientConnection> {
    const client = new Pop3ClientConnection(transport, options);
    await client.start();
    return client;
  }

  /** The greeting line's text. */
  get greeting(): string {
    return this.#greeting;
  }
  /** The last CAPA answer (empty when the server has no CAPA). */
  get capabilities(): Pop3Capabilities {
    return this.#capabilities;
  }
  /** True when the connection uses TLS. */
  get secure(): boolean {
    return this.#transport.secure;
  }
  /** How the client logged in. */
  get authMethod(): Pop3LoginMethod | undefined {
    return this.#authMethod;
  }
  /** True when the server offers PIPELINING: commands are sent without waiting. */
  get pipelining(): boolean {
    return this.#capabilities.has('PIPELINING');
  }
  get closed(): boolean {
    return this.#closed || this.#failure !== undefined;
  }

  protected async start(): Promise<void> {
    try {
      const greeting = await this.#status();
      if (!greeting.ok) throw new Pop3ClientError('ERR_POP3_CLIENT_GREETING', `server refused the session: ${greeting.line}`, { side: 'remote', serverReply: greeting });
      this.#greeting = greeting.text;
      // RFC 1939 §7: the timestamp is the last "<...>" of the greeting, with an "@".
      this.#apopTimestamp = /<[^<>\s]*@[^<>\s]*>/.exec(greeting.text)?.[0];
      await this.capa();
      const mode = this.#options.secure ?? 'none';
      if (mode === 'starttls' && !this.#transport.secure) await this.#stls();
      if (this.#options.utf8 !== false && this.#capabilities.has('UTF8')) {
        const r = await this.#simple({ verb: 'UTF8' });
        if (!r.ok) this.#logger.info({ reply: r.line }, 'UTF8 refused');
      }
      if (this.#options.auth !== undefined) await this.#login(this.#options.auth);
    } catch (error) {
      this.#transport.destroy();
      this.#closed = true;
      throw error;
    }
  }

  async #stls(): Promise<void> {
    if (!this.#capabilities.has('STLS') || this.#transport.startTls === undefined) {
      throw new Pop3ClientError('ERR_POP3_CLIENT_STLS_UNAVAILABLE', 'the server does not offer STLS, and secure is "starttls"', { side: 'remote' });
    }
    const reply = await this.#simple({ verb: 'STLS' });
    if (!reply.ok) throw new Pop3ClientError('ERR_POP3_CLIENT_STLS_UNAVAILABLE', `STLS refused: ${reply.line}`, { side: 'remote', serverReply: reply });
    // RFC 2595 §4: whatever follows the +OK in plaintext is an injection: drop it unread.
    const dropped = this.#parser.discardBuffered();
    const result = await this.#guard(this.#transport.startTls(dropped), this.#limits.connectTimeoutMs, 'TLS handshake');
    if (result.discardedBytes > 0) this.#logger.warn({ discardedBytes: result.discardedBytes }, 'server sent plaintext after its +OK to STLS: dropped');
    // Forget what was learnt before TLS (an attacker may have changed it).
    this.#capabilities = new Map();
    await this.capa();
  }

  async #login(auth: Pop3ClientAuthOptions): Promise<void> {
    const caps = this.#capabilities;
    const offered = caps.get('SASL') ?? [];
    const password = auth.password === undefined ? undefined : Secret.from(auth.password);
    const token = auth.token === undefined ? undefined : Secret.from(auth.token);
    const channelBinding = this.#transport.channelBinding?.();
    const candidates: Pop3LoginMethod[] = [];
    if (auth.method !== undefined) candidates.push(auth.method);
    else {
      if (token !== undefined) candidates.push(...TOKEN_MECHANISMS.filter((m) => offered.includes(m)));
      if (password !== undefined) {
        candidates.push(...PASSWORD_MECHANISMS.filter((m) => offered.includes(m) && (!m.endsWith('-PLUS') || channelBinding !== undefined)));
        // APOP before USER: it does not send the password. A server without CAPA still may take USER (RFC 1939).
        if (this.#apopTimestamp !== undefined) candidates.push('APOP');
        if (caps.has('USER') || caps.size === 0) candidates.push('USER');
      }
    }
    const method = candidates[0];
    if (method === undefined) {
      throw new Pop3ClientError('ERR_POP3_CLIENT_AUTH_UNAVAILABLE', `no usable login method: the server offers SASL [${offered.join(' ')}]${caps.has('USER') ? ', USER' : ''}${this.#apopTimestamp !== undefined ? ', APOP' : ''}`, { side: 'none' });
    }
    if (CLEARTEXT.has(method) && !this.#transport.secure && auth.allowPlaintextAuth !== true) {
      throw new Pop3ClientError('ERR_POP3_CLIENT_AUTH_INSECURE', `${method} would send the credentials without TLS; use secure: 'starttls' or 'implicit', or set auth.allowPlaintextAuth`, { side: 'local' });
    }
    if (method === 'USER') {
      if (password === undefined) throw new Pop3ClientError('ERR_POP3_CLIENT_INVALID_ARGUMENT', 'USER/PASS needs a password', { side: 'local' });
      const user = await this.#simple({ verb: 'USER', name: auth.username });
      if (!user.ok) throw authFailed('USER', user);
      const pass = await this.#simple({ verb: 'PASS', password: password.expose() }, true);
      if (!pass.ok) throw authFailed('PASS', pass);
    } else if (method === 'APOP') {
      if (password === undefined || this.#apopTimestamp === undefined) throw new Pop3ClientError('ERR_POP3_CLIENT_AUTH_UNAVAILABLE', 'APOP needs a password and a greeting timestamp', { side: 'none' });
      const digest = createHash('md5').update(this.#apopTimestamp + password.expose(), 'utf8').digest('hex');
      const r = await this.#simple({ verb: 'APOP', name: auth.username, digest }, true);
      if (!r.ok) throw authFailed('APOP', r);
    } else {
      await this.#sasl(method, auth, password, token, channelBinding);
    }
    this.#authMethod = method;
    // RFC 2449 §5: capabilities may change after login (PIPELINING, LOGIN-DELAY): ask again.
    if (this.#capabilities.size > 0) await this.capa();
  }

  async #sasl(mechanism: SaslMechanismName, auth: Pop3ClientAuthOptions, password: Secret<string> | undefined, token: Secret<string> | undefined, channelBinding: ChannelBinding | undefined): Promise<void> {
    const credentials: SaslClientCredentials = {
      username: auth.username,
      ...(password === undefined ? {} : { password }),
      ...(token === undefined ? {} : { token }),
      ...(auth.authzid === undefined ? {} : { authzid: auth.authzid }),
      ...(this.#options.host === undefined ? {} : { host: this.#options.host }),
      ...(this.#options.port === undefined ? {} : { port: this.#options.port }),
      ...(channelBinding === undefined ? {} : { channelBinding }),
    };
    let sasl;
    try {
      sasl = createSaslClient(mechanism, credentials);
    } catch (err) {
      throw new Pop3ClientError('ERR_POP3_CLIENT_INVALID_ARGUMENT', `cannot use ${mechanism}: ${(err as Error).message}`, { side: 'local', cause: err });
    }
    const ir = sasl.initialResponseEncoded();
    // RFC 5034 §4: an initial response is allowed when the line stays within 255 octets.
    const withIr = ir !== undefined && `AUTH ${mechanism} ${ir}\r\n`.length <= 255;
    // The whole exchange is one turn: nothing may be pipelined into it.
    const previous = this.#turn;
    let done!: () => void;
    this.#turn = new Promise<void>((resolve) => (done = resolve));
    let line: Status;
    try {
      await previous;
      this.#checkOpen();
      await this.#send(encodeCommand({ verb: 'AUTH', mechanism, initialResponse: withIr ? ir : undefined }));
      line = await this.#statusOrContinuation();
      while (line.line === '+' || line.line.startsWith('+ ')) {
        let answer: string;
        try {
          answer = await sasl.respondEncoded(line.line.slice(2).trim());
        } catch (err) {
          // RFC 5034 §4: "*" cancels; the server answers -ERR.
          await this.#send('*\r\n');
          await this.#statusOrContinuation();
          throw new Pop3ClientError('ERR_POP3_CLIENT_AUTH_FAILED', `${mechanism} exchange failed: ${(err as Error).message}`, { side: 'remote', cause: err });
        }
        await this.#send(`${answer}\r\n`);
        line = await this.#statusOrContinuation();
      }
    } finally {
      done();
    }
    if (!line.ok) throw authFailed(mechanism, line);
    try {
      await sasl.complete();
    } catch (err) {
      throw new Pop3ClientError('ERR_POP3_CLIENT_AUTH_FAILED', `${mechanism}: the server did not prove it knows the credentials`, { side: 'remote', cause: err });
    }
  }

  // --- commands ---

  /** CAPA (RFC 2449). A server without CAPA (`-ERR`) gives an empty map. */
  async capa(): Promise<Pop3Capabilities> {
    const { status, lines } = await this.#listing({ verb: 'CAPA' }, false);
    const caps = new Map<string, readonly string[]>();
    if (status.ok) {
      for (const line of lines) {
        const [name, ...args] = line.trim().split(/\s+/);
        if (name !== undefined && name !== '') caps.set(name.toUpperCase(), args);
      }
    }
    this.#capabilities = caps;
    return caps;
  }

  /** STAT: messages and octets in the maildrop (deleted ones excluded). */
  async stat(): Promise<{ readonly count: number; readonly size: number }> {
    const r = await this.#ok({ verb: 'STAT' });
    const m = /^(\d+) (\d+)/.exec(r.text);
    if (m === null) throw malformed(`STAT: ${r.line}`);
    return { count: Number(m[1]), size: Number(m[2]) };
  }

  /** LIST: every message's size, or one message's. */
  list(): Promise<readonly Pop3ListEntry[]>;
  list(message: number): Promise<Pop3ListEntry>;
  async list(message?: number): Promise<readonly Pop3ListEntry[] | Pop3ListEntry> {
    if (message !== undefined) return parseEntry((await this.#ok({ verb: 'LIST', message: checkNumber(message) })).text, (n, v) => ({ number: n, size: toSize(v) }));
    const { body } = await this.#listingBody({ verb: 'LIST', message: undefined }, true);
    return parseListingBody(body!, 'LIST', this.#limits.maxListingLines);
  }

  /** UIDL: every message's unique id, or one message's. */
  uidl(): Promise<readonly Pop3UidlEntry[]>;
  uidl(message: number): Promise<Pop3UidlEntry>;
  async uidl(message?: number): Promise<readonly Pop3UidlEntry[] | Pop3UidlEntry> {
    if (message !== undefined) return parseEntry((await this.#ok({ verb: 'UIDL', message: checkNumber(message) })).text, (number, uidl) => ({ number, uidl }));
    const { body } = await this.#listingBody({ verb: 'UIDL', message: undefined }, true);
    return parseListingBody(body!, 'UIDL', this.#limits.maxListingLines);
  }

  /** RETR: the whole message, streamed and un-stuffed. */
  retr(message: number): Promise<Pop3MessageStream> {
    return this.#body({ verb: 'RETR', message: checkNumber(message) });
  }

  /** TOP: the header and the first `lines` lines of the body. */
  top(message: number, lines: number): Promise<Pop3MessageStream> {
    if (!Number.isSafeInteger(lines) || lines < 0) return Promise.reject(new Pop3ClientError('ERR_POP3_CLIENT_INVALID_ARGUMENT', 'TOP: lines must be an integer >= 0', { side: 'local' }));
    return this.#body({ verb: 'TOP', message: checkNumber(message), lines });
  }

  /** DELE: mark for deletion (applied at `quit()`). */
  async dele(message: number): Promise<void> {
    await this.#ok({ verb: 'DELE', message: checkNumber(message) });
  }

  /** RSET: unmark every deletion. */
  async rset(): Promise<void> {
    await this.#ok({ verb: 'RSET' });
  }

  async noop(): Promise<void> {
    await this.#ok({ verb: 'NOOP' });
  }

  /**
   * QUIT: the server applies the deletions (UPDATE state) and closes.
   * Rejects with the server's `-ERR` (e.g. `[SYS/TEMP]` "some deleted
   * messages not removed") after closing.
   */
  async quit(): Promise<void> {
    if (this.#closed) return;
    let reply: Status | undefined;
    try {
      reply = await this.#simple({ verb: 'QUIT' });
    } finally {
      this.#closed = true;
      await this.#transport.end().catch(() => undefined);
    }
    if (!reply.ok) throw new Pop3ClientError('ERR_POP3_CLIENT_REPLY', `QUIT: ${reply.line}`, { side: 'remote', serverReply: reply });
  }

  /** Close without QUIT: nothing marked is deleted (RFC 1939 §6). */
  close(): void {
    this.#closed = true;
    this.#transport.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.closed) {
      this.close();
      return;
    }
    await this.quit().catch(() => undefined);
  }

  // --- the machinery ---

  #checkOpen(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#closed) throw new Pop3ClientError('ERR_POP3_CLIENT_STATE', 'the POP3 connection is closed', { side: 'local' });
  }

  #send(text: string): Promise<void> {
    const write = this.#writes.then(() => this.#guard(this.#transport.write(Buffer.from(text, 'utf8')), this.#limits.commandTimeoutMs, 'write'));
    this.#writes = write.catch(() => undefined);
    return write;
  }

  /**
   * One command: written now when pipelining (in order), else when the
   * previous response is done; its status read in turn. The returned
   * `done` must be called once the response (and body) is fully read.
   */
  async #exchange(command: Pop3Command, secret = false): Promise<{ status: Status; done: () => void }> {
    this.#checkOpen();
    const line = encodeCommand(command);
    const previous = this.#turn;
    let done!: () => void;
    this.#turn = new Promise<void>((resolve) => (done = resolve));
    try {
      const written = this.pipelining ? this.#send(line) : undefined;
      await previous;
      this.#checkOpen();
      await (written ?? this.#send(line));
      const status = await this.#status();
      if (!secret) this.#logger.debug({ command: command.verb, ok: status.ok }, 'POP3 command');
      return { status, done };
    } catch (error) {
      done();
      throw error;
    }
  }

  async #simple(command: Pop3Command, secret = false): Promise<Status> {
    const { status, done } = await this.#exchange(command, secret);
    done();
    return status;
  }

  async #ok(command: Pop3Command): Promise<Status> {
    const status = await this.#simple(command);
    if (!status.ok) throw new Pop3ClientError('ERR_POP3_CLIENT_REPLY', `${command.verb}: ${status.line}`, { side: 'remote', serverReply: status });
    return status;
  }

  async #listing(command: Pop3Command, mustSucceed: boolean): Promise<{ status: Status; lines: string[] }> {
    const { status, body } = await this.#listingBody(command, mustSucceed);
    if (body === undefined) return { status, lines: [] };
    const lines = body.toString('utf8').split(/\r?\n/);
    if (lines[lines.length - 1] === '') lines.pop();
    if (lines.length > this.#limits.maxListingLines) throw malformed(`${command.verb} listing has more than ${this.#limits.maxListingLines} lines`);
    return { status, lines };
  }

  /**
   * The body of a multi-line listing (un-stuffed, without the terminator).
   * A `-ERR` rejects (`ERR_POP3_CLIENT_REPLY`) or, when `mustSucceed` is
   * false, comes with no body.
   */
  async #listingBody(command: Pop3Command, mustSucceed: boolean): Promise<{ status: Status; body: Buffer | undefined }> {
    const { status, done } = await this.#exchange(command);
    try {
      if (!status.ok) {
        if (mustSucceed) throw new Pop3ClientError('ERR_POP3_CLIENT_REPLY', `${command.verb}: ${status.line}`, { side: 'remote', serverReply: status });
        return { status, body: undefined };
      }
      this.#parser.beginBody();
      const parts: Buffer[] = [];
      let size = 0;
      for (;;) {
        const ev = await this.#event();
        if (ev.type === 'end') break;
        if (ev.type === 'data') {
          parts.push(Buffer.from(ev.chunk));
          size += ev.chunk.length;
          if (size > this.#limits.maxListingLines * 80) throw this.#fail(malformed(`${command.verb} listing is too long`));
        }
      }
      return { status, body: parts.length === 1 ? parts[0]! : Buffer.concat(parts, size) };
    } finally {
      done();
    }
  }

  async #body(command: Pop3Command): Promise<Pop3MessageStream> {
    const { status, done } = await this.#exchange(command);
    if (!status.ok) {
      done();
      throw new Pop3ClientError('ERR_POP3_CLIENT_REPLY', `${command.verb}: ${status.line}`, { side: 'remote', serverReply: status });
    }
    this.#parser.beginBody();
    let finished = false;
    let started = false;
    const next = async (): Promise<Buffer | undefined> => {
      if (finished) return undefined;
      try {
        const ev = await this.#event();
        if (ev.type === 'end') {
          finished = true;
          done();
          return undefined;
        }
        return ev.type === 'data' ? ev.chunk : Buffer.alloc(0);
      } catch (error) {
        finished = true;
        done();
        throw error;
      }
    };
    const iterate = async function* (): AsyncGenerator<Uint8Array, void, undefined> {
      if (started) throw new Pop3ClientError('ERR_POP3_CLIENT_STATE', 'a message stream can be read once', { side: 'local' });
      started = true;
      try {
        for (let chunk = await next(); chunk !== undefined; chunk = await next()) if (chunk.length > 0) yield chunk;
      } finally {
        // The consumer stopped early: read the rest, so the next response lines up.
        while (!finished) await next();
      }
    };
    return {
      status: status.text,
      [Symbol.asyncIterator]: () => iterate(),
      async bytes() {
        const parts: Uint8Array[] = [];
        for await (const chunk of iterate()) parts.push(Buffer.from(chunk));
        return Buffer.concat(parts);
      },
    };
  }

  async #status(): Promise<Status> {
    const s = await this.#statusOrContinuation();
    if (s.line === '+' || s.line.startsWith('+ ')) throw this.#fail(malformed(`unexpected SASL continuation: ${s.line}`));
    return s;
  }

  async #statusOrContinuation(): Promise<Status> {
    const ev = await this.#event();
    if (ev.type !== 'line') throw this.#fail(malformed('expected a status line'));
    const parsed = parseStatusLine(ev.line);
    if (parsed === undefined) throw this.#fail(malformed(`not a POP3 status line: ${JSON.stringify(ev.line.slice(0, 100))}`));
    if (parsed.type === 'continuation') return { ok: true, responseCode: undefined, text: parsed.data, line: ev.line };
    return { ok: parsed.ok, responseCode: parsed.responseCode, text: parsed.text, line: ev.line };
  }

  async #event(): Promise<{ type: 'line'; line: string } | { type: 'data'; chunk: Buffer } | { type: 'end' }> {
    for (;;) {
      const ev = this.#parser.next();
      if (ev !== undefined) {
        if (ev.type === 'error') throw this.#fail(malformed(ev.message));
        return ev;
      }
      this.#checkOpen();
      let chunk: Uint8Array | null;
      try {
        chunk = await this.#guard(this.#transport.read(), this.#limits.commandTimeoutMs, 'response');
      } catch (error) {
        throw this.#fail(error);
      }
      if (chunk === null) throw this.#fail(new Pop3ClientError('ERR_POP3_CLIENT_CONNECTION', 'the server closed the connection', { side: 'remote' }));
      this.#parser.push(chunk);
    }
  }

  #fail(error: unknown): Error {
    const e =
      Pop3ClientError.isInstance(error) ? error : new Pop3ClientError('ERR_POP3_CLIENT_CONNECTION', `connection failed: ${(error as Error)?.message ?? String(error)}`, { side: 'remote', cause: error });
    if (this.#failure === undefined) {
      this.#failure = e;
      this.#transport.destroy(e);
    }
    return e;
  }

  /** `promise`, bounded by `timeoutMs` on the clock (0: no limit) and by the caller's signal. */
  #guard<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    const signal = this.#options.signal;
    if (signal?.aborted === true) {
      const error = new Pop3ClientError('ERR_POP3_CLIENT_ABORTED', 'aborted', { side: 'local', cause: signal.reason });
      this.#failure ??= error;
      this.#transport.destroy(error);
      return Promise.reject(error);
    }
    if (timeoutMs === 0 && signal === undefined) return promise;
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        cleanup();
        const error = new Pop3ClientError('ERR_POP3_CLIENT_ABORTED', 'aborted', { side: 'local', cause: signal?.reason });
        this.#failure ??= error;
        this.#transport.destroy(error);
        reject(error);
      };
      const timer =
        timeoutMs > 0
          ? this.#clock.setTimeout(() => {
              cleanup();
              const error = new Pop3ClientError('ERR_POP3_CLIENT_TIMEOUT', `no ${what} within ${timeoutMs} ms`, { side: 'remote' });
              this.#failure ??= error;
              this.#transport.destroy(error);
              reject(error);
            }, timeoutMs)
          : undefined;
      const cleanup = (): void => {
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (value) => {
          cleanup();
          resolve(value);
        },
        (error: unknown) => {
          cleanup();
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }
}

function authFailed(what: string, reply: Status): Pop3ClientError {
  return new Pop3ClientError('ERR_POP3_CLIENT_AUTH_FAILED', `${what} refused: ${reply.line.startsWith('-ERR') ? reply.line : reply.text}`, { side: 'remote', serverReply: reply });
}

function malformed(message: string): Pop3ClientError {
  return new Pop3ClientError('ERR_POP3_CLIENT_MALFORMED_RESPONSE', message, { side: 'remote' });
}

function checkNumber(n: number): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new Pop3ClientError('ERR_POP3_CLIENT_INVALID_ARGUMENT', `message number must be an integer >= 1, got ${n}`, { side: 'local' });
  return n;
}

function toSize(v: string): number {
  if (!/^\d+$/.test(v)) throw malformed(`bad size ${JSON.stringify(v)}`);
  return Number(v);
}

/** "n value" (a LIST or UIDL line, or the text of a single-message reply). */
function parseEntry<T>(line: string, make: (n: number, value: string) => T): T {
  const m = /^(\d+) (\S+)/.exec(line);
  if (m === null) throw malformed(`bad listing line ${JSON.stringify(line.slice(0, 100))}`);
  return make(Number(m[1]), m[2]!);
}

/** Space, tab, vertical tab, form feed or CR: what ends a LIST/UIDL value (as `\S` does). */
function isValueEnd(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0b || b === 0x0c || b === 0x0d;
}

/**
 * The lines "n value" of a LIST (value: the size, digits) or UIDL listing,
 * read straight from the bytes (a 10,000-line listing would otherwise be
 * 10,000 strings, regex matches and closures). Lines end in CRLF or LF;
 * what follows the value on a line is ignored (as `parseEntry` does). A
 * line that is not "n value" fails as a malformed response.
 */
function parseListingBody(body: Buffer, verb: 'LIST', maxLines: number): Pop3ListEntry[];
function parseListingBody(body: Buffer, verb: 'UIDL', maxLines: number): Pop3UidlEntry[];
function parseListingBody(body: Buffer, verb: 'LIST' | 'UIDL', maxLines: number): (Pop3ListEntry | Pop3UidlEntry)[] {
  const out: (Pop3ListEntry | Pop3UidlEntry)[] = [];
  const end = body.length;
  for (let pos = 0; pos < end; ) {
    let eol = body.indexOf(0x0a, pos);
    if (eol < 0) eol = end;
    const lineEnd = eol > pos && body[eol - 1] === 0x0d ? eol - 1 : eol;
    let i = pos;
    let n = 0;
    for (let b = body[i]!; i < lineEnd && b >= 0x30 && b <= 0x39; b = body[++i]!) n = n * 10 + (b - 0x30);
    const valueStart = i + 1;
    if (i === pos || i + 1 >= lineEnd || body[i] !== 0x20 || isValueEnd(body[valueStart]!)) throw malformed(`bad listing line ${JSON.stringify(body.toString('utf8', pos, Math.min(lineEnd, pos + 100)))}`);
    let ascii = true;
    for (i = valueStart; i < lineEnd; i++) {
      const b = body[i]!;
      if (isValueEnd(b)) break;
      if (b >= 0x80) ascii = false;
    }
    if (out.length === maxLines) throw malformed(`${verb} listing has more than ${maxLines} lines`);
    if (verb === 'LIST') {
      let size = 0;
      for (let k = valueStart; k < i; k++) {
        const b = body[k]!;
        if (b < 0x30 || b > 0x39) throw malformed(`bad size ${JSON.stringify(body.toString('utf8', valueStart, i))}`);
        size = size * 10 + (b - 0x30);
      }
      out.push({ number: n, size });
    } else out.push({ number: n, uidl: body.toString(ascii ? 'latin1' : 'utf8', valueStart, i) });
    pos = eol + 1;
  }
  return out;
}
