/**
 * TLS for every Pigeonpost protocol: secure defaults for server and client
 * contexts, implicit TLS on both sides (`acceptTls`, `connectTls`), and the
 * one handshake routine that STARTTLS (./starttls.ts) reuses.
 *
 * Secure by default (DESIGN.md "TLS first"): TLS 1.2 is the floor, TLS 1.2
 * suites are ECDHE + AEAD only, and clients verify the server certificate
 * and its name unless told otherwise in so many words.
 */
import { channel } from 'node:diagnostics_channel';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type * as net from 'node:net';
import * as tls from 'node:tls';
import type { Clock, TimerHandle } from '../clock.js';
import { channels } from '../diagnostics.js';
import { CertificateError, TlsError } from '../errors.js';
import { defaultLimits } from '../limits.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import { systemClock } from './clock.js';

// ---------------------------------------------------------------------------
// Defaults

/**
 * TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers only
 * — the "intermediate" profile of Mozilla's server-side TLS guidelines, which
 * every mail client of the last ten years supports. No RSA key exchange, no
 * CBC, no SHA-1 MACs. The TLS 1.3 suites are listed too: Node disables TLS 1.3
 * when the `ciphers` string names none.
 */
export const DEFAULT_TLS_CIPHERS: string = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The lowest protocol version configured unless `dangerouslyAllowTlsBelow12` is set. RFC 8996 deprecates TLS 1.0 and 1.1. */
export const DEFAULT_TLS_MIN_VERSION = 'TLSv1.2' satisfies tls.SecureVersion;

/** Versions RFC 8996 forbids. Configuring one takes `dangerouslyAllowTlsBelow12: true`. */
const LEGACY_VERSIONS: ReadonlySet<string> = new Set(['TLSv1', 'TLSv1.1']);

/** Longest delay a Node timer accepts (2^31 - 1 ms); used to keep Node's own handshake timer out of the way of ours. */
const MAX_TIMER_MS = 2_147_483_647;

// ---------------------------------------------------------------------------
// Key material

/** A PEM-encoded key or certificate (chain), as text or bytes. File paths are not accepted here: use `loadKeyCertFiles`. */
export type PemInput = string | Buffer;

/** One certificate (with its chain, leaf first) and its private key. */
export interface KeyCertPair {
  readonly key: PemInput;
  readonly cert: PemInput;
  /** Passphrase of an encrypted private key. */
  readonly passphrase?: string;
}

/** Paths to PEM files, for `loadKeyCertFiles`. */
export interface KeyCertFiles {
  readonly key: string;
  readonly cert: string;
  /** CA certificate file(s): the dev CA, or the CAs that sign client certificates. */
  readonly ca?: string | readonly string[];
}

/** The contents of the files named by `KeyCertFiles`. */
export interface LoadedKeyCert {
  readonly key: Buffer;
  readonly cert: Buffer;
  readonly ca?: readonly Buffer[];
}

/**
 * Read a key, a certificate and optional CA files from disk. Kept apart from
 * `createServerTlsOptions`, which only takes PEM contents: a string there is
 * never guessed to be a path. Rejects with CertificateError `ERR_CERT_READ`.
 */
export async function loadKeyCertFiles(files: KeyCertFiles): Promise<LoadedKeyCert> {
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (cause) {
      throw new CertificateError('ERR_CERT_READ', `cannot read TLS ${what} file ${path}: ${(cause as Error).message}`, { cause });
    }
  };
  const caPaths = files.ca === undefined ? [] : typeof files.ca === 'string' ? [files.ca] : files.ca;
  const [key, cert, ...ca] = await Promise.all([read(files.key, 'key'), read(files.cert, 'certificate'), ...caPaths.map((p) => read(p, 'CA'))]);
  return files.ca === undefined ? { key, cert } : { key, cert, ca };
}

function configError(message: string, cause?: unknown): TlsError {
  return new TlsError('ERR_TLS_CONFIG', message, cause === undefined ? {} : { cause });
}

