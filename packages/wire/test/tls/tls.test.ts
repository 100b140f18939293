import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TlsError } from '../../src/errors.js';
import { channels } from '../../src/diagnostics.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { createDevCertificates } from '../../src/node/dev-certs.js';
import type { DevCertificates } from '../../src/node/dev-certs.js';
import { acceptTls, connectTls, createClientTlsOptions, createServerTlsOptions } from '../../src/node/tls.js';
import { closedPort, connect, listen, Resources, selfSignedCertificate, settle, until } from './helpers.js';

let dev: DevCertificates;
let mail: DevCertificates;
let wildcard: DevCertificates;
let foreign: DevCertificates;

beforeAll(async () => {
  // One CA for the trusted certificates, another one the clients do not know.
  dev = await createDevCertificates();
  const ca = { cert: dev.caCert, key: dev.caKey };
  [mail, wildcard, foreign] = await Promise.all([
    createDevCertificates({ ca, hostnames: ['mail.example.test'], ipAddresses: [] }),
    createDevCertificates({ ca, hostnames: ['*.other.test'], ipAddresses: [] }),
    createDevCertificates(),
  ]);
});

const res = new Resources();
afterEach(() => res.close());

/** A net.Server that hands every connection to acceptTls, collecting the outcomes. */
async function tlsServer(tlsOptions: tls.TlsOptions, handshake: Parameters<typeof acceptTls>[2] = {}) {
  const accepted: Promise<tls.TLSSocket>[] = [];
  const server = res.server(
    net.createServer((socket) => {
      const done = acceptTls(socket, tlsOptions, handshake);
      done.then((s) => res.socket(s), () => {});
      accepted.push(done);
    }),
  );
  const port = await listen(server);
  return { port, accepted };
}

function clientOptions(servername: string): tls.ConnectionOptions {
  return createClientTlsOptions({ servername, ca: dev.caCert });
}

