/**
 * The server side of a mail protocol on a real socket, shared by the SMTP
 * and POP3 servers (and any other line protocol whose session is a socketless
 * state machine): `bindSessionSocket` plugs one session into one listener
 * `Connection` — bytes in, writes with back-pressure, STARTTLS through
 * `upgradeServerSocket` (buffered plaintext dropped), pause/resume with the
 * idle clock, close with a goodbye timeout, idle and graceful-close signals.
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { systemClock } from './clock.js';
import { createListener } from './listener.js';
import type { CloseOptions, Connection, Listener, ListenerOptions, ListenOptions, ProxyProtocolOptions } from './listener.js';
import { upgradeServerSocket } from './starttls.js';

/** What `bindSessionSocket` needs of a protocol session. */
export interface SocketSession {
  /** Bytes from the client. */
  receive(chunk: Uint8Array): void;
  /** The client closed its side, the socket closed or failed, or STARTTLS failed. */
  end(): void;
  /** The STARTTLS handshake the session asked for is done. */
  tlsEstablished(): void;
  /** The listener's idle timeout fired: say goodbye. */
  idleTimeout(): void;
  /** The listener is closing gracefully: finish what is in flight, say goodbye. */
  shutdown(): void;
  /** Resolves when the session is over. */
  readonly closed: Promise<unknown>;
}

/** What a socketless server session writes to and asks of its connection (the SMTP and POP3 sessions' transport). */
export interface SessionTransport {
  /** Send bytes. Returns false when the socket's buffer is full (await `drain()`); bytes after close are dropped. */
  write(bytes: Uint8Array): boolean;
  /** Resolves when the socket's buffer has room again, or the socket closed. */
  drain(): Promise<void>;
  /**
   * Upgrade to TLS now (the go-ahead went out in the previous write): stop
   * reading plaintext, drop what the socket holds, and call the session's
   * `tlsEstablished()` after the handshake, or `end()` if it failed.
   */
  startTls(): void;
  /** End the socket once written bytes are flushed; destroy it if the peer has not closed within `goodbyeTimeoutMs`. */
  close(): void;
  /** Stop reading and stop the idle clock (the session is busy; the client is waiting for us). */
  pause(): void;
  /** Read again and restart the idle clock. */
  resume(): void;
}

/** The `SessionTransport` `bindSessionSocket` gives a session: its only way to the socket. */
export interface SessionSocketTransport extends SessionTransport {
  /** The socket in use now: the TLS one after STARTTLS. */
  readonly socket: net.Socket;
}

export interface SessionSocketOptions {
  /** Server TLS options for STARTTLS; without them `startTls()` does nothing. */
  readonly tls?: tls.TlsOptions;
  /** The idle timeout `resume()` restores, in ms. */
  readonly idleTimeoutMs: number;
  /** How long `close()` waits for the peer to close its side, in ms. Default 5000. */
  readonly goodbyeTimeoutMs?: number;
  /** The protocol's name for STARTTLS in logs (`'STLS'` in POP3). Default `'STARTTLS'`. */
  readonly startTlsName?: string;
  /** Default `systemClock`. */
  readonly clock?: Clock;
  /** Default silent. */
  readonly logger?: Logger;
}

/** `bindSessionSocket` defaults. */
export const sessionSocketDefaults = { goodbyeTimeoutMs: 5000 } as const;

/** What `bindSessionSocket` returns. */
export interface BoundSession<S extends SocketSession> {
  readonly session: S;
  readonly transport: SessionSocketTransport;
  /** Resolves when both the session and the connection are over: return it from `onConnection`. */
  readonly closed: Promise<void>;
}

/**
 * Create a session with `createSession(transport)` and wire it to the
 * connection's socket (Nagle off: replies of a pipelined group go out at
 * once). The caller starts the session. Socket errors are logged at debug
 * level and end the session.
 */