/** Refuse anything that is not PEM: a string that is not PEM is most likely a file path passed by mistake. */
function checkPem(value: unknown, what: string): void {
  const text = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('latin1', 0, Math.min(value.length, 64 * 1024)) : undefined;
  if (text === undefined) throw configError(`TLS ${what} must be a PEM string or Buffer`);
  if (!text.includes('-----BEGIN ')) {
    throw configError(`TLS ${what} is not PEM${typeof value === 'string' && text.length < 4096 ? ' (a file path? read files with loadKeyCertFiles)' : ''}`);
  }
}

function checkPemList(value: PemInput | readonly PemInput[] | undefined, what: string): void {
  if (value === undefined) return;
  for (const item of Array.isArray(value) ? (value as readonly PemInput[]) : [value as PemInput]) checkPem(item, what);
}

// ---------------------------------------------------------------------------
// Versions and ciphers shared by both sides

interface VersionOptions {
  /** Lowest protocol version. Default and floor `'TLSv1.2'`; lower needs `dangerouslyAllowTlsBelow12`. */
  readonly minVersion?: tls.SecureVersion;
  /** Highest protocol version. Default: Node's (TLS 1.3). */
  readonly maxVersion?: tls.SecureVersion;
  /**
   * Allow `minVersion` below TLS 1.2 (RFC 8996 forbids TLS 1.0 and 1.1). Only
   * for interop with hardware that cannot be fixed. OpenSSL 3 may still refuse
   * these versions at its default security level.
   */
  readonly dangerouslyAllowTlsBelow12?: boolean;
  /** OpenSSL cipher string. Default `DEFAULT_TLS_CIPHERS`. */
  readonly ciphers?: string;
  /** Where configuration warnings go (verification disabled, legacy versions). Default silent. */
  readonly logger?: Logger;
}

function versionSettings(options: VersionOptions, side: 'server' | 'client'): Pick<tls.SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers'> {
  const minVersion = options.minVersion ?? DEFAULT_TLS_MIN_VERSION;
  if (LEGACY_VERSIONS.has(minVersion)) {
    if (options.dangerouslyAllowTlsBelow12 !== true) {
      throw new TlsError(
        'ERR_TLS_INSECURE_VERSION',
        `refusing ${side} minVersion ${minVersion}: TLS 1.0 and 1.1 are deprecated (RFC 8996); set dangerouslyAllowTlsBelow12: true to allow them`,
      );
    }
    (options.logger ?? silentLogger).warn({ side, minVersion }, 'TLS versions below 1.2 are allowed (dangerouslyAllowTlsBelow12)');
  } else if (minVersion !== 'TLSv1.2' && minVersion !== 'TLSv1.3') {
    throw configError(`unknown TLS minVersion ${String(minVersion)}`);
  }
  const out: { minVersion: tls.SecureVersion; maxVersion?: tls.SecureVersion; ciphers: string } = {
    minVersion,
    ciphers: options.ciphers ?? DEFAULT_TLS_CIPHERS,
  };
  if (options.maxVersion !== undefined) out.maxVersion = options.maxVersion;
  return out;
}

// ---------------------------------------------------------------------------
// Server options

export interface ServerTlsConfig extends KeyCertPair, VersionOptions {
  /**
   * More certificates, chosen by the SNI name the client sends (RFC 6066 §3).
   * Keys are host names, or `*.example.com` wildcards matching exactly one
   * label; matching is case-insensitive and an exact name wins over a
   * wildcard. Names that match nothing (and clients that send no SNI) get
   * `key`/`cert`.
   */
  readonly sni?: Readonly<Record<string, KeyCertPair>> | ReadonlyMap<string, KeyCertPair>;
  /** CAs trusted for client certificates (with `requestCert`). */
  readonly ca?: PemInput | readonly PemInput[];
  /** Ask clients for a certificate. Default false. */
  readonly requestCert?: boolean;
  /** With `requestCert`: drop clients whose certificate does not verify against `ca`. Default true. */
  readonly rejectUnauthorized?: boolean;
  /** ALPN protocol names to offer, most preferred first. */
  readonly ALPNProtocols?: readonly string[];
  /** Seconds a TLS session may be resumed. Default Node's (300). */
  readonly sessionTimeout?: number;
}