describe('createServerTlsOptions / createClientTlsOptions', () => {
  it('sets TLS 1.2 minimum, ECDHE + AEAD suites and the server cipher order', () => {
    const options = createServerTlsOptions({ key: dev.key, cert: dev.cert });
    expect(options.minVersion).toBe('TLSv1.2');
    expect(options.honorCipherOrder).toBe(true);
    const tls12 = String(options.ciphers)
      .split(':')
      .filter((c) => !c.startsWith('TLS_'));
    expect(tls12.length).toBeGreaterThan(0);
    for (const suite of tls12) expect(suite).toMatch(/^ECDHE-(RSA|ECDSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/);
  });

  it('refuses TLS below 1.2 unless the loudly named option is set', () => {
    const attempt = () => createServerTlsOptions({ key: dev.key, cert: dev.cert, minVersion: 'TLSv1.1' });
    expect(attempt).toThrow(expect.objectContaining({ code: 'ERR_TLS_INSECURE_VERSION' }) as Error);
    expect(TlsError.isInstance(catchError(attempt))).toBe(true);
    expect(() => createClientTlsOptions({ servername: 'localhost', minVersion: 'TLSv1' })).toThrow(/RFC 8996/);
    expect(createServerTlsOptions({ key: dev.key, cert: dev.cert, minVersion: 'TLSv1.1', dangerouslyAllowTlsBelow12: true }).minVersion).toBe('TLSv1.1');
  });

  it('refuses non-PEM key material, and says when it looks like a path', () => {
    expect(() => createServerTlsOptions({ key: '/etc/ssl/private/key.pem', cert: dev.cert })).toThrow(/loadKeyCertFiles/);
    expect(() => createServerTlsOptions({ key: foreign.key, cert: dev.cert })).toThrow(expect.objectContaining({ code: 'ERR_TLS_CONFIG' }) as Error);
  });

  it('verifies by default; turning it off is explicit and logged', () => {
    expect(clientOptions('localhost').rejectUnauthorized).toBe(true);
    const warnings: unknown[] = [];
    const logger = { ...silent(), warn: (obj: unknown) => warnings.push(obj) };
    const insecure = createClientTlsOptions({ servername: 'localhost', rejectUnauthorized: false, logger });
    expect(insecure.rejectUnauthorized).toBe(false);
    expect(warnings).toEqual([{ servername: 'localhost' }]);
  });

  it('does not send an IP address as SNI (RFC 6066 §3) but still checks it', () => {
    const options = clientOptions('127.0.0.1');
    expect(options.servername).toBeUndefined();
    expect(typeof options.checkServerIdentity).toBe('function');
  });
});

describe('implicit TLS with the dev certificates', () => {
  it('connects to localhost and to 127.0.0.1 (IP SAN), verified against the dev CA', async () => {
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }));
    for (const servername of ['localhost', '127.0.0.1']) {
      const client = res.socket(await connectTls({ host: '127.0.0.1', port, servername, ca: dev.caCert }));
      expect(client.authorized).toBe(true);
      const server = await accepted.at(-1)!;
      expect(server.getProtocol()).toBe('TLSv1.3');
      server.write('hello\r\n');
      const data = await new Promise<Buffer>((resolve) => client.once('data', resolve));
      expect(data.toString()).toBe('hello\r\n');
    }
  });

  it('works with a plain tls.connect client too', async () => {
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }));
    const client = res.socket(tls.connect({ ...clientOptions('localhost'), host: '127.0.0.1', port }));
    await new Promise<void>((resolve, reject) => client.once('secureConnect', resolve).once('error', reject));
    expect(client.authorized).toBe(true);
    await expect(accepted[0]).resolves.toBeInstanceOf(tls.TLSSocket);
  });

  it('fails with a clear error for a name not in the certificate', async () => {
    const { port } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }));
    const error = await connectTls({ host: '127.0.0.1', port, servername: 'imap.example.org', ca: dev.caCert }).catch((e: unknown) => e);
    expect(TlsError.isInstance(error)).toBe(true);
    expect(error).toMatchObject({ code: 'ERR_TLS_CERT_NAME_MISMATCH' });
    expect((error as Error).message).toMatch(/imap\.example\.org/);
  });

  it('refuses a certificate from an unknown CA by default, and accepts it only with rejectUnauthorized: false', async () => {
    const { port } = await tlsServer(createServerTlsOptions({ key: foreign.key, cert: foreign.cert }));
    const refused = await connectTls({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_TLS_CERT_UNTRUSTED' });
    // Without `ca`, Node's public roots do not know the dev CA either.
    await expect(connectTls({ host: '127.0.0.1', port, servername: 'localhost' })).rejects.toMatchObject({ code: 'ERR_TLS_CERT_UNTRUSTED' });
    const insecure = res.socket(await connectTls({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }));
    expect(insecure.authorized).toBe(false);
  });

  it('refuses a self-signed certificate by default', async () => {
    const { port } = await tlsServer(createServerTlsOptions(selfSignedCertificate('localhost')));
    const refused = await connectTls({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_TLS_CERT_UNTRUSTED' });
    expect((refused as Error).message).toMatch(/not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
    const insecure = res.socket(await connectTls({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }));
    expect(insecure.authorized).toBe(false);
    expect(insecure.authorizationError).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
    expect(((refused as Error).cause as { code?: string }).code).toBe('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('refuses a TLS 1.1 client on the server side', async () => {
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }));
    const client = res.socket(
      // SECLEVEL=0 so that our own OpenSSL offers TLS 1.1 at all: the refusal must come from the server.
      tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' }),
    );
    const clientError = await new Promise<Error>((resolve) => client.once('error', resolve));
    expect(clientError.message).toMatch(/protocol version|unsupported protocol/i);
    const serverError = await accepted[0]!.catch((e: unknown) => e);
    expect(serverError).toMatchObject({ code: 'ERR_TLS_HANDSHAKE' });
    expect(((serverError as Error).cause as { code?: string }).code).toBe('ERR_SSL_UNSUPPORTED_PROTOCOL');
  });

  it('refuses a TLS 1.2 client that offers no ECDHE + AEAD suite', async () => {
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }));
    const client = res.socket(tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert, maxVersion: 'TLSv1.2', ciphers: 'AES128-SHA256' }));
    await new Promise<Error>((resolve) => client.once('error', resolve));
    await expect(accepted[0]).rejects.toMatchObject({ code: 'ERR_TLS_HANDSHAKE' });
    // …and with TLS 1.2 and a modern client, the suite is ECDHE + AEAD.
    const ok = res.socket(await connectTls({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert, maxVersion: 'TLSv1.2' }));
    expect(ok.getProtocol()).toBe('TLSv1.2');
    expect(ok.getCipher().name).toMatch(/^ECDHE-RSA-(AES\d+-GCM|CHACHA20)/);
  });

  it('rejects a client without a certificate when the server requires one', async () => {
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert, ca: dev.caCert, requestCert: true }));
    const client = res.socket(tls.connect({ ...clientOptions('localhost'), host: '127.0.0.1', port }));
    client.on('error', () => {});
    await until(() => accepted.length === 1);
    await expect(accepted[0]).rejects.toMatchObject({ code: 'ERR_TLS_HANDSHAKE' });
  });
});

