/**
 * The TCP listener runtime that the SMTP, POP3 and IMAP Node adapters share:
 * accepting, connection limits (total and per client IP), the PROXY protocol,
 * implicit TLS, idle timeouts on an injectable clock, and graceful close.
 *
 * Life of an accepted socket:
 *
 *   accept ─▶ limits ─▶ [PROXY header] ─▶ [per-IP limit on the proxied address] ─▶ [TLS handshake] ─▶ session
 *      │         │              │                     │                                  │
 *      └─ closing └─ rejected ──┴─ rejected ───────────┴─ rejected                        └─ dropped
 *
 * A slot is taken at accept and given back exactly once, whichever way the
 * connection ends; a rejected connection gives its slot back at once, while
 * its goodbye is written.
 */
import { channel } from 'node:diagnostics_channel';
import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Clock, TimerHandle } from '../clock.js';
import type { ProxyHeader } from '../codec/proxy-protocol.js';
import { channels } from '../diagnostics.js';
import { ListenerError } from '../errors.js';
import { resolveLimits } from '../limits.js';
import type { ListenerLimits, ProxyProtocolLimits, WireLimits } from '../limits.js';
import { silentLogger } from '../logger.js';
import type { Logger } from '../logger.js';
import { systemClock } from './clock.js';
import { createTrustedProxyMatcher, normalizeIp, readProxyHeader } from './listener-proxy.js';
import { acceptTls } from './tls.js';


// ---------------------------------------------------------------------------
// Public types

/** Why a connection never reached a session. */
export type RejectReason =
  /** `close()` was called; the socket was accepted in the race. */
  | 'closing'
  /** `maxConnections` reached. */
  | 'max-connections'
  /** `maxConnectionsPerIp` reached for this client address (the proxied one with PROXY). */
  | 'max-connections-per-ip'
  /** PROXY protocol is on and the peer is not a trusted proxy. */
  | 'untrusted-proxy'
  /** The PROXY header was missing, malformed, too large, incomplete or late. */
  | 'proxy-header'
  /** The implicit-TLS handshake failed or timed out. Nothing can be written then. */
  | 'tls-handshake';

export interface RejectInfo {
  readonly reason: RejectReason;
  /** The client address as far as known: the proxied one once a PROXY header was read, else the peer's. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The error behind `proxy-header` and `tls-handshake`. */
  readonly error?: Error;
}

/** Why a connection ended, as published on `channels.close`. */
export type ConnectionCloseReason = 'closed' | 'error' | 'idle' | 'shutdown' | 'session-error';

export type IdleHandler = (connection: Connection) => void | Promise<void>;

/** One accepted connection, handed to the session once limits, PROXY and TLS are through. */
export interface Connection {
  /** Unique in the process, for logs. */
  readonly id: string;
  /** The socket to talk on: a `tls.TLSSocket` on implicit TLS ports or after `replaceSocket`. */
  readonly socket: net.Socket | tls.TLSSocket;
  /** The client, as the session should see it: the proxied source when a PROXY header gave one, else the TCP peer. */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** The address the client connected to: the proxied destination with PROXY, else our end of the TCP connection. */
  readonly localAddress: string;
  readonly localPort: number;
  /** The TCP connection itself (the proxy's end when PROXY is used). */
  readonly peer: { readonly remoteAddress: string; readonly remotePort: number; readonly localAddress: string; readonly localPort: number };
  /** The PROXY header, when the listener requires one. */
  readonly proxy: ProxyHeader | undefined;
  /** True on implicit TLS ports and after `replaceSocket` with a TLS socket. */
  readonly secure: boolean;
  /** Aborts when the listener starts a graceful close: finish the exchange in flight, say goodbye (SMTP `421`, IMAP `* BYE`), end the socket. */
  readonly closing: AbortSignal;
  /** Resolves once the connection is fully closed (its slot is free by then). Never rejects. */
  readonly closed: Promise<void>;
  /** Logger with this connection's id bound. */
  readonly logger: Logger;
  /**
   * Called when the idle timeout fires, before the listener ends the socket:
   * write the goodbye here (`421 4.4.2 Idle timeout`). May be async; it gets
   * `goodbyeTimeoutMs` before the socket is destroyed.
   */
  onIdle: IdleHandler | undefined;
  /** Restart the idle timer. Received bytes do this automatically; call it while a long response is being written. */
  touch(): void;
  /** Change the idle timeout (IMAP IDLE wants a longer one) and restart the timer. 0 turns it off. */
  setIdleTimeout(ms: number): void;
  /** After STARTTLS: from now on the connection lives on `socket` — idle tracking, accounting and close follow it. */
  replaceSocket(socket: tls.TLSSocket): void;
  /** Destroy the connection now. */
  destroy(error?: Error): void;
}