/**
 * Build `tls.TlsOptions` for a server (for `acceptTls`, `upgradeServerSocket`
 * or `tls.createServer`) with secure defaults: TLS 1.2 minimum, ECDHE + AEAD
 * suites, the server's cipher order, and an SNI callback when `sni` is given.
 * Every certificate is loaded once here, so a bad key fails now, with
 * TlsError `ERR_TLS_CONFIG`, not at the first handshake.
 */
export function createServerTlsOptions(config: ServerTlsConfig): tls.TlsOptions {
  checkPem(config.key, 'key');
  checkPem(config.cert, 'certificate');
  checkPemList(config.ca, 'CA');
  const versions = versionSettings(config, 'server');
  const base: tls.SecureContextOptions = { ...versions, honorCipherOrder: true };
  const options: tls.TlsOptions = {
    ...base,
    key: config.key,
    cert: config.cert,
    requestCert: config.requestCert === true,
    rejectUnauthorized: config.rejectUnauthorized !== false,
  };
  if (config.passphrase !== undefined) options.passphrase = config.passphrase;
  if (config.ca !== undefined) options.ca = toPemArray(config.ca);
  if (config.ALPNProtocols !== undefined) options.ALPNProtocols = [...config.ALPNProtocols];
  if (config.sessionTimeout !== undefined) options.sessionTimeout = config.sessionTimeout;
  // Load the default certificate once to fail early on a bad key, a key that
  // does not match its certificate, or an unknown cipher string.
  createContext({ ...base, key: config.key, cert: config.cert, passphrase: config.passphrase, ca: options.ca }, 'default certificate');
  if (config.sni !== undefined) {
    options.SNICallback = createSniCallback(config.sni, { ...base, ca: options.ca });
  }
  return options;
}

function toPemArray(value: PemInput | readonly PemInput[]): PemInput[] {
  return Array.isArray(value) ? [...(value as readonly PemInput[])] : [value as PemInput];
}

function createContext(options: tls.SecureContextOptions, what: string): tls.SecureContext {
  try {
    return tls.createSecureContext(options);
  } catch (cause) {
    throw configError(`invalid TLS configuration for ${what}: ${(cause as Error).message}`, cause);
  }
}

/** Lower-case and drop one trailing dot: SNI names compare case-insensitively (RFC 6066 §3, RFC 4343). */
function normalizeHostName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * An SNI callback choosing among several certificates. Exported for servers
 * that build their own options; `createServerTlsOptions({ sni })` uses it.
 * Contexts are built once, here. The callback answers `undefined` for an
 * unknown name, which makes Node keep the server's default certificate.
 */
