// TLS policy of the relay: opportunistic STARTTLS by default, verified TLS to listed MX hosts only under
// an MTA-STS policy in enforce mode (fetched over HTTPS from a local server with a dev CA), and for
// REQUIRETLS messages. MX hosts are smtp-core servers on 127.0.0.x; DNS is an in-process server.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMxResolver } from '@pigeonpost/mx-resolver/node';
import { startTestDnsServer, type TestDnsServer } from '@pigeonpost/mx-resolver/testing';
import { createSmtpServer, type SmtpServer } from '@pigeonpost/smtp-core/node';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import { Relay, SmtpDeliverer, type MtaStsFailureReport } from '../src/index.js';

interface Got {
  readonly host: string;
  readonly secure: boolean;
  readonly to: readonly string[];
}

let dns: TestDnsServer;
let policyServer: https.Server;
let policyPort: number;
let caCert: string;
const servers: SmtpServer[] = [];
const received: Got[] = [];
let port = 0;
let dir: string;

async function sink(host: string, tlsFor: string | undefined, ca: { cert: string; key: string }): Promise<void> {
  const tls = tlsFor === undefined ? undefined : await createDevCertificates({ hostnames: [tlsFor], ipAddresses: [], ca });
  const server = createSmtpServer({
    hostname: `sink-${host}`,
    ...(tls ? { tls: createServerTlsOptions({ key: tls.key, cert: tls.cert }) } : {}),
    onRcptTo: () => Promise.resolve(),
    onData: async (envelope, body, session) => {
      for await (const chunk of body) void chunk;
      received.push({ host, secure: session.secure, to: envelope.rcptTo.map((r) => r.address.address) });
      return { text: 'ok' };
    },
  });
  servers.push(server);
  port = (await server.listen({ host, port })).port;
}

beforeAll(async () => {
  const policy = await createDevCertificates({ hostnames: ['mta-sts.sts.test', 'mta-sts.badcert.test', 'mta-sts.testing.test'], ipAddresses: [] });
  caCert = policy.caCert;
  const ca = { cert: policy.caCert, key: policy.caKey };
  await sink('127.0.0.2', 'mx.sts.test', ca); // STARTTLS, certificate for its MX name
  await sink('127.0.0.3', undefined, ca); // no STARTTLS
  await sink('127.0.0.4', 'someone-else.test', ca); // STARTTLS, certificate for another name
  policyServer = https.createServer({ key: policy.key, cert: policy.cert }, (req, res) => {
    const host = (req.headers.host ?? '').split(':')[0];
    const mx = host === 'mta-sts.sts.test' ? 'mx.sts.test' : host === 'mta-sts.testing.test' ? 'mx.testing.test' : 'mx.badcert.test';
    const mode = host === 'mta-sts.testing.test' ? 'testing' : 'enforce';
    res.writeHead(200, { 'content-type': 'text/plain' }).end(`version: STSv1\nmode: ${mode}\nmx: ${mx}\nmax_age: 86400\n`);
  });
  await new Promise<void>((resolve) => policyServer.listen(0, '127.0.0.1', resolve));
  policyPort = (policyServer.address() as AddressInfo).port;
  dns = await startTestDnsServer({
    zones: ['test'],
    records: [
      // sts.test: enforce; its best MX is not in the policy and offers no TLS, the listed one does.
      { name: 'sts.test', type: 'MX', data: { preference: 5, exchange: 'plain.sts.test' } },
      { name: 'sts.test', type: 'MX', data: { preference: 10, exchange: 'mx.sts.test' } },
      { name: 'plain.sts.test', type: 'A', data: '127.0.0.3' },
      { name: 'mx.sts.test', type: 'A', data: '127.0.0.2' },
      { name: '_mta-sts.sts.test', type: 'TXT', data: 'v=STSv1; id=1' },
      { name: 'mta-sts.sts.test', type: 'A', data: '127.0.0.1' },
      // badcert.test: enforce; the listed MX presents a certificate for another name.
      { name: 'badcert.test', type: 'MX', data: { preference: 10, exchange: 'mx.badcert.test' } },
      { name: 'mx.badcert.test', type: 'A', data: '127.0.0.4' },
      { name: '_mta-sts.badcert.test', type: 'TXT', data: 'v=STSv1; id=7' },
      { name: 'mta-sts.badcert.test', type: 'A', data: '127.0.0.1' },
      // plain.test: no policy, an MX without TLS.
      { name: 'plain.test', type: 'MX', data: { preference: 10, exchange: 'plain.sts.test' } },
      // opportunistic.test: no policy, an MX with TLS (certificate for another name: fine when opportunistic).
      { name: 'opportunistic.test', type: 'MX', data: { preference: 10, exchange: 'mx.badcert.test' } },
      { name: 'sender.test', type: 'MX', data: { preference: 10, exchange: 'plain.sts.test' } },
      // testing.test: a policy in testing mode that lists another MX than the one published.
      { name: 'testing.test', type: 'MX', data: { preference: 10, exchange: 'plain.sts.test' } },
      { name: '_mta-sts.testing.test', type: 'TXT', data: 'v=STSv1; id=3' },
      { name: 'mta-sts.testing.test', type: 'A', data: '127.0.0.1' },
    ],
  });
  dir = await mkdtemp(join(tmpdir(), 'pigeonpost-relay-tls-'));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  policyServer?.closeAllConnections();
  await new Promise((resolve) => policyServer?.close(resolve));
  await dns?.close();
  await rm(dir, { recursive: true, force: true });
});