export interface ProxyProtocolOptions {
  /** IPs and CIDRs (`10.0.0.0/8`, `2001:db8::/32`) allowed to send a PROXY header. Everybody else is refused. */
  readonly trustedProxies: readonly string[];
}

export interface ListenerOptions extends Partial<ListenerLimits>, Partial<Omit<ProxyProtocolLimits, 'maxV1HeaderBytes'>> {
  /** The session. May be async; a throw or rejection is logged and the connection destroyed; it never reaches the process. */
  readonly onConnection: (connection: Connection) => void | Promise<void>;
  /** Implicit TLS (ports 465, 993, 995): every socket is wrapped with `acceptTls` before the session starts. Build with `createServerTlsOptions`. */
  readonly tls?: tls.TlsOptions;
  /** Require a PROXY v1/v2 header from trusted proxies first. Default `false`. */
  readonly proxyProtocol?: false | ProxyProtocolOptions;
  /**
   * The bytes to write to a refused connection before closing it, e.g.
   * `421 4.7.0 Too many connections\r\n`; `undefined` closes it silently. On
   * implicit TLS ports the message goes over TLS (after a handshake bounded by
   * `goodbyeTimeoutMs`) when the stream is where a handshake can start, and is
   * dropped otherwise (a bad PROXY header). Never called for `tls-handshake`.
   */
  readonly rejectMessage?: (info: RejectInfo) => string | Uint8Array | undefined;
  /** Every timer (idle, PROXY header, TLS handshake, goodbye, close) runs on it. Default `systemClock`. */
  readonly clock?: Clock;
  /** Default `silentLogger`. */
  readonly logger?: Logger;
  /** A name for logs and diagnostics, e.g. `smtp-submission`. */
  readonly name?: string;
}

export interface ListenOptions {
  /** Default: all interfaces (Node's `::`/`0.0.0.0`). */
  readonly host?: string;
  /** 0 picks a free port; `listen` resolves with the one chosen. */
  readonly port: number;
  readonly backlog?: number;
  readonly ipv6Only?: boolean;
}

export interface CloseOptions {
  /** Override `closeTimeoutMs` for this close. */
  readonly timeoutMs?: number;
}

export interface ListenerStats {
  /** Slots in use: sessions plus connections still in PROXY/TLS setup. `maxConnections` applies to this. */
  readonly total: number;
  /** Connections whose session is running. */
  readonly sessions: number;
  /** Slots in use per client IP (proxied IP with PROXY). */
  readonly perIp: ReadonlyMap<string, number>;
}

export interface Listener extends AsyncDisposable {
  readonly name: string;
  /** Bind one more address; may be called several times (e.g. `0.0.0.0` and `::`). Rejects with ListenerError `ERR_LISTENER_LISTEN` or `ERR_LISTENER_CLOSED`. */
  listen(options: ListenOptions): Promise<net.AddressInfo>;
  /** The first bound address, or undefined before `listen`. */
  address(): net.AddressInfo | undefined;
  /** Every bound address. */
  addresses(): net.AddressInfo[];
  /** The connections whose session is running. */
  readonly connections: ReadonlySet<Connection>;
  stats(): ListenerStats;
  readonly state: 'open' | 'closing' | 'closed';
  /**
   * Graceful close: stop accepting, abort every connection's `closing`
   * signal, wait until every connection has ended and every session has
   * returned — or `closeTimeoutMs` — then destroy the rest. Resolves when
   * every socket and server is closed. Calling it again returns the same promise.
   */
  close(options?: CloseOptions): Promise<void>;
}