export function createSniCallback(
  certificates: Readonly<Record<string, KeyCertPair>> | ReadonlyMap<string, KeyCertPair>,
  contextOptions: tls.SecureContextOptions = { minVersion: DEFAULT_TLS_MIN_VERSION, ciphers: DEFAULT_TLS_CIPHERS, honorCipherOrder: true },
): NonNullable<tls.TlsOptions['SNICallback']> {
  const exact = new Map<string, tls.SecureContext>();
  // Wildcards keyed by the parent domain: '*.example.com' → 'example.com'.
  const wildcard = new Map<string, tls.SecureContext>();
  const entries: [string, KeyCertPair][] =
    certificates instanceof Map ? [...(certificates as ReadonlyMap<string, KeyCertPair>)] : Object.entries(certificates as Readonly<Record<string, KeyCertPair>>);
  for (const [pattern, pair] of entries) {
    checkPem(pair.key, `key for SNI name ${pattern}`);
    checkPem(pair.cert, `certificate for SNI name ${pattern}`);
    const name = normalizeHostName(pattern);
    const context = createContext({ ...contextOptions, key: pair.key, cert: pair.cert, passphrase: pair.passphrase }, `SNI name ${pattern}`);
    if (name.startsWith('*.')) {
      const parent = name.slice(2);
      // RFC 6125 §6.4.3: the wildcard is the whole left-most label, nothing else.
      if (parent === '' || parent.includes('*')) throw configError(`invalid SNI wildcard ${pattern}: only a leading '*.' label is allowed`);
      wildcard.set(parent, context);
    } else {
      if (name === '' || name.includes('*')) throw configError(`invalid SNI name ${pattern}`);
      exact.set(name, context);
    }
  }
  return (servername, callback) => {
    const name = normalizeHostName(servername);
    let context = exact.get(name);
    if (context === undefined) {
      const dot = name.indexOf('.');
      // '*.example.com' matches 'mail.example.com' but not 'example.com' nor 'a.b.example.com'.
      if (dot > 0) context = wildcard.get(name.slice(dot + 1));
    }
    callback(null, context);
  };
}

// ---------------------------------------------------------------------------
// Client options

export interface ClientTlsConfig extends VersionOptions {
  /**
   * The name the server certificate must carry: sent as SNI and checked
   * against the certificate's subjectAltName (RFC 6125). An IP address is
   * checked against IP SANs and not sent as SNI (RFC 6066 §3 forbids it).
   */
  readonly servername: string;
  /** CAs to trust instead of Node's bundled roots (e.g. the dev CA). */
  readonly ca?: PemInput | readonly PemInput[];
  /**
   * Verify the server certificate and its name. Default true. `false` makes
   * the connection open to any man in the middle; it is logged as a warning
   * and announced once per process with `process.emitWarning`.
   */
  readonly rejectUnauthorized?: boolean;
  /** Client certificate and key, for servers that ask for one. */
  readonly key?: PemInput;
  readonly cert?: PemInput;
  readonly passphrase?: string;
  /** ALPN protocol names to offer. */
  readonly ALPNProtocols?: readonly string[];
}

let insecureWarned = false;

/**
 * Build `tls.ConnectionOptions` for a client (for `connectTls`,
 * `upgradeClientSocket` or `tls.connect`). Certificate verification is on;
 * turning it off takes an explicit `rejectUnauthorized: false`.
 */
export function createClientTlsOptions(config: ClientTlsConfig): tls.ConnectionOptions {
  if (typeof config.servername !== 'string' || config.servername === '') {
    throw configError('createClientTlsOptions needs the servername the certificate must match');
  }
  checkPemList(config.ca, 'CA');
  if (config.key !== undefined) checkPem(config.key, 'client key');
  if (config.cert !== undefined) checkPem(config.cert, 'client certificate');
  const options: tls.ConnectionOptions = {
    ...versionSettings(config, 'client'),
    rejectUnauthorized: config.rejectUnauthorized !== false,
  };
  const name = config.servername;
  if (isIP(name) === 0) {
    options.servername = normalizeHostName(name);
  } else {
    // No SNI for an IP (RFC 6066 §3), but still check the IP against the certificate's IP SANs.
    options.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(name, cert);
  }
  if (config.ca !== undefined) options.ca = toPemArray(config.ca);
  if (config.key !== undefined) options.key = config.key;
  if (config.cert !== undefined) options.cert = config.cert;
  if (config.passphrase !== undefined) options.passphrase = config.passphrase;
  if (config.ALPNProtocols !== undefined) options.ALPNProtocols = [...config.ALPNProtocols];
  if (config.rejectUnauthorized === false) {
    (config.logger ?? silentLogger).warn({ servername: name }, 'TLS certificate verification is DISABLED (rejectUnauthorized: false)');
    if (!insecureWarned) {
      insecureWarned = true;
      process.emitWarning(`TLS certificate verification is disabled for ${name} (rejectUnauthorized: false)`, {
        code: 'PIGEONPOST_TLS_VERIFY_DISABLED',
      });
    }
  }
  return options;
}