export function bindSessionSocket<S extends SocketSession>(connection: Connection, options: SessionSocketOptions, createSession: (transport: SessionSocketTransport) => S): BoundSession<S> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const goodbyeTimeoutMs = options.goodbyeTimeoutMs ?? sessionSocketDefaults.goodbyeTimeoutMs;
  const socket = connection.socket;
  socket.setNoDelay(true);
  let current: net.Socket = socket;
  let session: S | undefined = undefined;
  const onData = (chunk: Buffer): void => session?.receive(chunk);
  const onEnd = (): void => session?.end();
  const attach = (s: net.Socket): void => {
    current = s;
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('close', onEnd);
    s.on('error', (error) => {
      logger.debug({ connection: connection.id, err: error }, 'socket error');
      session?.end();
    });
  };
  const transport: SessionSocketTransport = {
    get socket() {
      return current;
    },
    write: (bytes) => {
      connection.touch();
      if (current.destroyed || current.writableEnded) return true;
      return current.write(bytes);
    },
    drain: () =>
      new Promise<void>((resolve) => {
        const s = current;
        if (s.destroyed || !s.writableNeedDrain) {
          resolve();
          return;
        }
        const done = (): void => {
          s.off('drain', done);
          s.off('close', done);
          resolve();
        };
        s.on('drain', done);
        s.on('close', done);
      }),
    startTls: () => {
      const plain = current;
      plain.removeListener('data', onData);
      plain.removeListener('end', onEnd);
      plain.removeListener('close', onEnd);
      if (options.tls === undefined) return;
      // Same tick as the go-ahead: upgradeServerSocket drains what the socket already holds (RFC 3207 §4.2, RFC 2595 §4).
      upgradeServerSocket(plain, options.tls, { clock, logger }).then(
        ({ socket: secure }) => {
          connection.replaceSocket(secure);
          attach(secure);
          session?.tlsEstablished();
        },
        (error: unknown) => {
          logger.info({ connection: connection.id, err: error }, `${options.startTlsName ?? 'STARTTLS'} handshake failed`);
          session?.end();
          plain.destroy();
        },
      );
    },
    close: () => {
      current.end();
      // A peer that never closes its side must not keep the socket…
      const s = current;
      const timer = clock.setTimeout(() => s.destroy(), goodbyeTimeoutMs);
      // …and a socket that did close must not be kept for goodbyeTimeoutMs by that timer.
      s.once('close', () => clock.clearTimeout(timer));
    },
    pause: () => {
      current.pause();
      connection.setIdleTimeout(0);
    },
    resume: () => {
      connection.setIdleTimeout(options.idleTimeoutMs);
      current.resume();
    },
  };
  const created = createSession(transport);
  session = created;
  attach(socket);
  connection.onIdle = () => created.idleTimeout();
  connection.closing.addEventListener('abort', () => created.shutdown(), { once: true });
  return { session: created, transport, closed: Promise.all([created.closed, connection.closed]).then(() => undefined) };
}

export interface SessionServerOptions extends Omit<ListenerOptions, 'tls' | 'proxyProtocol'> {
  /** Server TLS options: for implicit TLS with `secure: true`, else for the sessions' STARTTLS (not used by the listener). */
  readonly tls?: tls.TlsOptions;
  /** Implicit TLS on every connection (ports 465, 993, 995). Default false. */
  readonly secure?: boolean;
  /** Read a PROXY v1/v2 header from these proxies first. Default off. */
  readonly proxyProtocol?: ProxyProtocolOptions;
}

/** A protocol server: a listener and the calls most users need. */
export interface SessionServer extends AsyncDisposable {
  /** Bind an address (call again to bind several). Port 0 picks a free port. */
  listen(options: ListenOptions): Promise<net.AddressInfo>;
  /** The first bound address. */
  address(): net.AddressInfo | undefined;
  /** Graceful close (the listener's `close`). */
  close(options?: CloseOptions): Promise<void>;
  /** The listener underneath (stats, connections). */
  readonly listener: Listener;
  /** `close()` with the default timeout. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * `createListener` for a session protocol: implicit TLS only with
 * `secure: true`, PROXY off unless configured, and the listener behind the
 * `SessionServer` calls. Throws what `createListener` throws.
 */
export function createSessionServer(options: SessionServerOptions): SessionServer {
  const { secure, tls: tlsOptions, proxyProtocol, ...rest } = options;
  const listener = createListener({ ...rest, tls: secure === true ? tlsOptions : undefined, proxyProtocol: proxyProtocol ?? false });
  return {
    listener,
    listen: (listenOptions) => listener.listen(listenOptions),
    address: () => listener.address(),
    close: (closeOptions) => listener.close(closeOptions),
    [Symbol.asyncDispose]: () => listener.close(),
  };
}
