/**
 * Development certificates: a private CA and a server certificate signed by
 * it, so tests, the example mail server and a developer's own clients can use
 * real, verified TLS on localhost (trust `ca.pem`, connect to `localhost` or
 * 127.0.0.1). Not for production: the CA key sits next to the certificates.
 *
 * Key pairs come from node:crypto (native RSA generation is fast, forge's pure
 * JavaScript one is not); node-forge only builds and signs the X.509
 * structures, with SHA-256 and random serial numbers. node-forge is loaded
 * on first use (it takes a quarter of a second to load), so servers that
 * import @pigeonpost/wire/node without dev certificates never pay for it.
 */
import { generateKeyPair, randomBytes, X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type Forge from 'node-forge';
import type { Clock } from '../clock.js';
import { CertificateError } from '../errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';

const DAY_MS = 24 * 60 * 60 * 1000;

let forgeModule: Promise<typeof Forge> | undefined;
function loadForge(): Promise<typeof Forge> {
  forgeModule ??= import('node-forge').then((m: { default?: typeof Forge } & typeof Forge) => m.default ?? m);
  return forgeModule;
}

const DEFAULT_HOSTNAMES: readonly string[] = Object.freeze(['localhost']);
const DEFAULT_IP_ADDRESSES: readonly string[] = Object.freeze(['127.0.0.1', '::1']);

/**
 * Defaults of the development certificates, with where the numbers come from.
 * (They describe certificates, not protocol limits, so they live here rather
 * than in limits.ts.)
 */
export const devCertificateDefaults = Object.freeze({
  /** Server certificate lifetime: 365 days, under the 398-day cap browsers and the CA/Browser Forum apply to TLS server certificates. */
  validityDays: 365,
  /** CA lifetime: 10 years, so the CA a developer trusted once keeps working while server certificates come and go. */
  caValidityDays: 3650,
  /** Re-issue a certificate this many days before it expires: 30, as ACME clients (certbot) do. */
  renewBeforeDays: 30,
  /** RSA modulus size: 2048 bits, the minimum of NIST SP 800-131A and of the CA/Browser Forum. */
  rsaBits: 2048,
  /** How long ensureDevCertificates waits for another process holding the directory's lock, in ms. */
  lockTimeoutMs: 30_000,
  /** A lock older than this is from a process that died, and is broken, in ms. */
  lockStaleMs: 60_000,
  /** Names in the server certificate: the loopback name and addresses every test connects to. */
  hostnames: DEFAULT_HOSTNAMES,
  ipAddresses: DEFAULT_IP_ADDRESSES,
});

/** A CA to sign with: PEM certificate and PEM private key. */
export interface DevCa {
  readonly cert: string;
  readonly key: string;
}

export interface DevCertificateOptions {
  /** DNS names for the subjectAltName. Default `['localhost']`. `*.name` wildcards are allowed. */
  readonly hostnames?: readonly string[];
  /** IP addresses for the subjectAltName. Default `['127.0.0.1', '::1']`. */
  readonly ipAddresses?: readonly string[];
  /** Server certificate lifetime in days. Default 365. */
  readonly validityDays?: number;
  /** CA lifetime in days. Default 3650. */
  readonly caValidityDays?: number;
  /** Sign with this CA instead of making a new one (e.g. a second certificate for an SNI test). */
  readonly ca?: DevCa;
  /** Common name of a new CA. Default `'Pigeonpost Development CA'`. */
  readonly caCommonName?: string;
  /** Source of "now" for validity dates. Default the system clock. */
  readonly clock?: Pick<Clock, 'now'>;
}

/** A server certificate, its key and the CA that signed it, all PEM. */
export interface DevCertificates {
  /** CA certificate: what clients trust (`ca` option, `openssl verify -CAfile`). */
  readonly caCert: string;
  /** CA private key. Keep it out of anything shared. */
  readonly caKey: string;
  /** Server certificate. */
  readonly cert: string;
  /** Server private key (PKCS#8). */
  readonly key: string;
  /** Serial number of the server certificate, upper-case hex (as `X509Certificate#serialNumber`). */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly hostnames: readonly string[];
  readonly ipAddresses: readonly string[];
}

interface Resolved {
  readonly hostnames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly validityDays: number;
  readonly caValidityDays: number;
  readonly caCommonName: string;
  readonly now: number;
}

function invalid(message: string): CertificateError {
  return new CertificateError('ERR_CERT_INVALID_OPTIONS', message, { side: 'local' });
}

// RFC 1123 host name labels, with one optional leading wildcard label.
const HOSTNAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

function positiveDays(value: number | undefined, fallback: number, name: string): number {
  const days = value ?? fallback;
  if (typeof days !== 'number' || !Number.isFinite(days) || days <= 0) throw invalid(`${name} must be a number of days > 0, got ${String(value)}`);
  return days;
}

function resolveOptions(options: DevCertificateOptions): Resolved {
  const hostnames = [...(options.hostnames ?? devCertificateDefaults.hostnames)].map((h) => h.toLowerCase());
  const ipAddresses = [...(options.ipAddresses ?? devCertificateDefaults.ipAddresses)];
  if (hostnames.length + ipAddresses.length === 0) throw invalid('a certificate needs at least one host name or IP address');
  for (const host of hostnames) {
    if (host.length > 253 || !HOSTNAME.test(host)) throw invalid(`invalid host name for a certificate: ${JSON.stringify(host)}`);
  }
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw invalid(`invalid IP address for a certificate: ${JSON.stringify(ip)}`);
  }
  return {
    hostnames,
    ipAddresses,
    validityDays: positiveDays(options.validityDays, devCertificateDefaults.validityDays, 'validityDays'),
    caValidityDays: positiveDays(options.caValidityDays, devCertificateDefaults.caValidityDays, 'caValidityDays'),
    caCommonName: options.caCommonName ?? 'Pigeonpost Development CA',
    now: (options.clock ?? Date).now(),
  };
}

