import { execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureDevCertificates } from '../../src/node/dev-certs.js';
import type { DevCertificateFiles } from '../../src/node/dev-certs.js';
import { upgradeServerSocket } from '../../src/node/starttls.js';
import { acceptTls, createServerTlsOptions } from '../../src/node/tls.js';
import { findPeer } from '../../src/testing/peers.js';
import { Lines, listen, Resources } from '../tls/helpers.js';

const run = promisify(execFile);
const peer = findPeer('openssl', { versionArgs: ['version'], debianPackage: 'openssl' });
if (!peer.available) console.warn(`skipping openssl interop tests: ${peer.reason}`);

/** Run `openssl s_client`, feeding `input`, and return what it printed; it ends when the server closes. */
function sClient(path: string, args: readonly string[], input = ''): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(path, ['s_client', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    child.stdin.end(input);
  });
}

describe.skipIf(!peer.available)('dev certificates against openssl', () => {
  const openssl = peer.available ? peer.path : 'openssl';
  let dir: string;
  let certs: DevCertificateFiles;
  const res = new Resources();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pigeonpost-interop-'));
    certs = await ensureDevCertificates({ dir, hostnames: ['localhost', 'mail.localhost'] });
  });
  afterEach(() => res.close());
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('openssl verify accepts the server certificate with the dev CA', async () => {
    const { stdout } = await run(openssl, ['verify', '-CAfile', certs.paths.caCert, '-purpose', 'sslserver', certs.paths.cert]);
    expect(stdout.trim()).toBe(`${certs.paths.cert}: OK`);
    // …and names it valid for its host names and IPs.
    await run(openssl, ['verify', '-CAfile', certs.paths.caCert, '-verify_hostname', 'mail.localhost', '-verify_ip', '::1', certs.paths.cert]);
    await expect(run(openssl, ['verify', '-CAfile', certs.paths.caCert, '-verify_hostname', 'example.org', certs.paths.cert])).rejects.toThrow(/hostname mismatch/);
  });

  it('openssl x509 lists the SANs and the extensions', async () => {
    const { stdout } = await run(openssl, ['x509', '-noout', '-ext', 'subjectAltName,basicConstraints,keyUsage,extendedKeyUsage', '-in', certs.paths.cert]);
    expect(stdout).toContain('DNS:localhost, DNS:mail.localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(stdout).toContain('CA:FALSE');
    expect(stdout).toContain('TLS Web Server Authentication');
    const ca = await run(openssl, ['x509', '-noout', '-ext', 'basicConstraints,keyUsage', '-in', certs.paths.caCert]);
    expect(ca.stdout).toContain('CA:TRUE');
    expect(ca.stdout).toContain('Certificate Sign, CRL Sign');
    const sig = await run(openssl, ['x509', '-noout', '-text', '-in', certs.paths.cert]);
    expect(sig.stdout).toContain('sha256WithRSAEncryption');
    expect(sig.stdout).toMatch(/X509v3 Authority Key Identifier/);
  });

  it('openssl s_client verifies an acceptTls server (implicit TLS)', async () => {
    const options = createServerTlsOptions({ key: certs.key, cert: certs.cert });
    const server = res.server(
      net.createServer((socket) => {
        acceptTls(socket, options).then(
          (secure) => {
            res.socket(secure);
            secure.end('* OK pigeonpost ready\r\n');
          },
          () => {},
        );
      }),
    );
    const port = await listen(server);
    const { output } = await sClient(openssl, ['-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', certs.paths.caCert, '-verify_return_error', '-verify_hostname', 'localhost', '-ign_eof']);
    expect(output).toContain('Verify return code: 0 (ok)');
    expect(output).toContain('* OK pigeonpost ready');
    expect(output).toMatch(/Protocol\s*: TLSv1\.3/);
  });

  it('openssl s_client -starttls smtp upgrades through upgradeServerSocket', async () => {
    const options = createServerTlsOptions({ key: certs.key, cert: certs.cert });
    let discarded = -1;
    const server = res.server(
      net.createServer((socket) => {
        socket.write('220 localhost ESMTP test\r\n');
        const lines = new Lines();
        socket.on('data', (chunk: Buffer) => {
          lines.push(chunk);
          for (let line = lines.next(); line !== undefined; line = lines.next()) {
            if (/^EHLO /i.test(line)) socket.write('250-localhost\r\n250 STARTTLS\r\n');
            else if (/^STARTTLS$/i.test(line)) {
              socket.write('220 2.0.0 Ready to start TLS\r\n');
              upgradeServerSocket(socket, options, { bufferedPlaintext: lines.take() }).then(
                ({ socket: secure, discardedBytes }) => {
                  discarded = discardedBytes;
                  res.socket(secure);
                  secure.end('250 after TLS\r\n');
                },
                () => {},
              );
              return;
            } else socket.write('502 5.5.2 not here\r\n');
          }
        });
      }),
    );
    const port = await listen(server);
    const { output } = await sClient(openssl, ['-connect', `127.0.0.1:${port}`, '-starttls', 'smtp', '-CAfile', certs.paths.caCert, '-verify_return_error', '-verify_hostname', 'localhost', '-ign_eof']);
    expect(output).toContain('Verify return code: 0 (ok)');
    expect(output).toContain('250 after TLS');
    expect(discarded).toBe(0);
  });
});
