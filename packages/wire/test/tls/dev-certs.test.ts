import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertificateError } from '../../src/errors.js';
import { createDevCertificates, devCertificatePaths, ensureDevCertificates } from '../../src/node/dev-certs.js';
import type { DevCertificateFiles } from '../../src/node/dev-certs.js';

const DAY = 24 * 60 * 60 * 1000;
let dir: string;
let first: DevCertificateFiles;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pigeonpost-dev-certs-'));
  first = await ensureDevCertificates({ dir: join(dir, 'certs') });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** The extensions of a PEM certificate, by name, as forge reads them. */
function extensions(pem: string): Record<string, Record<string, unknown>> {
  const cert = forge.pki.certificateFromPem(pem);
  return Object.fromEntries((cert.extensions as Record<string, unknown>[]).map((e) => [String(e['name']), e]));
}

describe('ensureDevCertificates', () => {
  it('writes a CA and a server certificate, keys with mode 0600', async () => {
    expect(first.generated).toEqual({ ca: true, server: true });
    expect(first.paths).toEqual(devCertificatePaths(join(dir, 'certs')));
    expect((await stat(first.paths.key)).mode & 0o777).toBe(0o600);
    expect((await stat(first.paths.caKey)).mode & 0o777).toBe(0o600);
    expect((await stat(first.paths.cert)).mode & 0o077).toBe(0o044);
    expect((await stat(join(dir, 'certs'))).mode & 0o077).toBe(0);
  });

  it('issues certificates with the right extensions', () => {
    const ca = new X509Certificate(first.caCert);
    const cert = new X509Certificate(first.cert);
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // extKeyUsage serverAuth
    expect(cert.checkPrivateKey(createPrivateKey(first.key))).toBe(true);
    const caExt = extensions(first.caCert);
    expect(caExt['basicConstraints']).toMatchObject({ cA: true, critical: true });
    expect(caExt['keyUsage']).toMatchObject({ keyCertSign: true, cRLSign: true, critical: true });
    const ext = extensions(first.cert);
    expect(ext['basicConstraints']).toMatchObject({ cA: false, critical: true });
    expect(ext['subjectKeyIdentifier']).toBeDefined();
    expect(ext['authorityKeyIdentifier']).toBeDefined();
    expect(forge.pki.certificateFromPem(first.cert).siginfo.algorithmOid).toBe(forge.pki.oids['sha256WithRSAEncryption']);
    expect(first.key).toContain('BEGIN PRIVATE KEY');
  });

  it('reuses valid certificates (same serial, nothing written)', async () => {
    const again = await ensureDevCertificates({ dir: join(dir, 'certs') });
    expect(again.generated).toEqual({ ca: false, server: false });
    expect(again.serialNumber).toBe(first.serialNumber);
    expect(again.cert).toBe(first.cert);
    // A subset of the names is covered too.
    const subset = await ensureDevCertificates({ dir: join(dir, 'certs'), ipAddresses: ['127.0.0.1'] });
    expect(subset.serialNumber).toBe(first.serialNumber);
  });

  it('re-issues the server certificate near expiry, keeping the CA', async () => {
    const target = join(dir, 'expiry');
    const initial = await ensureDevCertificates({ dir: target, validityDays: 60 });
    // 25 days on, 35 remain: outside the 30-day window, reused.
    const day25 = await ensureDevCertificates({ dir: target, validityDays: 60, renewBeforeDays: 30, clock: { now: () => Date.now() + 25 * DAY } });
    expect(day25.serialNumber).toBe(initial.serialNumber);
    // 35 days on, 25 remain: inside the window, re-issued.
    const renewed = await ensureDevCertificates({ dir: target, validityDays: 60, renewBeforeDays: 30, clock: { now: () => Date.now() + 35 * DAY } });
    expect(renewed.generated).toEqual({ ca: false, server: true });
    expect(renewed.serialNumber).not.toBe(initial.serialNumber);
    expect(renewed.caCert).toBe(initial.caCert);
    // Expired outright: same.
    const expired = await ensureDevCertificates({ dir: target, validityDays: 60, clock: { now: () => Date.now() + 400 * DAY } });
    expect(expired.generated.server).toBe(true);
  });

  it('re-issues when a requested name or IP is not covered', async () => {
    const target = join(dir, 'names');
    const initial = await ensureDevCertificates({ dir: target });
    const wider = await ensureDevCertificates({ dir: target, hostnames: ['localhost', 'mail.localhost'], ipAddresses: ['127.0.0.1', '127.0.0.2'] });
    expect(wider.generated).toEqual({ ca: false, server: true });
    expect(wider.serialNumber).not.toBe(initial.serialNumber);
    expect(new X509Certificate(wider.cert).subjectAltName).toBe('DNS:localhost, DNS:mail.localhost, IP Address:127.0.0.1, IP Address:127.0.0.2');
    expect(wider.caCert).toBe(initial.caCert);
  });

  it('re-makes everything when the CA is gone, and repairs a mismatched key', async () => {
    const target = join(dir, 'repair');
    const initial = await ensureDevCertificates({ dir: target });
    await rm(initial.paths.caCert);
    const fresh = await ensureDevCertificates({ dir: target });
    expect(fresh.generated).toEqual({ ca: true, server: true });
    // A key that does not belong to the certificate (as a crash between two renames could leave).
    const other = await createDevCertificates();
    await writeFile(fresh.paths.key, other.key, { mode: 0o600 });
    const repaired = await ensureDevCertificates({ dir: target });
    expect(repaired.generated).toEqual({ ca: false, server: true });
  });

  it('refuses bad options with CertificateError', async () => {
    await expect(ensureDevCertificates({ dir: join(dir, 'bad'), hostnames: ['bad name'] })).rejects.toMatchObject({ code: 'ERR_CERT_INVALID_OPTIONS' });
    await expect(ensureDevCertificates({ dir: join(dir, 'bad'), ipAddresses: ['300.1.1.1'] })).rejects.toMatchObject({ code: 'ERR_CERT_INVALID_OPTIONS' });
    await expect(ensureDevCertificates({ dir: join(dir, 'bad'), validityDays: 10, renewBeforeDays: 10 })).rejects.toSatisfy((e) => CertificateError.isInstance(e));
  });

  it('serialises concurrent callers on one directory', async () => {
    const target = join(dir, 'concurrent');
    const [a, b] = await Promise.all([ensureDevCertificates({ dir: target }), ensureDevCertificates({ dir: target })]);
    expect(a.serialNumber).toBe(b.serialNumber);
    expect(a.caCert).toBe(b.caCert);
  });
});

describe('createDevCertificates', () => {
  it('signs with a given CA, never beyond its lifetime, with random serials', async () => {
    const ca = { cert: first.caCert, key: first.caKey };
    const [one, two] = await Promise.all([
      createDevCertificates({ ca, hostnames: ['*.example.test'], ipAddresses: [] }),
      createDevCertificates({ ca, hostnames: ['a.test'], ipAddresses: [], validityDays: 100_000 }),
    ]);
    expect(one.serialNumber).not.toBe(two.serialNumber);
    expect(one.serialNumber.length).toBeGreaterThanOrEqual(30);
    expect(new X509Certificate(one.cert).verify(new X509Certificate(first.caCert).publicKey)).toBe(true);
    expect(two.notAfter.getTime()).toBe(forge.pki.certificateFromPem(first.caCert).validity.notAfter.getTime());
  });
});