// ---------------------------------------------------------------------------
// Handshakes

export interface TlsHandshakeOptions {
  /** Longest time the handshake may take, in ms. Default `defaultLimits.tlsHandshakeTimeoutMs` (30 s); 0 means no timeout. */
  readonly timeoutMs?: number;
  /** Aborting destroys the socket and rejects with `ERR_ABORTED`. */
  readonly signal?: AbortSignal;
  /** Timers come from here. Default `systemClock`. */
  readonly clock?: Clock;
}

function handshakeTimeout(options: TlsHandshakeOptions): number {
  const ms = options.timeoutMs ?? defaultLimits.tlsHandshakeTimeoutMs;
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms < 0) throw new RangeError(`timeoutMs must be a number >= 0, got ${String(ms)}`);
  return ms;
}

/** Publish the outcome of a handshake; nothing but the socket, the protocol parameters and the error (never key material). */
const secureChannel = channel(channels.tlsSecure);
const errorChannel = channel(channels.tlsError);

function publishSecure(socket: tls.TLSSocket): void {
  if (!secureChannel.hasSubscribers) return;
  const cipher = socket.getCipher() as tls.CipherNameAndProtocol | undefined;
  secureChannel.publish({
    socket,
    protocol: socket.getProtocol(),
    cipher: cipher?.standardName ?? cipher?.name ?? null,
    servername: (socket as { servername?: string | false | null }).servername || null,
  });
}

function publishError(socket: net.Socket, error: TlsError): void {
  if (errorChannel.hasSubscribers) errorChannel.publish({ socket, error });
}

/** The error codes of Node and OpenSSL that mean "the certificate did not verify". */
const UNTRUSTED_CODES: ReadonlySet<string> = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'CERT_REVOKED',
]);

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Turn whatever Node reported into a TlsError with a stable code, keeping the original as `cause`. */
function toTlsError(err: unknown, role: 'server' | 'client', servername: string | undefined): TlsError {
  if (TlsError.isInstance(err)) return err;
  const code = errorCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (role === 'client' && code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new TlsError('ERR_TLS_CERT_NAME_MISMATCH', `server certificate is not valid for ${servername ?? 'the requested name'}: ${detail}`, {
      side: 'remote',
      cause: err,
    });
  }
  if (role === 'client' && code !== undefined && UNTRUSTED_CODES.has(code)) {
    return new TlsError('ERR_TLS_CERT_UNTRUSTED', `server certificate is not trusted (${code}): ${detail}`, { side: 'remote', cause: err });
  }
  return new TlsError('ERR_TLS_HANDSHAKE', `TLS handshake failed (${role}${code === undefined ? '' : `, ${code}`}): ${detail}`, { cause: err });
}

/**
 * Settles one handshake: exactly once, with the timer and the abort listener
 * cleaned up, and the sockets destroyed on failure.
 */
class HandshakeGuard {
  private settled = false;
  private timer: TimerHandle | undefined;
  private readonly clock: Clock;
  private readonly onAbort = (): void => {
    this.fail(new TlsError('ERR_ABORTED', 'TLS handshake aborted', { cause: this.signal?.reason }));
  };