function newKeyPair(): Promise<{ publicKey: string; privateKey: string }> {
  return new Promise((resolve, reject) => {
    generateKeyPair(
      'rsa',
      {
        modulusLength: devCertificateDefaults.rsaBits,
        publicKeyEncoding: { type: 'spki', format: 'pem' },
        privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      },
      (err, publicKey, privateKey) => (err ? reject(err) : resolve({ publicKey, privateKey })),
    );
  });
}

/**
 * RFC 5280 §4.1.2.2: a positive integer of at most 20 octets; 16 random bytes
 * give the 64+ bits of entropy the CA/Browser Forum asks for. The first byte
 * is kept in 0x01..0x7f so the DER INTEGER is positive and minimally encoded.
 */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f || 0x01;
  return bytes.toString('hex');
}

/** Backdate by an hour, so a peer whose clock is a little behind still accepts a fresh certificate. */
const BACKDATE_MS = 60 * 60 * 1000;

function buildCertificate(forge: typeof Forge, params: {
  readonly publicKeyPem: string;
  readonly signingKeyPem: string;
  readonly subject: Forge.pki.CertificateField[];
  readonly issuer: Forge.pki.Certificate | undefined;
  readonly notBefore: number;
  readonly notAfter: number;
  readonly extensions: object[];
}): Forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(params.publicKeyPem);
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = new Date(params.notBefore);
  cert.validity.notAfter = new Date(params.notAfter);
  cert.setSubject(params.subject);
  cert.setIssuer(params.issuer === undefined ? params.subject : params.issuer.subject.attributes);
  cert.setExtensions(params.extensions);
  cert.sign(forge.pki.privateKeyFromPem(params.signingKeyPem), forge.md.sha256.create());
  return cert;
}

