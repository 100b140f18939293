/**
 * The Node adapter of the POP3 server: the only layer that touches sockets,
 * TLS and timers. It runs wire's listener (connection limits, idle timeout,
 * PROXY, implicit TLS on 995, graceful close) and plugs one
 * `Pop3ServerSession` per connection into its socket with wire's
 * `bindSessionSocket`; STLS goes through wire's `upgradeServerSocket`, which
 * drops buffered plaintext.
 */
import { bindSessionSocket, createSessionServer, systemClock } from '@pigeonpost/wire/node';
import type { CloseOptions, Connection, RejectInfo, SessionServer, SessionServerOptions, SessionSocketTransport } from '@pigeonpost/wire/node';
import { silentLogger } from '@pigeonpost/wire';
import { Pop3Error } from '../errors.js';
import { resolvePop3Limits } from '../limits.js';
import type { Pop3ListenerLimits } from '../limits.js';
import { LoginDelayTracker } from '../server/login-delay.js';
import { createPop3ServerSession } from '../server/session.js';
import type { Pop3ServerSessionOptions, Pop3ServerTransport } from '../server/types.js';

/** How long a closed session's socket may wait for the peer to close its side. */
const GOODBYE_TIMEOUT_MS = 5000;

/** A POP3 server: wire's `SessionServer` (`listen`, `address`, `listener`, `await using`). */
export interface Pop3Server extends SessionServer {
  /** Graceful close: stop accepting, let each session finish its command, `-ERR [SYS/TEMP]`, close (no UPDATE). */
  close(options?: CloseOptions): Promise<void>;
}

/** Session options, listener limits, and wire's `tls` (STLS, or port 995 with `secure: true`), `secure`, `proxyProtocol`, `closeTimeoutMs`, `clock`, `name` (default `'pop3'`). */
export type Pop3ServerOptions = Omit<Pop3ServerSessionOptions, 'clock'> & Partial<Pop3ListenerLimits> & Pick<SessionServerOptions, 'tls' | 'secure' | 'proxyProtocol' | 'closeTimeoutMs' | 'clock' | 'name'>;

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
    // PIPELINING: responses of a group are written at once (bindSessionSocket turns Nagle off).
    const { session, closed } = bindSessionSocket(
      connection,
      // STLS: the +OK went out in the previous write; the upgrade drops buffered plaintext (RFC 2595 §4).
      { tls: options.tls, idleTimeoutMs: limits.idleTimeoutMs, goodbyeTimeoutMs: GOODBYE_TIMEOUT_MS, startTlsName: 'STLS', clock, logger },
      (transport) =>
        createPop3ServerSession(sessionOptions, withWritten(transport), {
          id: connection.id,
          remoteAddress: connection.remoteAddress,
          remotePort: connection.remotePort,
          localAddress: connection.localAddress,
          localPort: connection.localPort,
          secure: connection.secure,
          startTlsAvailable: options.tls !== undefined && !connection.secure,
        }),
    );
    session.start();
    return closed;
  };

  // Listener limits as resolved above; TLS, PROXY and close timeout as given.
  const { tls: tlsOptions, secure, proxyProtocol, closeTimeoutMs } = options;
  // RFC 3206 §4: SYS/TEMP, a temporary condition.
  const rejectMessage = (info: RejectInfo): string => (info.reason === 'closing' ? '-ERR [SYS/TEMP] Server shutting down\r\n' : '-ERR [SYS/TEMP] Too many connections, try again later\r\n');
  return createSessionServer({ ...limits, name: options.name ?? 'pop3', onConnection, tls: tlsOptions, secure, proxyProtocol, closeTimeoutMs, clock, logger, rejectMessage });
}

/**
 * wire's socket transport, plus `written()`: nothing left in the socket's
 * write buffer, so every buffer given to `write` has been handed to the
 * kernel (a write the kernel took whole completes inside `write`), and the
 * session may reuse its output memory.
 */
function withWritten(transport: SessionSocketTransport): Pop3ServerTransport {
  return {
    write: (bytes) => transport.write(bytes),
    drain: () => transport.drain(),
    written: () => transport.socket.writableLength === 0,
    startTls: () => transport.startTls(),
    close: () => transport.close(),
    pause: () => transport.pause(),
    resume: () => transport.resume(),
  };
}

function validateSessionOptions(options: Pop3ServerSessionOptions): void {
  const noop = (): void => undefined;
  createPop3ServerSession(options, { write: () => true, drain: () => Promise.resolve(), startTls: noop, close: noop, pause: noop, resume: noop }, { remoteAddress: '127.0.0.1' });
}