  constructor(
    readonly raw: net.Socket,
    private readonly role: 'server' | 'client',
    private readonly servername: string | undefined,
    private readonly signal: AbortSignal | undefined,
    private readonly resolveFn: (socket: tls.TLSSocket) => void,
    private readonly rejectFn: (err: TlsError) => void,
    options: TlsHandshakeOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    const ms = handshakeTimeout(options);
    if (ms > 0) {
      this.timer = this.clock.setTimeout(() => {
        this.fail(new TlsError('ERR_TLS_HANDSHAKE_TIMEOUT', `TLS handshake did not finish within ${ms} ms`, { side: 'remote' }));
      }, ms);
    }
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** The TLS socket, once known; destroyed along with the raw one on failure. */
  tlsSocket: tls.TLSSocket | undefined;
  /** Runs once when the handshake settles, either way. */
  onSettle: (() => void) | undefined;

  get done(): boolean {
    return this.settled;
  }

  succeed(socket: tls.TLSSocket): void {
    if (this.settled) return;
    this.cleanup();
    if (socket !== this.raw) protectUnderlying(this.raw, socket);
    publishSecure(socket);
    this.resolveFn(socket);
  }

  fail(err: unknown): void {
    if (this.settled) return;
    this.cleanup();
    const error = toTlsError(err, this.role, this.servername);
    this.tlsSocket?.destroy();
    this.raw.destroy();
    publishError(this.tlsSocket ?? this.raw, error);
    this.rejectFn(error);
  }

  private cleanup(): void {
    this.settled = true;
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    this.onSettle?.();
  }
}

/**
 * Node 20 crashes (SIGSEGV in TLSWrap) when the plain socket under a TLS socket
 * is destroyed and the TLS socket is then destroyed in the same tick — the
 * family of nodejs/node#49307. Owners of the plain socket (a listener closing
 * every connection it accepted) do exactly that. So once the TLS socket
 * exists, destroying the plain socket destroys the TLS socket first, which is
 * the order Node handles.
 */
function protectUnderlying(raw: net.Socket, tlsSocket: tls.TLSSocket): void {
  const destroyRaw = raw.destroy.bind(raw);
  raw.destroy = (error?: Error): net.Socket => {
    if (!tlsSocket.destroyed) tlsSocket.destroy();
    return destroyRaw(error);
  };
}

/** Reject early for sockets that cannot carry a handshake. */
function precheck(socket: net.Socket, signal: AbortSignal | undefined): TlsError | undefined {
  if (signal?.aborted === true) return new TlsError('ERR_ABORTED', 'TLS handshake aborted before it started', { cause: signal.reason });
  if ((socket as Partial<tls.TLSSocket>).encrypted === true) return new TlsError('ERR_TLS_ALREADY_SECURE', 'the socket already speaks TLS', { side: 'local' });
  if (socket.destroyed) return new TlsError('ERR_TLS_HANDSHAKE', 'TLS handshake failed: the socket is already closed');
  return undefined;
}

/**
 * Node runs the server half of a handshake completely — client-certificate
 * verification, SNI, session resumption — only for TLS sockets a `tls.Server`
 * creates. So a `tls.Server` that never listens is made per options object
 * (cached, so certificates are parsed once and session tickets work), and
 * accepted sockets are handed to it as if it had accepted them.
 */
interface Handoff {
  readonly server: tls.Server;
  readonly pending: Map<net.Socket, HandshakeGuard>;
}

const handoffs = new WeakMap<tls.TlsOptions, Handoff>();

/** The plain socket a server-side TLSSocket wraps (Node keeps it as `_parent`). */
function parentOf(socket: tls.TLSSocket): net.Socket | undefined {
  return (socket as unknown as { _parent?: net.Socket })._parent;
}

function handoffFor(tlsOptions: tls.TlsOptions): Handoff {
  let handoff = handoffs.get(tlsOptions);
  if (handoff !== undefined) return handoff;
  let server: tls.Server;
  try {
    // Our clock owns the handshake timeout; Node's own timer (120 s unless set) is pushed out of the way.
    server = new tls.Server({ ...tlsOptions, handshakeTimeout: MAX_TIMER_MS });
  } catch (cause) {
    throw configError(`invalid server TLS options: ${(cause as Error).message}`, cause);
  }
  const pending = new Map<net.Socket, HandshakeGuard>();
  server.on('secureConnection', (socket: tls.TLSSocket) => {
    const raw = parentOf(socket);
    const guard = raw === undefined ? undefined : pending.get(raw);
    if (guard === undefined) return;
    pending.delete(guard.raw);
    guard.succeed(socket);
  });
  server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
    const raw = parentOf(socket);
    const guard = raw === undefined ? undefined : pending.get(raw);
    if (guard === undefined) return;
    pending.delete(guard.raw);
    // A client certificate refused under requestCert + rejectUnauthorized shows up as a bare hang-up; say why.
    const refused = socket.authorizationError;
    guard.fail(refused ? new Error(`client certificate rejected: ${String(refused)}`, { cause: err }) : err);
  });
  handoff = { server, pending };
  handoffs.set(tlsOptions, handoff);
  return handoff;
}