// ---------------------------------------------------------------------------
// Implementation

const connectionChannel = channel(channels.connection);
const rejectChannel = channel(channels.reject);
const closeChannel = channel(channels.close);
const idleChannel = channel(channels.idle);
const proxyChannel = channel(channels.proxy);

let nextConnectionId = 1;
let nextListenerId = 1;

const LIMIT_KEYS = ['maxConnections', 'maxConnectionsPerIp', 'idleTimeoutMs', 'tlsHandshakeTimeoutMs', 'closeTimeoutMs', 'maxV2HeaderBytes', 'headerTimeoutMs', 'goodbyeTimeoutMs'] as const;

type Limits = Pick<WireLimits, (typeof LIMIT_KEYS)[number]>;

/** Create a listener; nothing is bound until `listen()`. Throws ListenerError `ERR_LISTENER_CONFIG` (or RangeError for a bad limit). */
export function createListener(options: ListenerOptions): Listener {
  return new ListenerImpl(options);
}

class ListenerImpl implements Listener {
  readonly name: string;
  readonly #options: ListenerOptions;
  readonly #limits: Limits;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #isTrustedProxy: ((address: string) => boolean) | undefined;
  readonly #servers: net.Server[] = [];
  readonly #addresses: net.AddressInfo[] = [];
  /** Every accepted socket not yet closed: in setup, in session, or saying goodbye after a reject. */
  readonly #all = new Set<ConnectionImpl>();
  readonly #sessions = new Set<ConnectionImpl>();
  #total = 0;
  readonly #perIp = new Map<string, number>();
  #runningSessions = 0;
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closePromise: Promise<void> | undefined;
  #waiters: (() => void)[] = [];

  constructor(options: ListenerOptions) {
    if (typeof options.onConnection !== 'function') {
      throw new ListenerError('ERR_LISTENER_CONFIG', 'createListener needs an onConnection function', { side: 'local' });
    }
    this.#options = options;
    this.#limits = resolveLimits(LIMIT_KEYS, options);
    this.#clock = options.clock ?? systemClock;
    this.name = options.name ?? `listener-${nextListenerId++}`;
    this.#logger = (options.logger ?? silentLogger).child({ listener: this.name });
    const proxy = options.proxyProtocol ?? false;
    if (proxy !== false) {
      if (!Array.isArray(proxy.trustedProxies)) {
        throw new ListenerError('ERR_LISTENER_CONFIG', 'proxyProtocol.trustedProxies must be a list of IPs and CIDRs', { side: 'local' });
      }
      this.#isTrustedProxy = createTrustedProxyMatcher(proxy.trustedProxies);
    }
  }

  get state(): 'open' | 'closing' | 'closed' {
    return this.#state;
  }

  get connections(): ReadonlySet<Connection> {
    return this.#sessions;
  }