const reports: MtaStsFailureReport[] = [];

async function relayFor(name: string): Promise<Relay> {
  const resolver = createMxResolver({ servers: [dns.address], allowPrivateAddresses: true, families: [4], mtaSts: { port: policyPort, ca: caCert } });
  const deliverer = new SmtpDeliverer({ mx: resolver.mx, mtaSts: resolver.mtaSts, hostname: 'relay.test', routing: { port }, ca: caCert, onMtaStsFailure: (r) => reports.push(r) });
  return Relay.open({ spoolDir: join(dir, name), deliverer, hostname: 'relay.test', minBackoffMs: 3_600_000 });
}

const MESSAGE = 'Subject: tls\r\n\r\nbody\r\n';

describe('relay TLS policy', () => {
  it('uses STARTTLS opportunistically, and plaintext where it is not offered', async () => {
    const relay = await relayFor('opportunistic');
    try {
      await relay.enqueue({ from: 'a@sender.test', to: ['x@opportunistic.test', 'y@plain.test'] }, MESSAGE);
      await relay.idle();
      expect(received.find((r) => r.to.includes('x@opportunistic.test'))).toMatchObject({ host: '127.0.0.4', secure: true });
      expect(received.find((r) => r.to.includes('y@plain.test'))).toMatchObject({ host: '127.0.0.3', secure: false });
    } finally {
      await relay.close();
    }
  });

  it('MTA-STS enforce: only listed MX hosts, over verified TLS', async () => {
    const relay = await relayFor('sts');
    try {
      await relay.enqueue({ from: 'a@sender.test', to: ['x@sts.test'] }, MESSAGE);
      await relay.idle();
      // The better MX (plain.sts.test, no TLS) is not in the policy: skipped.
      expect(received.filter((r) => r.to.includes('x@sts.test'))).toEqual([{ host: '127.0.0.2', secure: true, to: ['x@sts.test'] }]);
    } finally {
      await relay.close();
    }
  });

  it('MTA-STS enforce: a certificate that does not match defers the message', async () => {
    const relay = await relayFor('badcert');
    try {
      const { id } = await relay.enqueue({ from: 'a@sender.test', to: ['x@badcert.test'] }, MESSAGE);
      await relay.idle();
      expect(received.some((r) => r.to.includes('x@badcert.test'))).toBe(false);
      const state = relay.show(id)?.recipients[0];
      expect(state?.status).toBe('deferred');
      expect(state?.lastReply?.enhanced).toBe('4.7.5');
      expect(reports.filter((r) => r.domain === 'badcert.test')).toEqual([expect.objectContaining({ mode: 'enforce', mx: 'mx.badcert.test', reason: 'tls-failure' })]);
    } finally {
      await relay.close();
    }
  });

  it('MTA-STS testing: delivers as usual and reports what enforce would refuse', async () => {
    const relay = await relayFor('testing');
    try {
      await relay.enqueue({ from: 'a@sender.test', to: ['t@testing.test'] }, MESSAGE);
      await relay.idle();
      expect(received.find((r) => r.to.includes('t@testing.test'))).toMatchObject({ host: '127.0.0.3', secure: false });
      expect(reports.filter((r) => r.domain === 'testing.test')).toEqual([expect.objectContaining({ mode: 'testing', mx: 'plain.sts.test', reason: 'mx-mismatch' })]);
    } finally {
      await relay.close();
    }
  });

  it('REQUIRETLS: no delivery over plaintext', async () => {
    const relay = await relayFor('requiretls');
    try {
      const { id } = await relay.enqueue({ from: 'a@sender.test', to: ['z@plain.test'], requireTls: true }, MESSAGE);
      await relay.idle();
      expect(received.some((r) => r.to.includes('z@plain.test'))).toBe(false);
      expect(relay.show(id)?.recipients[0]).toMatchObject({ status: 'deferred', lastReply: { enhanced: '4.7.4' } });
    } finally {
      await relay.close();
    }
  });
});