/**
 * Server side: wrap an accepted plain socket in TLS and resolve once the
 * handshake is done. Rejects with TlsError (codes ERR_TLS_HANDSHAKE,
 * ERR_TLS_HANDSHAKE_TIMEOUT, ERR_ABORTED) and destroys the socket on failure.
 *
 * Call it before reading anything from the socket: bytes already in the
 * socket's readable buffer are taken as the start of the client's hello.
 * (STARTTLS, where earlier bytes are plaintext, goes through
 * `upgradeServerSocket`, which discards them first.) Attach an `'error'`
 * listener to the resolved socket: from then on errors are yours.
 */
export function acceptTls(socket: net.Socket, tlsOptions: tls.TlsOptions, options: TlsHandshakeOptions = {}): Promise<tls.TLSSocket> {
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const early = precheck(socket, options.signal);
    if (early !== undefined) {
      socket.destroy();
      publishError(socket, early);
      reject(early);
      return;
    }
    let handoff: Handoff;
    let guard: HandshakeGuard;
    try {
      guard = new HandshakeGuard(socket, 'server', undefined, options.signal, resolve, reject, options);
      handoff = handoffFor(tlsOptions);
    } catch (err) {
      socket.destroy();
      const error = TlsError.isInstance(err) ? err : configError((err as Error).message, err);
      reject(error);
      return;
    }
    handoff.pending.set(socket, guard);
    // If the peer or our own code closes the plain socket first, the TLS layer may say nothing useful.
    const onClose = (): void => {
      handoff.pending.delete(socket);
      guard.fail(new Error('socket closed during the TLS handshake'));
    };
    socket.once('close', onClose);
    guard.onSettle = () => socket.off('close', onClose);
    // Runs tls.Server's connection listener synchronously: it wraps the socket's handle, so from here on
    // every byte the kernel delivers goes to OpenSSL.
    handoff.server.emit('connection', socket);
  });
}

/**
 * @internal Used by ./starttls.ts (`upgradeClientSocket`); not part of the public surface.
 * Client side of a handshake on an existing plain socket.
 * `tls.connect({ socket })` rather than `new TLSSocket()`: only the former
 * verifies the certificate chain and the server's name.
 */
export function startClientHandshake(socket: net.Socket, tlsOptions: tls.ConnectionOptions, options: TlsHandshakeOptions = {}): Promise<tls.TLSSocket> {
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    const early = precheck(socket, options.signal);
    if (early !== undefined) {
      socket.destroy();
      publishError(socket, early);
      reject(early);
      return;
    }
    const servername = expectedName(tlsOptions);
    if (servername === undefined && tlsOptions.checkServerIdentity === undefined && tlsOptions.rejectUnauthorized !== false) {
      socket.destroy();
      reject(configError('a client handshake needs the servername to verify (build the options with createClientTlsOptions)'));
      return;
    }
    let guard: HandshakeGuard;
    let tlsSocket: tls.TLSSocket;
    try {
      guard = new HandshakeGuard(socket, 'client', servername, options.signal, resolve, reject, options);
      tlsSocket = tls.connect({ ...tlsOptions, socket });
    } catch (err) {
      socket.destroy();
      reject(TlsError.isInstance(err) ? err : configError(`invalid client TLS options: ${(err as Error).message}`, err));
      return;
    }
    guard.tlsSocket = tlsSocket;
    watchClient(tlsSocket, guard);
  });
}