  stats(): ListenerStats {
    return { total: this.#total, sessions: this.#sessions.size, perIp: new Map(this.#perIp) };
  }

  address(): net.AddressInfo | undefined {
    return this.#addresses[0];
  }

  addresses(): net.AddressInfo[] {
    return [...this.#addresses];
  }

  listen(options: ListenOptions): Promise<net.AddressInfo> {
    if (this.#state !== 'open') return Promise.reject(new ListenerError('ERR_LISTENER_CLOSED', 'the listener is closed', { side: 'local' }));
    return new Promise<net.AddressInfo>((resolve, reject) => {
      const server = net.createServer();
      const onListenError = (cause: Error): void => {
        reject(new ListenerError('ERR_LISTENER_LISTEN', `cannot listen on ${options.host ?? '*'}:${options.port}: ${cause.message}`, { cause }));
      };
      server.once('error', onListenError);
      server.on('connection', (socket) => this.#accept(socket));
      const listenOptions: net.ListenOptions = { port: options.port };
      if (options.host !== undefined) listenOptions.host = options.host;
      if (options.backlog !== undefined) listenOptions.backlog = options.backlog;
      if (options.ipv6Only !== undefined) listenOptions.ipv6Only = options.ipv6Only;
      server.listen(listenOptions, () => {
        server.off('error', onListenError);
        server.on('error', (err) => this.#logger.error({ err }, 'listener error'));
        const address = server.address() as net.AddressInfo;
        if (this.#state !== 'open') {
          // close() ran while we were binding: do not leave this one open.
          server.close();
          reject(new ListenerError('ERR_LISTENER_CLOSED', 'the listener was closed while binding', { side: 'local' }));
          return;
        }
        this.#servers.push(server);
        this.#addresses.push(address);
        this.#logger.info({ address: address.address, port: address.port, tls: this.#options.tls !== undefined, proxyProtocol: this.#isTrustedProxy !== undefined }, 'listening');
        resolve(address);
      });
    });
  }

  // -- accounting -----------------------------------------------------------

  #perIpCount(ip: string): number {
    return this.#perIp.get(ip) ?? 0;
  }

  /** Take a per-IP slot for `conn`; false when the limit is reached. */
  #takeIp(conn: ConnectionImpl, ip: string): boolean {
    if (this.#perIpCount(ip) >= this.#limits.maxConnectionsPerIp) return false;
    this.#perIp.set(ip, this.#perIpCount(ip) + 1);
    conn.slotIp = ip;
    return true;
  }

  /** Give back whatever `conn` holds. Idempotent: each slot is released once. */
  release(conn: ConnectionImpl): void {
    if (conn.slotTotal) {
      conn.slotTotal = false;
      this.#total--;
    }
    if (conn.slotIp !== undefined) {
      const n = this.#perIpCount(conn.slotIp) - 1;
      if (n <= 0) this.#perIp.delete(conn.slotIp);
      else this.#perIp.set(conn.slotIp, n);
      conn.slotIp = undefined;
    }
  }

  /** Called once per connection when its sockets are closed. */
  finished(conn: ConnectionImpl, reason: ConnectionCloseReason): void {
    this.release(conn);
    this.#all.delete(conn);
    if (this.#sessions.delete(conn)) {
      this.#logger.debug({ connection: conn.id, reason }, 'connection closed');
      if (closeChannel.hasSubscribers) closeChannel.publish({ listener: this, connection: conn, reason });
    }
    this.#wake();
  }

  #sessionSettled(): void {
    this.#runningSessions--;
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  /** Resolve once `done()` holds, re-checked whenever a connection or session ends. */
  #until(done: () => boolean): Promise<void> {
    return new Promise<void>((resolve) => {
      const check = (): void => {
        if (done()) resolve();
        else this.#waiters.push(check);
      };
      check();
    });
  }

  // -- accepting ------------------------------------------------------------

  #accept(raw: net.Socket): void {
    // Errors are reported through 'close'; without a listener an 'error' would crash the process.
    raw.on('error', (err) => this.#logger.debug({ err: { code: (err as NodeJS.ErrnoException).code, message: err.message } }, 'socket error'));
    const remoteAddress = raw.remoteAddress;
    if (remoteAddress === undefined || raw.destroyed) {
      // The peer reset the connection before we got to it.
      raw.destroy();
      return;
    }
    const conn = new ConnectionImpl(this, raw, normalizeIp(remoteAddress), this.#clock, this.#limits, this.#logger);
    this.#all.add(conn);
    if (this.#state !== 'open') {
      this.#reject(conn, 'closing', true);
      return;
    }
    if (this.#total >= this.#limits.maxConnections) {
      this.#reject(conn, 'max-connections', true);
      return;
    }
    this.#total++;
    conn.slotTotal = true;
    if (this.#isTrustedProxy === undefined) {
      if (!this.#takeIp(conn, conn.remoteAddress)) {
        this.#reject(conn, 'max-connections-per-ip', true);
        return;
      }
      void this.#secureAndStart(conn);
      return;
    }
    if (!this.#isTrustedProxy(conn.peer.remoteAddress)) {
      // Silently for TLS ports: the peer is not a proxy we know, and its bytes may be anything.
      this.#reject(conn, 'untrusted-proxy', false);
      return;
    }
    void this.#readProxy(conn);
  }

  async #readProxy(conn: ConnectionImpl): Promise<void> {
    let header: ProxyHeader;
    try {
      header = await readProxyHeader(conn.raw, {
        maxV2HeaderBytes: this.#limits.maxV2HeaderBytes,
        timeoutMs: this.#limits.headerTimeoutMs,
        clock: this.#clock,
        signal: conn.setupSignal,
      });
    } catch (err) {
      if (conn.isFinished || this.#state !== 'open') {
        conn.destroy();
        return;
      }
      const error = err instanceof Error ? err : new Error(String(err));
      this.#logger.debug({ connection: conn.id, peer: conn.peer.remoteAddress, code: (error as { code?: unknown }).code }, 'bad PROXY header');
      this.#reject(conn, 'proxy-header', false, error);
      return;
    }
    // Not `isFinished` alone: a destroyed socket reports 'close' a tick later, and close() may have run meanwhile.
    if (conn.isFinished || conn.setupSignal.aborted || this.#state !== 'open') {
      conn.destroy();
      return;
    }
    conn.applyProxy(header);
    if (proxyChannel.hasSubscribers) proxyChannel.publish({ listener: this, connection: conn, proxy: header });
    if (!this.#takeIp(conn, conn.remoteAddress)) {
      this.#reject(conn, 'max-connections-per-ip', true);
      return;
    }
    await this.#secureAndStart(conn);
  }

  async #secureAndStart(conn: ConnectionImpl): Promise<void> {
    const tlsOptions = this.#options.tls;
    if (tlsOptions !== undefined) {
      let secure: tls.TLSSocket;
      try {
        secure = await acceptTls(conn.raw, tlsOptions, { timeoutMs: this.#limits.tlsHandshakeTimeoutMs, clock: this.#clock, signal: conn.setupSignal });
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        // Aborted by close() or by the connection ending: nothing to report.
        if (conn.isFinished || this.#state !== 'open') conn.destroy();
        else this.#reject(conn, 'tls-handshake', false, error);
        return;
      }
      // The handshake can settle in the tick where close() or destroy() ran (the socket's 'close' comes a
      // tick later, so `isFinished` is still false): no session may start on a connection already torn down.
      if (conn.isFinished || conn.setupSignal.aborted || this.#state !== 'open') {
        secure.destroy();
        conn.destroy();
        return;
      }
      conn.adoptSocket(secure);
    }
    this.#startSession(conn);
  }

  #startSession(conn: ConnectionImpl): void {
    conn.setupDone();
    this.#sessions.add(conn);
    conn.startIdleTimer();
    this.#logger.debug({ connection: conn.id, remoteAddress: conn.remoteAddress, secure: conn.secure }, 'connection');
    if (connectionChannel.hasSubscribers) connectionChannel.publish({ listener: this, connection: conn });
    this.#runningSessions++;
    let result: void | Promise<void>;
    try {
      result = this.#options.onConnection(conn);
    } catch (err) {
      this.#sessionFailed(conn, err);
      this.#sessionSettled();
      return;
    }
    Promise.resolve(result).then(
      () => this.#sessionSettled(),
      (err: unknown) => {
        this.#sessionFailed(conn, err);
        this.#sessionSettled();
      },
    );
  }

  #sessionFailed(conn: ConnectionImpl, err: unknown): void {
    this.#logger.error({ connection: conn.id, err }, 'session failed');
    conn.fail('session-error');
  }

  #publishReject(conn: ConnectionImpl, reason: RejectReason, error?: Error): void {
    this.#logger.debug({ connection: conn.id, remoteAddress: conn.remoteAddress, reason }, 'connection rejected');
    if (rejectChannel.hasSubscribers) rejectChannel.publish({ listener: this, remoteAddress: conn.remoteAddress, reason, error });
  }

  /**
   * Refuse `conn`: free its slot now, then write the reject message (if any)
   * and close. `atTlsStart` says whether, on a TLS port, the stream is where a
   * handshake can begin — only then can a message be sent over TLS.
   */
  #reject(conn: ConnectionImpl, reason: RejectReason, atTlsStart: boolean, error?: Error): void {
    this.release(conn);
    conn.rejected = true;
    this.#publishReject(conn, reason, error);
    let message: string | Uint8Array | undefined;
    if (reason !== 'tls-handshake' && this.#options.rejectMessage !== undefined) {
      const info: RejectInfo = error === undefined ? { reason, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort } : { reason, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort, error };
      try {
        message = this.#options.rejectMessage(info);
      } catch (err) {
        this.#logger.error({ err }, 'rejectMessage threw');
      }
    }
    const tlsOptions = this.#options.tls;
    if (message === undefined || conn.raw.destroyed || (tlsOptions !== undefined && !atTlsStart)) {
      conn.destroy();
      return;
    }
    conn.startGoodbyeTimer();
    if (tlsOptions === undefined) {
      // Discard whatever the client sends from now on, so its FIN is seen and the socket closes without waiting for the timer.
      conn.raw.resume();
      conn.raw.end(message);
      return;
    }
    acceptTls(conn.raw, tlsOptions, { timeoutMs: this.#limits.goodbyeTimeoutMs, clock: this.#clock, signal: conn.setupSignal }).then(
      (secure) => {
        if (conn.isFinished) {
          secure.destroy();
          return;
        }
        conn.adoptSocket(secure);
        secure.resume();
        secure.end(message);
      },
      () => conn.destroy(),
    );
  }

  // -- closing --------------------------------------------------------------

  close(options: CloseOptions = {}): Promise<void> {
    this.#closePromise ??= this.#close(options.timeoutMs ?? this.#limits.closeTimeoutMs);
    return this.#closePromise;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(timeoutMs: number): Promise<void> {
    this.#state = 'closing';
    this.#logger.info({ connections: this.#all.size }, 'closing');
    const serversClosed = Promise.all(this.#servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    const reason = new ListenerError('ERR_LISTENER_CLOSING', 'the server is shutting down');
    for (const conn of [...this.#all]) {
      // Sessions finish their exchange; anything not yet a session has nothing to finish.
      if (this.#sessions.has(conn)) conn.signalClosing(reason);
      else conn.destroy();
    }
    let timer: TimerHandle | undefined;
    // 0: no grace at all, destroy at once (no timer, so it works on a virtual clock nobody advances).
    const timedOut =
      timeoutMs === 0
        ? Promise.resolve(true)
        : new Promise<boolean>((resolve) => {
            timer = this.#clock.setTimeout(() => resolve(true), timeoutMs);
          });
    const expired = await Promise.race([this.#until(() => this.#all.size === 0 && this.#runningSessions === 0).then(() => false), timedOut]);
    if (timer !== undefined) this.#clock.clearTimeout(timer);
    if (expired && this.#all.size > 0) {
      this.#logger.warn({ connections: this.#all.size, sessions: this.#runningSessions, timeoutMs }, 'close timeout: destroying the remaining connections');
      for (const conn of [...this.#all]) conn.fail('shutdown');
    }
    // Sockets close within a tick or two of being destroyed; a session that never returns is not waited for past the timeout.
    await this.#until(() => this.#all.size === 0);
    await serversClosed;
    this.#state = 'closed';
    this.#logger.info('closed');
  }
}

/**
 * One accepted socket, from accept to close. Owns every socket layered on the
 * raw one (the TLS socket, a STARTTLS socket) and destroys them all when any
 * of them closes, so the listener hears about the end exactly once.
 */
class ConnectionImpl implements Connection {
  readonly id: string;
  readonly raw: net.Socket;
  readonly peer: Connection['peer'];
  readonly logger: Logger;
  readonly closed: Promise<void>;
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
  proxy: ProxyHeader | undefined;
  secure = false;
  onIdle: IdleHandler | undefined;
  /** Accounting, owned by the listener. */
  slotTotal = false;
  slotIp: string | undefined;
  rejected = false;

  readonly #listener: ListenerImpl;
  readonly #clock: Clock;
  readonly #limits: Limits;
  readonly #closing = new AbortController();
  /** Aborted when the connection ends or the listener closes: cancels PROXY reading and TLS handshakes in flight. */
  readonly #setup = new AbortController();
  #socket: net.Socket | tls.TLSSocket;
  readonly #sockets = new Set<net.Socket>();
  #finished = false;
  #resolveClosed!: () => void;
  #reason: ConnectionCloseReason | undefined;
  #sawError = false;
  #idleMs: number;
  #lastActivity: number;
  #idleTimer: TimerHandle | undefined;
  /** When `#idleTimer` fires, on the clock. */
  #idleDue = 0;
  #idleStarted = false;
  #idling = false;
  #goodbyeTimer: TimerHandle | undefined;
  #unobserve: (() => void) | undefined;
  /** PROXY and TLS are through and the session runs: nothing waits on the setup signal any more. */
  #setupDone = false;

  constructor(listener: ListenerImpl, raw: net.Socket, remoteAddress: string, clock: Clock, limits: Limits, logger: Logger) {
    this.#listener = listener;
    this.#clock = clock;
    this.#limits = limits;
    this.id = `c${(nextConnectionId++).toString(36)}`;
    this.raw = raw;
    this.#socket = raw;
    const localAddress = normalizeIp(raw.localAddress ?? '');
    this.peer = Object.freeze({ remoteAddress, remotePort: raw.remotePort ?? 0, localAddress, localPort: raw.localPort ?? 0 });
    this.remoteAddress = remoteAddress;
    this.remotePort = this.peer.remotePort;
    this.localAddress = localAddress;
    this.localPort = this.peer.localPort;
    this.logger = logger.child({ connection: this.id });
    this.#idleMs = limits.idleTimeoutMs;
    this.#lastActivity = clock.now();
    this.closed = new Promise<void>((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#track(raw);
  }

  get socket(): net.Socket | tls.TLSSocket {
    return this.#socket;
  }

  get closing(): AbortSignal {
    return this.#closing.signal;
  }

  get setupSignal(): AbortSignal {
    return this.#setup.signal;
  }

  get isFinished(): boolean {
    return this.#finished;
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.on('error', () => {
      this.#sawError = true;
    });
    socket.once('close', () => this.#finish());
  }

  applyProxy(header: ProxyHeader): void {
    this.proxy = header;
    const a = header.addresses;
    if (a !== undefined && a.family !== 'unix') {
      this.remoteAddress = normalizeIp(a.sourceAddress);
      this.remotePort = a.sourcePort;
      this.localAddress = normalizeIp(a.destinationAddress);
      this.localPort = a.destinationPort;
    }
  }

  /** The implicit-TLS socket replaces the raw one before the session starts. */
  adoptSocket(socket: tls.TLSSocket): void {
    this.#track(socket);
    this.#socket = socket;
    this.secure = true;
  }

  replaceSocket(socket: tls.TLSSocket): void {
    if (this.#finished) {
      socket.destroy();
      return;
    }
    this.#unobserve?.();
    this.adoptSocket(socket);
    this.secure = socket.encrypted === true;
    if (this.#idleStarted) this.#observe();
    this.touch();
  }

  // -- idle -----------------------------------------------------------------

  startIdleTimer(): void {
    this.#idleStarted = true;
    this.#observe();
    this.#lastActivity = this.#clock.now();
    this.#armIdle(this.#idleMs);
  }

  /**
   * Note received bytes without reading them. A `'data'` listener would switch
   * the socket to flowing mode and take bytes the session has not asked for
   * yet, so the socket's own `push` (where Node delivers what the kernel read,
   * decrypted on TLS sockets) is wrapped on this instance instead.
   */
  #observe(): void {
    const socket = this.#socket;
    const push = socket.push.bind(socket);
    const wrapped = (chunk: unknown, encoding?: BufferEncoding): boolean => {
      if (chunk !== null) this.#lastActivity = this.#clock.now();
      return push(chunk, encoding);
    };
    socket.push = wrapped;
    this.#unobserve = () => {
      if (socket.push === wrapped) delete (socket as { push?: unknown }).push;
      this.#unobserve = undefined;
    };
  }

  touch(): void {
    this.#lastActivity = this.#clock.now();
  }

  setIdleTimeout(ms: number): void {
    if (typeof ms !== 'number' || Number.isNaN(ms) || ms < 0) throw new RangeError(`idle timeout must be a number >= 0, got ${String(ms)}`);
    this.#idleMs = ms;
    const now = this.#clock.now();
    this.#lastActivity = now;
    if (!this.#idleStarted) return;
    // Sessions switch the timeout off and on around every hook (SMTP pauses per pipelined group): a timer
    // that fires no later than the new deadline is kept — when it fires it sleeps for what is left, or
    // stops if the timeout is off by then. Only a nearer deadline needs a new timer.
    if (this.#idleTimer !== undefined && (ms === 0 || this.#idleDue <= now + ms)) return;
    this.#armIdle(ms);
  }

  /** Timers are re-armed lazily: activity only records a time, and the timer, when it fires early, sleeps for what is left. */
  #armIdle(ms: number): void {
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#finished || this.#idling || this.#idleMs === 0) return;
    this.#idleDue = this.#clock.now() + ms;
    this.#idleTimer = this.#clock.setTimeout(() => this.#onIdleTimer(), ms);
  }

  #onIdleTimer(): void {
    this.#idleTimer = undefined;
    if (this.#idleMs === 0) return; // switched off since the timer was set
    const left = this.#lastActivity + this.#idleMs - this.#clock.now();
    if (left > 0) {
      this.#armIdle(left);
      return;
    }
    void this.#goIdle();
  }

  async #goIdle(): Promise<void> {
    if (this.#finished || this.#idling) return;
    this.#idling = true;
    this.#reason = 'idle';
    this.logger.debug({ idleTimeoutMs: this.#idleMs }, 'idle timeout');
    if (idleChannel.hasSubscribers) idleChannel.publish({ listener: this.#listener, connection: this });
    this.startGoodbyeTimer();
    const hook = this.onIdle;
    if (hook !== undefined) {
      try {
        await hook(this);
      } catch (err) {
        this.logger.error({ err }, 'onIdle hook failed');
      }
    }
    if (!this.#finished) this.#socket.end();
  }

  // -- ending ---------------------------------------------------------------

  /** Destroy the sockets if they have not closed within `goodbyeTimeoutMs`. */
  startGoodbyeTimer(): void {
    if (this.#goodbyeTimer !== undefined || this.#finished) return;
    this.#goodbyeTimer = this.#clock.setTimeout(() => {
      this.#goodbyeTimer = undefined;
      this.destroy();
    }, this.#limits.goodbyeTimeoutMs);
  }

  setupDone(): void {
    this.#setupDone = true;
  }

  signalClosing(reason: Error): void {
    this.#setup.abort(reason);
    this.#closing.abort(reason);
  }

  fail(reason: ConnectionCloseReason): void {
    this.#reason ??= reason;
    this.destroy();
  }

  destroy(error?: Error): void {
    // Only while PROXY or TLS set-up may be waiting on it: an error (and its stack) per closed session is pure cost.
    if (!this.#finished && !this.#setupDone) this.#setup.abort(error ?? new ListenerError('ERR_CONNECTION_DESTROYED', 'the connection was destroyed'));
    for (const socket of this.#sockets) socket.destroy(error);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    if (this.#idleTimer !== undefined) this.#clock.clearTimeout(this.#idleTimer);
    if (this.#goodbyeTimer !== undefined) this.#clock.clearTimeout(this.#goodbyeTimer);
    this.#idleTimer = undefined;
    this.#goodbyeTimer = undefined;
    this.#unobserve?.();
    if (!this.#setupDone && !this.#setup.signal.aborted) this.#setup.abort(new ListenerError('ERR_CONNECTION_CLOSED', 'the connection closed'));
    // One layer closing means the connection is over: take the others down too.
    for (const socket of this.#sockets) socket.destroy();
    const reason: ConnectionCloseReason = this.#reason ?? (this.#sawError ? 'error' : 'closed');
    this.#listener.finished(this, reason);
    this.#resolveClosed();
  }
}