async function createCa(resolved: Resolved): Promise<DevCa> {
  const [forge, pair] = await Promise.all([loadForge(), newKeyPair()]);
  const notAfter = resolved.now + resolved.caValidityDays * DAY_MS;
  const cert = buildCertificate(forge, {
    publicKeyPem: pair.publicKey,
    signingKeyPem: pair.privateKey,
    subject: [
      { name: 'commonName', value: resolved.caCommonName },
      { name: 'organizationName', value: 'Pigeonpost development' },
    ],
    issuer: undefined,
    notBefore: resolved.now - BACKDATE_MS,
    notAfter,
    extensions: [
      // RFC 5280 §4.2.1.9 and §4.2.1.3: a CA certificate, used only to sign certificates and CRLs.
      { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
      // Self-signed: the authority key is its own.
      { name: 'authorityKeyIdentifier', keyIdentifier: true },
    ],
  });
  return { cert: forge.pki.certificateToPem(cert), key: pair.privateKey };
}

async function createServerCertificate(resolved: Resolved, ca: DevCa): Promise<DevCertificates> {
  const forge = await loadForge();
  let caCert: Forge.pki.Certificate;
  try {
    caCert = forge.pki.certificateFromPem(ca.cert);
    forge.pki.privateKeyFromPem(ca.key);
  } catch (cause) {
    throw new CertificateError('ERR_CERT_INVALID_CA', `the CA certificate or key cannot be read: ${(cause as Error).message}`, { cause });
  }
  const pair = await newKeyPair();
  // Never outlive the CA: a chain is only as valid as its shortest-lived link.
  const notAfter = Math.min(resolved.now + resolved.validityDays * DAY_MS, caCert.validity.notAfter.getTime());
  const altNames = [
    ...resolved.hostnames.map((value) => ({ type: 2 /* dNSName */, value })),
    ...resolved.ipAddresses.map((ip) => ({ type: 7 /* iPAddress */, ip })),
  ];
  const commonName = resolved.hostnames[0] ?? resolved.ipAddresses[0]!;
  const cert = buildCertificate(forge, {
    publicKeyPem: pair.publicKey,
    signingKeyPem: ca.key,
    subject: [
      { name: 'commonName', value: commonName },
      { name: 'organizationName', value: 'Pigeonpost development' },
    ],
    issuer: caCert,
    notBefore: resolved.now - BACKDATE_MS,
    notAfter,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      // RSA key exchange is not offered (ECDHE only), but keyEncipherment keeps older verifiers content.
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      // RFC 6125 §6.4.4: clients match names against the SAN, never the CN, when a SAN is present.
      { name: 'subjectAltName', altNames },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
    ],
  });
  const pem = forge.pki.certificateToPem(cert);
  return {
    caCert: ca.cert,
    caKey: ca.key,
    cert: pem,
    key: pair.privateKey,
    serialNumber: new X509Certificate(pem).serialNumber,
    notBefore: cert.validity.notBefore,
    notAfter: cert.validity.notAfter,
    hostnames: resolved.hostnames,
    ipAddresses: resolved.ipAddresses,
  };
}

function generationError(cause: unknown): CertificateError {
  if (CertificateError.isInstance(cause)) return cause;
  return new CertificateError('ERR_CERT_GENERATE', `cannot generate development certificates: ${(cause as Error).message}`, { cause });
}

/**
 * Make a CA (unless `ca` is given) and a server certificate in memory, nothing
 * written to disk. For tests: call it once per test file (`beforeAll`); RSA key
 * generation takes tens of milliseconds.
 */
export async function createDevCertificates(options: DevCertificateOptions = {}): Promise<DevCertificates> {
  const resolved = resolveOptions(options);
  try {
    const ca = options.ca ?? (await createCa(resolved));
    return await createServerCertificate(resolved, ca);
  } catch (cause) {
    throw generationError(cause);
  }
}

// ---------------------------------------------------------------------------
// On disk

export interface EnsureDevCertificatesOptions extends Omit<DevCertificateOptions, 'ca'> {
  /** Directory for `ca.pem`, `ca-key.pem`, `cert.pem`, `key.pem`; created (mode 0700) when missing. */
  readonly dir: string;
  /** Re-issue certificates that expire within this many days. Default 30 (or half of `validityDays`, if less). */
  readonly renewBeforeDays?: number;
  /** What was reused or regenerated, at info level. Default silent. */
  readonly logger?: Logger;
}

export interface DevCertificatePaths {
  readonly caCert: string;
  readonly caKey: string;
  readonly cert: string;
  readonly key: string;
}

