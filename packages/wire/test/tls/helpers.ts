import { generateKeyPairSync } from 'node:crypto';
import * as net from 'node:net';
import forge from 'node-forge';

/** Everything a test opens, closed in afterEach whatever happened. */
export class Resources {
  private readonly sockets = new Set<net.Socket>();
  private readonly servers = new Set<net.Server>();

  socket<T extends net.Socket>(socket: T): T {
    this.sockets.add(socket);
    // A peer resetting the connection must not fail the run with an unhandled 'error'.
    socket.on('error', () => {});
    return socket;
  }

  server<T extends net.Server>(server: T): T {
    this.servers.add(server);
    server.on('connection', (s: net.Socket) => this.socket(s));
    return server;
  }

  async close(): Promise<void> {
    // TLS sockets before the plain sockets under them: the reverse order is what crashes Node (see tls.ts).
    const sockets = [...this.sockets].sort((a, b) => Number('encrypted' in b) - Number('encrypted' in a));
    for (const socket of sockets) socket.destroy();
    this.sockets.clear();
    await Promise.all([...this.servers].map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    this.servers.clear();
  }
}

/** Listen on an ephemeral loopback port and return it. */
export function listen(server: net.Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as net.AddressInfo).port));
  });
}

export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host, noDelay: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** A port nothing listens on: bind one, remember it, close it. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A tiny CRLF line splitter for the tests (deliberately not the package's
 * framer). `take()` hands back the unprocessed rest, as a framer's discard would.
 */
export class Lines {
  private buffer = Buffer.alloc(0);

  push(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
  }

  next(): string | undefined {
    const end = this.buffer.indexOf('\r\n');
    if (end < 0) return undefined;
    const line = this.buffer.subarray(0, end).toString('latin1');
    this.buffer = this.buffer.subarray(end + 2);
    return line;
  }

  take(): Buffer {
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }
}

/** Collect the CRLF lines a socket receives. */
export function collectLines(socket: net.Socket): string[] {
  const lines: string[] = [];
  const splitter = new Lines();
  socket.on('data', (chunk: Buffer) => {
    splitter.push(chunk);
    for (let line = splitter.next(); line !== undefined; line = splitter.next()) lines.push(line);
  });
  return lines;
}

/** Resolve when `predicate` holds, polling; for conditions driven by socket I/O. */
export async function until(predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function settle<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** A self-signed leaf certificate for `hostname` (no CA behind it), made with forge and a node:crypto key. */
export function selfSignedCertificate(hostname: string): { key: string; cert: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey);
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 3_600_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  const name = [{ name: 'commonName', value: hostname }];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: [{ type: 2, value: hostname }] },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(privateKey), forge.md.sha256.create());
  return { key: privateKey, cert: forge.pki.certificateToPem(cert) };
}
