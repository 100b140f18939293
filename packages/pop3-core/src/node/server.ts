/**
 * The Node adapter of the POP3 server: the only layer that touches sockets,
 * TLS and timers. It runs wire's listener (connection limits, idle timeout,
 * PROXY, implicit TLS on 995, graceful close) and plugs one
 * `Pop3ServerSession` per connection into its socket; STLS goes through
 * wire's `upgradeServerSocket`, which drops buffered plaintext.
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { createListener, systemClock, upgradeServerSocket } from '@pigeonpost/wire/node';
import type { Connection, Listener, ProxyProtocolOptions } from '@pigeonpost/wire/node';
import { silentLogger } from '@pigeonpost/wire';
import { Pop3Error } from '../errors.js';
import { resolvePop3Limits } from '../limits.js';
import type { Pop3ListenerLimits } from '../limits.js';
import { LoginDelayTracker } from '../server/login-delay.js';
import { createPop3ServerSession } from '../server/session.js';
import type { Pop3ServerSession } from '../server/session.js';
import type { Pop3ServerSessionOptions } from '../server/types.js';

/** How long a closed session's socket may wait for the peer to close its side. */
const GOODBYE_TIMEOUT_MS = 5000;

export interface Pop3ServerOptions extends Omit<Pop3ServerSessionOptions, 'clock'>, Partial<Pop3ListenerLimits> {
  /**
   * TLS options (from wire's `createServerTlsOptions`). With `secure: false`
   * (the default) they enable STLS; with `secure: true` every connection is
   * implicit TLS (port 995, RFC 8314).
   */
  readonly tls?: tls.TlsOptions;
  /** Implicit TLS. Needs `tls`. Default false. */
  readonly secure?: boolean;
  /** Read a PROXY v1/v2 header from these proxies first. Default off. */
  readonly proxyProtocol?: ProxyProtocolOptions;
  /** How long `close()` waits for sessions, in ms (wire's `closeTimeoutMs`, default 30000). */
  readonly closeTimeoutMs?: number;
  /** Default: wire's `systemClock`. */
  readonly clock?: Pop3ServerSessionOptions['clock'];
  /** A name for logs and diagnostics. Default `'pop3'`. */
  readonly name?: string;
}

export interface Pop3Server {
  /** Bind an address (call again to bind several). Port 0 picks a free port. */
  listen(options: { host?: string; port: number }): Promise<net.AddressInfo>;
  address(): net.AddressInfo | undefined;
  /** Graceful close: stop accepting, let each session finish its command, `-ERR [SYS/TEMP]`, close (no UPDATE). */
  close(options?: { timeoutMs?: number }): Promise<void>;
  readonly listener: Listener;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Create a POP3 server (port 110 with STLS, or 995 with `secure: true`) on wire's listener. */
export function createPop3Server(options: Pop3ServerOptions): Pop3Server {
  if (options.secure === true && options.tls === undefined) throw new Pop3Error('ERR_POP3_CONFIG', 'secure: true needs tls options', { side: 'local' });
  const limits = resolvePop3Limits(['idleTimeoutMs', 'maxConnections', 'maxConnectionsPerIp'], options);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const loginTracker = options.loginTracker ?? ((options.loginDelaySeconds ?? 0) > 0 ? new LoginDelayTracker() : undefined);
  const sessionOptions: Pop3ServerSessionOptions = { ...options, clock, logger, ...(loginTracker === undefined ? {} : { loginTracker }) };
  validateSessionOptions(sessionOptions);

  const onConnection = (connection: Connection): Promise<void> => {
    const socket = connection.socket;
    // PIPELINING: responses of a group are written at once; no Nagle delay on top.
    socket.setNoDelay(true);
    let current: net.Socket = socket;
    let session: Pop3ServerSession | undefined = undefined;
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
    session = createPop3ServerSession(
      sessionOptions,
      {
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
          const tlsOptions = options.tls;
          if (tlsOptions === undefined) return;
          // Same tick as the +OK: upgradeServerSocket drains what the socket already holds (RFC 2595 §4).
          upgradeServerSocket(plain, tlsOptions, { clock, logger }).then(
            ({ socket: secure }) => {
              connection.replaceSocket(secure);
              attach(secure);
              session?.tlsEstablished();
            },
            (error: unknown) => {
              logger.info({ connection: connection.id, err: error }, 'STLS handshake failed');
              session?.end();
              plain.destroy();
            },
          );
        },
        close: () => {
          current.end();
          const s = current;
          const timer = clock.setTimeout(() => s.destroy(), GOODBYE_TIMEOUT_MS);
          s.once('close', () => clock.clearTimeout(timer));
        },
        // The backend is working: stop reading and stop the idle clock (the client waits for us).
        pause: () => {
          current.pause();
          connection.setIdleTimeout(0);
        },
        resume: () => {
          connection.setIdleTimeout(limits.idleTimeoutMs);
          current.resume();
        },
      },
      {
        id: connection.id,
        remoteAddress: connection.remoteAddress,
        remotePort: connection.remotePort,
        localAddress: connection.localAddress,
        localPort: connection.localPort,
        secure: connection.secure,
        startTlsAvailable: options.tls !== undefined && !connection.secure,
      },
    );
    attach(socket);
    connection.onIdle = () => session?.idleTimeout();
    connection.closing.addEventListener('abort', () => session?.shutdown(), { once: true });
    session.start();
    return Promise.all([session.closed, connection.closed]).then(() => undefined);
  };

  const listener = createListener({
    name: options.name ?? 'pop3',
    onConnection,
    tls: options.secure === true ? options.tls : undefined,
    proxyProtocol: options.proxyProtocol ?? false,
    idleTimeoutMs: limits.idleTimeoutMs,
    maxConnections: limits.maxConnections,
    maxConnectionsPerIp: limits.maxConnectionsPerIp,
    closeTimeoutMs: options.closeTimeoutMs,
    clock,
    logger,
    // RFC 3206 §4: SYS/TEMP, a temporary condition.
    rejectMessage: (info) => (info.reason === 'closing' ? '-ERR [SYS/TEMP] Server shutting down\r\n' : '-ERR [SYS/TEMP] Too many connections, try again later\r\n'),
  });

  return {
    listener,
    listen: (listenOptions) => listener.listen(listenOptions),
    address: () => listener.address(),
    close: (closeOptions) => listener.close(closeOptions),
    [Symbol.asyncDispose]: () => listener.close(),
  };
}

function validateSessionOptions(options: Pop3ServerSessionOptions): void {
  const noop = (): void => undefined;
  createPop3ServerSession(options, { write: () => true, drain: () => Promise.resolve(), startTls: noop, close: noop, pause: noop, resume: noop }, { remoteAddress: '127.0.0.1' });
}
