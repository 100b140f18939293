/**
 * The Node adapter of the SMTP server: the only layer that touches sockets,
 * TLS and timers. It runs wire's listener (limits, idle timeout, PROXY,
 * implicit TLS, graceful close) and plugs one `SmtpServerSession` per
 * connection into its socket with wire's `bindSessionSocket`.
 */
import { createHash } from 'node:crypto';
import { BlockList, isIPv6 } from 'node:net';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { bindSessionSocket, createSessionServer, systemClock } from '@pigeonpost/wire/node';
import type { CloseOptions, Connection, RejectInfo, SessionServer, SessionServerOptions } from '@pigeonpost/wire/node';
import { silentLogger } from '@pigeonpost/wire';
import type { ChannelBinding } from '@pigeonpost/wire';
import { SmtpError } from '../errors.js';
import { resolveSmtpLimits } from '../limits.js';
import type { SmtpListenerLimits } from '../limits.js';
import { createSmtpServerSession } from '../server/session.js';
import type { SmtpServerSessionOptions } from '../server/types.js';

/** How long a closed session's socket may wait for the peer to close its side. */
const GOODBYE_TIMEOUT_MS = 5000;

/** A SMTP server: wire's `SessionServer` (`listen`, `address`, `listener`, `await using`). */
export interface SmtpServer extends SessionServer {
  /** Graceful close: stop accepting, let each session finish its command or message, say 421, close. */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * Session options, listener limits, and wire's `SessionServerOptions`: `tls`
 * (enables STARTTLS, or implicit TLS on port 465 with `secure: true`),
 * `proxyProtocol`, `closeTimeoutMs` (default 30000), `clock` and `name`
 * (default `'smtp'`).
 */
export interface SmtpServerOptions
  extends Omit<SmtpServerSessionOptions, 'clock'>,
    Partial<SmtpListenerLimits>,
    Pick<SessionServerOptions, 'tls' | 'secure' | 'proxyProtocol' | 'closeTimeoutMs' | 'clock' | 'name'> {
  /** Offer Postfix's XCLIENT to clients in these networks (IPs and CIDRs). Default off. */
  readonly xclient?: { readonly trustedNetworks: readonly string[] };
}

/** Create an SMTP, submission or LMTP server on wire's listener. */
export function createSmtpServer(options: SmtpServerOptions): SmtpServer {
  if (options.secure === true && options.tls === undefined) throw new SmtpError('ERR_SMTP_CONFIG', 'secure: true needs tls options', { side: 'local' });
  const limits = resolveSmtpLimits(['idleTimeoutMs', 'maxConnections', 'maxConnectionsPerIp'], options);
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? silentLogger;
  const hostname = options.hostname ?? 'localhost';
  const xclientNetworks = options.xclient === undefined ? undefined : toBlockList(options.xclient.trustedNetworks);
  const sessionOptions: SmtpServerSessionOptions = { ...options, clock, logger };
  // Fail at start-up, not at the first connection, on bad session options.
  validateSessionOptions(sessionOptions);

  const onConnection = (connection: Connection): Promise<void> => {
    const remote = connection.remoteAddress;
    // RFC 2920: replies to a pipelined group are written at once (bindSessionSocket turns Nagle off).
    const { session, closed } = bindSessionSocket(connection, { tls: options.tls, idleTimeoutMs: limits.idleTimeoutMs, goodbyeTimeoutMs: GOODBYE_TIMEOUT_MS, clock, logger }, (transport) =>
      createSmtpServerSession(
        sessionOptions,
        // STARTTLS: the 220 went out in the previous write; the upgrade drops buffered plaintext (RFC 3207 §4.2).
        {
          ...transport,
          // While a hook runs: no idle timeout, but the socket keeps reading until bytes come (then the
          // session pauses it), so a hook that resolves at once costs no socket pause/resume.
          hold: () => connection.setIdleTimeout(0),
          release: () => connection.setIdleTimeout(limits.idleTimeoutMs),
          channelBindings: () => serverChannelBindings(transport.socket),
        },
        {
          id: connection.id,
          remoteAddress: remote,
          remotePort: connection.remotePort,
          localAddress: connection.localAddress,
          localPort: connection.localPort,
          secure: connection.secure,
          startTlsAvailable: options.tls !== undefined && !connection.secure,
          xclientAllowed: xclientNetworks !== undefined && xclientNetworks.check(remote, isIPv6(remote) ? 'ipv6' : 'ipv4'),
        },
      ),
    );
    void session.start().catch((error: unknown) => {
      logger.error({ connection: connection.id, err: error }, 'session start failed');
      connection.destroy();
    });
    return closed;
  };

  // Listener limits as resolved above; TLS, PROXY and close timeout as given.
  const { tls: tlsOptions, secure, proxyProtocol, closeTimeoutMs } = options;
  // RFC 5321 §3.8: 421 when the service is not available to this client now.
  const rejectMessage = (info: RejectInfo): string => (info.reason === 'closing' ? `421 4.3.2 ${hostname} Service shutting down\r\n` : `421 4.7.0 ${hostname} Too many connections, try again later\r\n`);
  return createSessionServer({ ...limits, name: options.name ?? 'smtp', onConnection, tls: tlsOptions, secure, proxyProtocol, closeTimeoutMs, clock, logger, rejectMessage });
}

/** OIDs of certificate signature algorithms → the hash RFC 5929 §4.1 uses for tls-server-end-point (MD5 and SHA-1 → SHA-256). */
const SIGNATURE_HASHES: ReadonlyMap<string, string> = new Map([
  ['1.2.840.113549.1.1.4', 'sha256'], // md5WithRSAEncryption
  ['1.2.840.113549.1.1.5', 'sha256'], // sha1WithRSAEncryption
  ['1.2.840.113549.1.1.11', 'sha256'],
  ['1.2.840.113549.1.1.12', 'sha384'],
  ['1.2.840.113549.1.1.13', 'sha512'],
  ['1.2.840.10045.4.1', 'sha256'], // ecdsa-with-SHA1
  ['1.2.840.10045.4.3.2', 'sha256'],
  ['1.2.840.10045.4.3.3', 'sha384'],
  ['1.2.840.10045.4.3.4', 'sha512'],
]);

/**
 * The channel bindings of a server-side TLS socket: `tls-exporter` (RFC 9266,
 * TLS 1.3 only) and `tls-server-end-point` (RFC 5929 §4: a hash of our
 * certificate, by its signature's hash). Empty on a plain socket.
 */
export function serverChannelBindings(socket: net.Socket | tls.TLSSocket): ChannelBinding[] {
  const s = socket as Partial<tls.TLSSocket>;
  if (typeof s.getProtocol !== 'function' || typeof s.getCertificate !== 'function') return [];
  const out: ChannelBinding[] = [];
  if (s.getProtocol() === 'TLSv1.3' && typeof s.exportKeyingMaterial === 'function') {
    out.push({ type: 'tls-exporter', data: new Uint8Array(s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0))) });
  }
  const cert = s.getCertificate();
  const raw = cert !== null && 'raw' in cert ? (cert as { raw?: Buffer }).raw : undefined;
  const hash = raw === undefined ? undefined : SIGNATURE_HASHES.get(signatureAlgorithmOid(raw) ?? '');
  // Other signature algorithms (RSASSA-PSS, EdDSA) have no tls-server-end-point hash defined: not offered.
  if (raw !== undefined && hash !== undefined) out.push({ type: 'tls-server-end-point', data: new Uint8Array(createHash(hash).update(raw).digest()) });
  return out;
}