function expectedName(options: tls.ConnectionOptions): string | undefined {
  return options.servername ?? options.host;
}

function watchClient(tlsSocket: tls.TLSSocket, guard: HandshakeGuard): void {
  const onError = (err: Error): void => guard.fail(err);
  const onClose = (): void => guard.fail(new Error('connection closed during the TLS handshake'));
  tlsSocket.on('error', onError);
  tlsSocket.once('close', onClose);
  tlsSocket.once('secureConnect', () => {
    tlsSocket.off('error', onError);
    tlsSocket.off('close', onClose);
    guard.succeed(tlsSocket);
  });
}

export interface ConnectTlsOptions extends Omit<ClientTlsConfig, 'servername'>, TlsHandshakeOptions {
  readonly host: string;
  readonly port: number;
  /** The name to verify; default `host`. */
  readonly servername?: string;
  /** Local address to connect from. */
  readonly localAddress?: string;
  /** More `tls.connect` options, applied after the secure defaults (except `rejectUnauthorized`, which only the option above sets). */
  readonly tls?: tls.ConnectionOptions;
}

/**
 * Client side of implicit TLS (ports 465, 993, 995): connect and resolve a
 * verified `tls.TLSSocket`. The timeout covers the TCP connect and the
 * handshake. Rejects with TlsError `ERR_TLS_CONNECT` (TCP connection failed),
 * `ERR_TLS_CERT_UNTRUSTED`, `ERR_TLS_CERT_NAME_MISMATCH`, `ERR_TLS_HANDSHAKE`,
 * `ERR_TLS_HANDSHAKE_TIMEOUT` or `ERR_ABORTED`.
 */
export function connectTls(options: ConnectTlsOptions): Promise<tls.TLSSocket> {
  return new Promise<tls.TLSSocket>((resolve, reject) => {
    if (options.signal?.aborted === true) {
      reject(new TlsError('ERR_ABORTED', 'TLS connection aborted before it started', { cause: options.signal.reason }));
      return;
    }
    let tlsSocket: tls.TLSSocket;
    let guard: HandshakeGuard;
    const servername = options.servername ?? options.host;
    try {
      const clientOptions = createClientTlsOptions({ ...options, servername });
      // `tls` may add options but not switch verification off behind createClientTlsOptions' back.
      const connectOptions: tls.ConnectionOptions & { localAddress?: string } = {
        ...clientOptions,
        ...options.tls,
        rejectUnauthorized: clientOptions.rejectUnauthorized,
        host: options.host,
        port: options.port,
      };
      if (options.localAddress !== undefined) connectOptions.localAddress = options.localAddress;
      tlsSocket = tls.connect(connectOptions);
    } catch (err) {
      reject(TlsError.isInstance(err) ? err : configError(`invalid client TLS options: ${(err as Error).message}`, err));
      return;
    }
    let connected = false;
    tlsSocket.once('connect', () => {
      connected = true;
    });
    try {
      guard = new HandshakeGuard(
        tlsSocket,
        'client',
        servername,
        options.signal,
        resolve,
        (err) => {
          const code = errorCode(err.cause);
          // A failure before the TCP connection existed is not a TLS failure: say so.
          if (!connected && err.code === 'ERR_TLS_HANDSHAKE' && code !== undefined && !code.startsWith('ERR_')) {
            reject(new TlsError('ERR_TLS_CONNECT', `cannot connect to ${options.host}:${options.port}: ${(err.cause as Error).message}`, { cause: err.cause }));
          } else {
            reject(err);
          }
        },
        options,
      );
    } catch (err) {
      tlsSocket.destroy();
      reject(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    guard.tlsSocket = tlsSocket;
    watchClient(tlsSocket, guard);
  });
}
