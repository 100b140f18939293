/**
 * The Node adapter of the POP3 client: TCP or implicit TLS (995) and STLS
 * through wire's `openSocketTransport` / `SocketTransport` (plaintext after
 * the +OK is dropped, never read), timers from `systemClock`. The protocol itself is
 * `Pop3ClientConnection` (src/client), which never touches a socket.
 */
import type { Clock } from '@pigeonpost/wire';
import { openSocketTransport, systemClock } from '@pigeonpost/wire/node';
import type { ClientSocketErrorFactory, ClientTlsConfig } from '@pigeonpost/wire/node';
import { Pop3ClientError } from '../errors.js';
import { defaultPop3ClientLimits } from '../limits.js';
import { Pop3ClientConnection } from '../client/connection.js';
import type { Pop3ClientConnectionOptions, Pop3SecureMode } from '../client/connection.js';

export interface Pop3ClientConnectOptions extends Omit<Pop3ClientConnectionOptions, 'clock' | 'host' | 'port' | 'secure'> {
  readonly host: string;
  /** Default 995 for `secure: 'implicit'`, else 110. */
  readonly port?: number;
  /**
   * Default `'starttls'`: STLS is required (no silent downgrade) and the
   * certificate is verified. `'implicit'` is TLS from the first byte (port
   * 995, RFC 8314); `'none'` never uses TLS.
   */
  readonly secure?: Pop3SecureMode;
  /** TLS settings; `servername` defaults to `host`. Verification is on unless `rejectUnauthorized: false`. */
  readonly tls?: Partial<ClientTlsConfig>;
  readonly localAddress?: string;
  /** Default `systemClock`. */
  readonly clock?: Clock;
}

/** Connect failures in this package's error class (`ERR_POP3_CLIENT_ABORTED`, `_CONNECTION`, `_TIMEOUT`). */
const createConnectError: ClientSocketErrorFactory = (reason, message, cause) =>
  new Pop3ClientError(reason === 'aborted' ? 'ERR_POP3_CLIENT_ABORTED' : reason === 'timeout' ? 'ERR_POP3_CLIENT_TIMEOUT' : 'ERR_POP3_CLIENT_CONNECTION', message, { side: 'none', cause });

/**
 * A POP3 client on a real connection. `Pop3Client.connect` opens the session
 * (greeting, CAPA, STLS, login); `await using` sends QUIT and closes.
 */
export class Pop3Client extends Pop3ClientConnection {
  /** Connect and open the session. Rejects with `Pop3ClientError` or wire's `TlsError`. */
  static async connect(options: Pop3ClientConnectOptions): Promise<Pop3Client> {
    const secure = options.secure ?? 'starttls';
    const clock = options.clock ?? systemClock;
    const port = options.port ?? (secure === 'implicit' ? 995 : 110);
    const connectTimeoutMs = options.limits?.connectTimeoutMs ?? defaultPop3ClientLimits.connectTimeoutMs;
    // TLS: `servername` defaults to `host`; the STARTTLS handshake is bounded by the connect timeout too.
    const transport = await openSocketTransport({ ...options, port, tlsMode: secure === 'implicit' ? 'implicit' : secure === 'starttls' ? 'starttls' : 'plain', timeoutMs: connectTimeoutMs, clock, createError: createConnectError });
    const client = new Pop3Client(transport, { ...options, secure, clock, host: options.host, port });
    await client.start();
    return client;
  }
}