describe('SNI', () => {
  it('serves the certificate for each name, the default one otherwise', async () => {
    const options = createServerTlsOptions({
      key: dev.key,
      cert: dev.cert,
      sni: { 'Mail.Example.Test': { key: mail.key, cert: mail.cert }, '*.other.test': { key: wildcard.key, cert: wildcard.cert } },
    });
    const { port } = await tlsServer(options);
    const seen = async (servername: string): Promise<string> => {
      // checkServerIdentity is disabled to look at what is served; the chain is still verified.
      const client = res.socket(tls.connect({ host: '127.0.0.1', port, servername, ca: dev.caCert, checkServerIdentity: () => undefined }));
      await new Promise<void>((resolve, reject) => client.once('secureConnect', resolve).once('error', reject));
      const cert = client.getPeerCertificate();
      client.destroy();
      return cert.subjectaltname ?? '';
    };
    expect(await seen('mail.example.test')).toBe('DNS:mail.example.test');
    expect(await seen('MAIL.example.test.')).toBe('DNS:mail.example.test');
    expect(await seen('imap.other.test')).toBe('DNS:*.other.test');
    // A wildcard covers one label only.
    expect(await seen('a.b.other.test')).toMatch(/^DNS:localhost/);
    expect(await seen('other.test')).toMatch(/^DNS:localhost/);
    expect(await seen('unknown.test')).toMatch(/^DNS:localhost/);
    // And a real client verifies the right one end to end.
    const verified = res.socket(await connectTls({ host: '127.0.0.1', port, servername: 'pop.other.test', ca: dev.caCert }));
    expect(verified.authorized).toBe(true);
  });
});

describe('timeouts and cancellation', () => {
  it('acceptTls times out against a peer that never speaks, and destroys the socket', async () => {
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }), { timeoutMs: 100 });
    const client = res.socket(await connect(port));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await until(() => accepted.length === 1);
    const error = await accepted[0]!.catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_TLS_HANDSHAKE_TIMEOUT' });
    await closed;
  });

  it('acceptTls runs its timeout on the given clock', async () => {
    const clock = new VirtualClock();
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }), { clock });
    res.socket(await connect(port));
    await until(() => accepted.length === 1);
    const outcome = settle(accepted[0]!);
    clock.advance(29_999);
    await new Promise((resolve) => setTimeout(resolve, 20));
    clock.advance(1);
    expect(await outcome).toMatchObject({ ok: false, error: { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' } });
    expect(clock.pending).toBe(0);
  });

  it('acceptTls stops on abort', async () => {
    const controller = new AbortController();
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }), { signal: controller.signal });
    res.socket(await connect(port));
    await until(() => accepted.length === 1);
    controller.abort();
    await expect(accepted[0]).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await expect(acceptTls(res.socket(await connect(port)), {}, { signal: controller.signal })).rejects.toMatchObject({ code: 'ERR_ABORTED' });
  });

  it('connectTls times out, aborts, and tells a refused connection apart', async () => {
    const silentServer = res.server(net.createServer());
    const port = await listen(silentServer);
    await expect(connectTls({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert, timeoutMs: 100 })).rejects.toMatchObject({
      code: 'ERR_TLS_HANDSHAKE_TIMEOUT',
    });
    const controller = new AbortController();
    const pending = connectTls({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert, signal: controller.signal });
    setTimeout(() => controller.abort(), 20);
    await expect(pending).rejects.toMatchObject({ code: 'ERR_ABORTED' });
    await expect(connectTls({ host: '127.0.0.1', port: await closedPort(), servername: 'localhost' })).rejects.toMatchObject({ code: 'ERR_TLS_CONNECT' });
  });
});

describe('diagnostics', () => {
  const secure: unknown[] = [];
  const failed: unknown[] = [];
  const onSecure = (m: unknown) => secure.push(m);
  const onError = (m: unknown) => failed.push(m);
  beforeAll(() => {
    subscribe(channels.tlsSecure, onSecure);
    subscribe(channels.tlsError, onError);
  });
  afterAll(() => {
    unsubscribe(channels.tlsSecure, onSecure);
    unsubscribe(channels.tlsError, onError);
  });

  it('publishes handshake outcomes without key material', async () => {
    // The handshake that succeeds has the default timeout (a loaded machine may stall past 100 ms);
    // a second server times the silent peer out after 100 ms.
    const { port, accepted } = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }));
    res.socket(await connectTls({ host: '127.0.0.1', port, servername: 'localhost', ca: dev.caCert }));
    await accepted[0];
    expect(secure).toHaveLength(2);
    expect(secure[0]).toMatchObject({ protocol: 'TLSv1.3', cipher: expect.stringMatching(/^TLS_/) as string });
    expect(Object.keys(secure[0] as object).sort()).toEqual(['cipher', 'protocol', 'servername', 'socket']);
    const impatient = await tlsServer(createServerTlsOptions({ key: dev.key, cert: dev.cert }), { timeoutMs: 100 });
    res.socket(await connect(impatient.port));
    await until(() => impatient.accepted.length === 1);
    await impatient.accepted[0]!.catch(() => {});
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ error: { code: 'ERR_TLS_HANDSHAKE_TIMEOUT' } });
    const text = JSON.stringify([secure, failed], (key, value: unknown) => (key === 'socket' ? undefined : value));
    expect(text).not.toContain('PRIVATE KEY');
  });
});

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function silent() {
  const noop = () => {};
  const logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, fatal: noop, child: () => logger };
  return logger;
}