export interface DevCertificateFiles extends DevCertificates {
  readonly paths: DevCertificatePaths;
  /** What this call wrote: a new CA, a new server certificate, or neither (everything reused). */
  readonly generated: { readonly ca: boolean; readonly server: boolean };
}

/** The file names inside `dir`. */
export function devCertificatePaths(dir: string): DevCertificatePaths {
  return { caCert: join(dir, 'ca.pem'), caKey: join(dir, 'ca-key.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new CertificateError('ERR_CERT_READ', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
}

interface Parsed {
  readonly x509: X509Certificate;
  readonly notBefore: number;
  readonly notAfter: number;
}

function parse(pem: string | undefined, keyPem: string | undefined): Parsed | undefined {
  if (pem === undefined || keyPem === undefined) return undefined;
  try {
    const x509 = new X509Certificate(pem);
    // The key must belong to the certificate: a crash between two renames could leave a mismatched pair.
    if (!x509.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    // X509Certificate prints validity as 'Nov 28 07:58:51 2027 GMT', which Date.parse reads.
    const notBefore = Date.parse(x509.validFrom);
    const notAfter = Date.parse(x509.validTo);
    if (Number.isNaN(notBefore) || Number.isNaN(notAfter)) return undefined;
    return { x509, notBefore, notAfter };
  } catch {
    return undefined;
  }
}

/** Why a certificate cannot be reused, or undefined when it can. */
function staleReason(parsed: Parsed | undefined, now: number, renewBeforeMs: number): string | undefined {
  if (parsed === undefined) return 'missing or unreadable';
  if (parsed.notBefore > now) return 'not yet valid';
  if (parsed.notAfter - renewBeforeMs <= now) return `expires ${new Date(parsed.notAfter).toISOString()}`;
  return undefined;
}

function serverMismatch(server: Parsed, ca: Parsed, resolved: Resolved): string | undefined {
  if (!server.x509.verify(ca.x509.publicKey) || server.x509.issuer !== ca.x509.subject) return 'not signed by the current CA';
  for (const host of resolved.hostnames) {
    // subject: 'never' — only the SAN counts (RFC 6125 §6.4.4); the returned name must be the asked one, not a wildcard match.
    if (server.x509.checkHost(host, { subject: 'never', wildcards: false }) === undefined) return `host name ${host} not covered`;
  }
  for (const ip of resolved.ipAddresses) {
    if (server.x509.checkIP(ip) === undefined) return `IP address ${ip} not covered`;
  }
  return undefined;
}

/** Write a file atomically: a temporary file in the same directory, fsync, then rename over the target. */
async function writeAtomic(path: string, contents: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const handle = await open(temp, 'wx', mode);
    try {
      await handle.writeFile(contents, 'utf8');
      // The mode given to open() is filtered by the umask; a key must be 0600 whatever the umask.
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw new CertificateError('ERR_CERT_WRITE', `cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Serialise writers of one directory across processes (parallel test workers
 * share it): `mkdir` is atomic, so the lock is a directory. A lock older than
 * `lockStaleMs` belongs to a dead process and is broken.
 */
async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, '.lock');
  const deadline = Date.now() + devCertificateDefaults.lockTimeoutMs;
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new CertificateError('ERR_CERT_WRITE', `cannot lock ${dir}: ${(err as Error).message}`, { cause: err });
      }
      const info = await stat(lock).catch(() => undefined);
      if (info !== undefined && Date.now() - info.mtimeMs > devCertificateDefaults.lockStaleMs) {
        await rm(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new CertificateError('ERR_CERT_LOCKED', `${lock} is held by another process; remove it if none is running`);
      await new Promise((resolve) => setTimeout(resolve, 25 + Math.random() * 50));
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

/**
 * Make sure `dir` holds a valid development CA and server certificate, and
 * return them. Existing files are reused while they are valid; the server
 * certificate is re-issued when it is missing, expired or expiring within
 * `renewBeforeDays`, not signed by the current CA, or missing one of the
 * requested names or IPs; the CA is re-made only when it is itself missing or
 * expiring (and then the server certificate too). Keys are written with mode
 * 0600, certificates 0644, each file atomically.
 *
 * Rejects with CertificateError `ERR_CERT_INVALID_OPTIONS`, `ERR_CERT_READ`,
 * `ERR_CERT_WRITE`, `ERR_CERT_LOCKED` or `ERR_CERT_GENERATE`.
 */
export async function ensureDevCertificates(options: EnsureDevCertificatesOptions): Promise<DevCertificateFiles> {
  if (typeof options.dir !== 'string' || options.dir === '') throw invalid('ensureDevCertificates needs a directory (dir)');
  const resolved = resolveOptions(options);
  // The default window shrinks for short-lived certificates, so a 10-day certificate is not re-issued on every call.
  const renewBeforeDays = options.renewBeforeDays ?? Math.min(devCertificateDefaults.renewBeforeDays, resolved.validityDays / 2);
  if (typeof renewBeforeDays !== 'number' || !Number.isFinite(renewBeforeDays) || renewBeforeDays < 0) {
    throw invalid(`renewBeforeDays must be a number of days >= 0, got ${String(options.renewBeforeDays)}`);
  }
  if (renewBeforeDays >= resolved.validityDays) {
    throw invalid(`renewBeforeDays (${renewBeforeDays}) must be less than validityDays (${resolved.validityDays}), or every call would re-issue`);
  }
  const renewBeforeMs = renewBeforeDays * DAY_MS;
  const logger = options.logger ?? silentLogger;
  const paths = devCertificatePaths(options.dir);
  try {
    await mkdir(options.dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new CertificateError('ERR_CERT_WRITE', `cannot create ${options.dir}: ${(err as Error).message}`, { cause: err });
  }

  return withLock(options.dir, async () => {
    const [caCertPem, caKeyPem, certPem, keyPem] = await Promise.all([
      readIfExists(paths.caCert),
      readIfExists(paths.caKey),
      readIfExists(paths.cert),
      readIfExists(paths.key),
    ]);
    const caParsed = parse(caCertPem, caKeyPem);
    let caWhy = staleReason(caParsed, resolved.now, renewBeforeMs);
    if (caWhy === undefined && caParsed !== undefined && !caParsed.x509.ca) caWhy = 'not a CA certificate';
    let ca: DevCa;
    let caGenerated = false;
    if (caWhy === undefined) {
      ca = { cert: caCertPem!, key: caKeyPem! };
    } else {
      logger.info({ dir: options.dir, reason: caWhy }, 'generating a development CA');
      try {
        ca = await createCa(resolved);
      } catch (cause) {
        throw generationError(cause);
      }
      // Key first: a certificate on disk always has its key next to it.
      await writeAtomic(paths.caKey, ca.key, 0o600);
      await writeAtomic(paths.caCert, ca.cert, 0o644);
      caGenerated = true;
    }

    const serverParsed = caGenerated ? undefined : parse(certPem, keyPem);
    let serverWhy = caGenerated ? 'new CA' : staleReason(serverParsed, resolved.now, renewBeforeMs);
    if (serverWhy === undefined && serverParsed !== undefined && caParsed !== undefined) serverWhy = serverMismatch(serverParsed, caParsed, resolved);
    if (serverWhy === undefined && serverParsed !== undefined) {
      logger.debug({ dir: options.dir }, 'reusing development certificates');
      return {
        caCert: ca.cert,
        caKey: ca.key,
        cert: certPem!,
        key: keyPem!,
        serialNumber: serverParsed.x509.serialNumber,
        notBefore: new Date(serverParsed.notBefore),
        notAfter: new Date(serverParsed.notAfter),
        hostnames: resolved.hostnames,
        ipAddresses: resolved.ipAddresses,
        paths,
        generated: { ca: false, server: false },
      };
    }
    logger.info({ dir: options.dir, reason: serverWhy }, 'generating a development server certificate');
    let issued: DevCertificates;
    try {
      issued = await createServerCertificate(resolved, ca);
    } catch (cause) {
      throw generationError(cause);
    }
    await writeAtomic(paths.key, issued.key, 0o600);
    await writeAtomic(paths.cert, issued.cert, 0o644);
    return { ...issued, paths, generated: { ca: caGenerated, server: true } };
  });
}
