/**
 * The Node adapter of the SMTP client: TCP or implicit TLS and STARTTLS
 * through wire's `openSocketTransport` / `SocketTransport` (plaintext after
 * the 220 is dropped, never read), timers from `systemClock`. The protocol itself is
 * `SmtpClientConnection` (src/client), which never touches a socket.
 */
import * as net from 'node:net';
import * as os from 'node:os';
import type { Clock } from '@pigeonpost/wire';
import { openSocketTransport, systemClock } from '@pigeonpost/wire/node';
import type { ClientSocketErrorFactory, ClientTlsConfig } from '@pigeonpost/wire/node';
import { SmtpClientError } from '../errors.js';
import { defaultSmtpClientLimits } from '../limits.js';
import { SmtpClientConnection } from '../client/connection.js';
import type { SmtpClientConnectionOptions, SmtpSecureMode } from '../client/connection.js';

export interface SmtpClientConnectOptions extends Omit<SmtpClientConnectionOptions, 'clock' | 'host' | 'port' | 'secure' | 'name'> {
  readonly host: string;
  /** Default 465 for `secure: 'implicit'`, 24 for LMTP, else 25 (use 587 for submission). */
  readonly port?: number;
  /**
   * Default `'starttls'`: TLS is required and certificates are verified.
   * `'opportunistic'` upgrades when the server offers STARTTLS and goes on in
   * plaintext otherwise — still verifying the certificate unless
   * `tls.rejectUnauthorized` is false. `'implicit'` is TLS from the first
   * byte (port 465, RFC 8314); `'none'` never uses TLS.
   */
  readonly secure?: SmtpSecureMode;
  /** TLS settings; `servername` defaults to `host`. Verification is on unless `rejectUnauthorized: false`. */
  readonly tls?: Partial<ClientTlsConfig>;
  /** Name for EHLO. Default: the host name if it is fully qualified, else the local address as an address literal. */
  readonly name?: string;
  readonly localAddress?: string;
  /** Default `systemClock`. */
  readonly clock?: Clock;
}

/** Connect failures in this package's error class (`ERR_SMTP_CLIENT_ABORTED`, `_CONNECTION`, `_TIMEOUT`). */
const createConnectError: ClientSocketErrorFactory = (reason, message, cause) =>
  new SmtpClientError(reason === 'aborted' ? 'ERR_SMTP_CLIENT_ABORTED' : reason === 'timeout' ? 'ERR_SMTP_CLIENT_TIMEOUT' : 'ERR_SMTP_CLIENT_CONNECTION', message, { side: 'none', cause });

/** RFC 5321 §4.1.3 address literal for the EHLO name. */
function addressLiteral(address: string | undefined): string {
  if (address === undefined || address === '') return '[127.0.0.1]';
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return `[${address.slice(7)}]`;
  return net.isIPv6(address) ? `[IPv6:${address}]` : `[${address}]`;
}

/**
 * An SMTP (or LMTP) client on a real connection. `SmtpClient.connect`
 * opens the session (greeting, EHLO, TLS, AUTH); `send` sends messages, any
 * number of them on one connection; `await using` sends QUIT and closes.
 */
export class SmtpClient extends SmtpClientConnection {
  /** Connect and open the session. Rejects with `SmtpClientError` or wire's `TlsError`. */
  static async connect(options: SmtpClientConnectOptions): Promise<SmtpClient> {
    const secure = options.secure ?? 'starttls';
    const clock = options.clock ?? systemClock;
    const port = options.port ?? (secure === 'implicit' ? 465 : options.lmtp === true ? 24 : 25);
    const connectTimeoutMs = options.limits?.connectTimeoutMs ?? defaultSmtpClientLimits.connectTimeoutMs;
    // TLS: `servername` defaults to `host`; the STARTTLS handshake is bounded by the connect timeout too.
    const transport = await openSocketTransport({ ...options, port, tlsMode: secure === 'implicit' ? 'implicit' : secure === 'starttls' || secure === 'opportunistic' ? 'starttls' : 'plain', timeoutMs: connectTimeoutMs, clock, createError: createConnectError });
    const hostname = os.hostname();
    const name = options.name ?? (hostname.includes('.') ? hostname : addressLiteral(transport.socket.localAddress));
    const client = new SmtpClient(transport, { ...options, secure, clock, name, host: options.host, port });
    await client.start();
    return client;
  }
}