/** The signatureAlgorithm OID of a DER certificate (RFC 5280 §4.1.1.2), read without a full ASN.1 parser. */
function signatureAlgorithmOid(der: Buffer): string | undefined {
  let at = 0;
  /** Reads a tag and length at `at`; returns the content's start and end. */
  const header = (expected: number): { start: number; end: number } | undefined => {
    if (der[at] !== expected) return undefined;
    let len = der[at + 1] ?? 0;
    let start = at + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n < 1 || n > 4) return undefined;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + (der[start + i] ?? 0);
      start += n;
    }
    return start + len <= der.length ? { start, end: start + len } : undefined;
  };
  const cert = header(0x30);
  if (cert === undefined) return undefined;
  at = cert.start;
  const tbs = header(0x30);
  if (tbs === undefined) return undefined;
  at = tbs.end;
  const algorithm = header(0x30);
  if (algorithm === undefined) return undefined;
  at = algorithm.start;
  const oid = header(0x06);
  if (oid === undefined) return undefined;
  const bytes = der.subarray(oid.start, oid.end);
  if (bytes.length === 0) return undefined;
  const parts = [Math.floor((bytes[0] ?? 0) / 40), (bytes[0] ?? 0) % 40];
  let value = 0;
  for (const b of bytes.subarray(1)) {
    value = value * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) {
      parts.push(value);
      value = 0;
    }
  }
  return parts.join('.');
}

function toBlockList(networks: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of networks) {
    const [address = '', prefix] = entry.split('/');
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefix === undefined) list.addAddress(address, type);
    else list.addSubnet(address, Number(prefix), type);
  }
  return list;
}

function validateSessionOptions(options: SmtpServerSessionOptions): void {
  // Constructing a session checks limits, extensions and AUTH set-up; its transport is never used.
  const noop = (): void => undefined;
  createSmtpServerSession(options, { write: noop, startTls: noop, close: noop, pause: noop, resume: noop }, { remoteAddress: '127.0.0.1' });
}
