import type { RequestListener } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevCertificates, type DevCertificates } from '@pigeonpost/wire/node';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { DnsLookup, MtaStsError, MtaStsResolver, mtaStsMatchesMx, parseMtaStsPolicy, parseMtaStsRecord, type MtaStsFetcher } from '../src/index.js';
import { UdpDnsTransport, createMtaStsFetcher } from '../src/node/index.js';
import { startTestDnsServer, type TestDnsRecord, type TestDnsServer } from '../src/testing/index.js';

const ENFORCE = 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmx: *.backup.example.test\r\nmax_age: 86400\r\n';

describe('policy and record parsing (RFC 8461 §3)', () => {
  it('parses a policy, ignoring unknown keys', () => {
    expect(parseMtaStsPolicy(`${ENFORCE}extension: whatever\n`)).toEqual({
      version: 'STSv1',
      mode: 'enforce',
      mx: ['mail.example.test', '*.backup.example.test'],
      maxAge: 86_400,
    });
    expect(parseMtaStsPolicy('version: STSv1\nmode: none\nmax_age: 0\n').mode).toBe('none');
    expect(parseMtaStsPolicy('version: STSv1\nmode: testing\nmx: a.test\nmax_age: 9999999999\n').maxAge).toBe(31_557_600);
  });

  it('refuses invalid policies', () => {
    for (const bad of [
      'mode: enforce\nmx: a.test\nmax_age: 1\n',
      'version: STSv2\nmode: enforce\nmx: a.test\nmax_age: 1\n',
      'version: STSv1\nmode: strict\nmx: a.test\nmax_age: 1\n',
      'version: STSv1\nmode: enforce\nmx: a.test\n',
      'version: STSv1\nmode: enforce\nmx: a.test\nmax_age: -1\n',
      'version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 99999999999\n',
      'version: STSv1\nmode: enforce\nmax_age: 100\n',
      'version: STSv1\nmode: enforce\nmx: not a host\nmax_age: 100\n',
      '<html>oops</html>',
    ]) {
      expect(() => parseMtaStsPolicy(bad), bad).toThrow(MtaStsError);
    }
  });

  it('parses the _mta-sts TXT record', () => {
    expect(parseMtaStsRecord('v=STSv1; id=20160831085700Z;')).toEqual({ id: '20160831085700Z' });
    expect(parseMtaStsRecord('v=STSv1;id=abc; ext=1')).toEqual({ id: 'abc' });
    expect(parseMtaStsRecord('v=STSv2; id=abc')).toBeUndefined();
    expect(parseMtaStsRecord('v=STSv1')).toBeUndefined();
    expect(parseMtaStsRecord('v=STSv1; id=has-hyphen')).toBeUndefined();
    expect(parseMtaStsRecord(`v=STSv1; id=${'a'.repeat(33)}`)).toBeUndefined();
  });

  it('matches MX hosts, a wildcard covering exactly one label', () => {
    const policy = parseMtaStsPolicy(ENFORCE);
    expect(mtaStsMatchesMx(policy, 'mail.example.test')).toBe(true);
    expect(mtaStsMatchesMx(policy, 'MAIL.example.test.')).toBe(true);
    expect(mtaStsMatchesMx(policy, 'mx1.backup.example.test')).toBe(true);
    expect(mtaStsMatchesMx(policy, 'a.b.backup.example.test')).toBe(false);
    expect(mtaStsMatchesMx(policy, 'backup.example.test')).toBe(false);
    expect(mtaStsMatchesMx(policy, 'evil-mail.example.test')).toBe(false);
  });
});

describe('policy discovery and caching', () => {
  let dns: TestDnsServer;
  const records = (id: string | undefined): TestDnsRecord[] => (id === undefined ? [] : [{ name: '_mta-sts.example.test', type: 'TXT', data: `v=STSv1; id=${id}` }]);

  beforeAll(async () => {
    dns = await startTestDnsServer({ zones: ['test'], records: records('1') });
  });
  afterAll(async () => {
    await dns.close();
  });

  function setup(clock: VirtualClock, bodies: string[]): { resolver: MtaStsResolver; fetched: string[] } {
    const fetched: string[] = [];
    const fetch: MtaStsFetcher = (domain) => {
      fetched.push(domain);
      const body = bodies.shift();
      return body === undefined ? Promise.reject(new MtaStsError('ERR_MTA_STS_FETCH', 'down')) : Promise.resolve(body);
    };
    const lookup = new DnsLookup(new UdpDnsTransport({ servers: [dns.address], timeoutMs: 3000, tries: 1 }), undefined);
    return { resolver: new MtaStsResolver({ dns: lookup, fetch, clock }), fetched };
  }

  it('fetches once per id, keeps the policy through a vanished record or a failed fetch, and refetches on a new id', async () => {
    const clock = new VirtualClock(0);
    const { resolver, fetched } = setup(clock, [ENFORCE, ENFORCE.replace('enforce', 'testing')]);
    dns.setRecords(records('1'));
    const first = await resolver.resolve('example.test');
    expect(first).toMatchObject({ source: 'fetched', enforce: true, id: '1' });
    expect((await resolver.resolve('Example.TEST')).source).toBe('cache');
    expect(fetched).toEqual(['example.test']);

    // An attacker strips the TXT record: the cached policy still applies (§5.1).
    dns.setRecords([]);
    expect(await resolver.resolve('example.test')).toMatchObject({ source: 'cache', enforce: true });

    // A new id: fetched again.
    dns.setRecords(records('2'));
    const second = await resolver.resolve('example.test');
    expect(second).toMatchObject({ source: 'fetched', enforce: false, id: '2' });
    expect(second.policy?.mode).toBe('testing');

    // Another new id but the fetch fails: the cached one stays, with the failure reported.
    dns.setRecords(records('3'));
    const failed = await resolver.resolve('example.test');
    expect(failed).toMatchObject({ source: 'cache', id: '2' });
    expect(failed.failure).toContain('down');

    // max_age runs out: no policy any more.
    clock.advance(86_400_000);
    dns.setRecords([]);
    expect(await resolver.resolve('example.test')).toMatchObject({ source: 'none', policy: undefined, enforce: false });
  });

  it('has no policy without a record, with two records, or with an invalid body', async () => {
    const clock = new VirtualClock(0);
    const { resolver } = setup(clock, ['garbage']);
    dns.setRecords([]);
    expect((await resolver.resolve('example.test')).source).toBe('none');
    dns.setRecords([...records('1'), { name: '_mta-sts.example.test', type: 'TXT', data: 'v=STSv1; id=2' }]);
    expect((await resolver.resolve('example.test')).source).toBe('none');
    dns.setRecords(records('1'));
    const invalid = await resolver.resolve('example.test');
    expect(invalid.source).toBe('none');
    expect(invalid.failure).toContain('invalid MTA-STS policy');
  });
});

describe('HTTPS fetch (RFC 8461 §3.3)', () => {
  let certs: DevCertificates;
  let wrongName: DevCertificates;
  let dns: TestDnsServer;
  let lookup: DnsLookup;
  const servers: https.Server[] = [];

  async function serve(handler: RequestListener, cert: DevCertificates): Promise<number> {
    const server = https.createServer({ key: cert.key, cert: cert.cert }, handler);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as AddressInfo).port;
  }

  beforeAll(async () => {
    certs = await createDevCertificates({ hostnames: ['mta-sts.example.test'], ipAddresses: [] });
    wrongName = await createDevCertificates({ hostnames: ['other.test'], ipAddresses: [], ca: { cert: certs.caCert, key: certs.caKey } });
    dns = await startTestDnsServer({
      zones: ['test'],
      records: [
        { name: 'mta-sts.example.test', type: 'A', data: '127.0.0.1' },
        { name: 'mta-sts.public.test', type: 'A', data: '127.0.0.1' },
      ],
    });
    lookup = new DnsLookup(new UdpDnsTransport({ servers: [dns.address], timeoutMs: 3000, tries: 1 }), undefined);
  });
  afterAll(async () => {
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await dns.close();
  });

  const fetcher = (port: number, extra: Partial<Parameters<typeof createMtaStsFetcher>[0]> = {}) =>
    createMtaStsFetcher({ dns: lookup, port, ca: certs.caCert, allowPrivateAddresses: true, ...extra });

  it('fetches the policy from the well-known path with a valid certificate', async () => {
    const paths: string[] = [];
    const port = await serve((req, res) => {
      paths.push(`${req.headers.host} ${req.url}`);
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' }).end(ENFORCE);
    }, certs);
    expect(parseMtaStsPolicy(await fetcher(port)('example.test')).mode).toBe('enforce');
    expect(paths).toEqual([`mta-sts.example.test:${port} /.well-known/mta-sts.txt`]);
  });

  it('refuses redirects, other statuses, other media types and oversized bodies', async () => {
    const port = await serve((_req, res) => {
      res.writeHead(301, { location: 'https://mta-sts.example.test/elsewhere' }).end();
    }, certs);
    await expect(fetcher(port)('example.test')).rejects.toThrow(/redirect/);
    const notFound = await serve((_req, res) => res.writeHead(404).end('no'), certs);
    await expect(fetcher(notFound)('example.test')).rejects.toThrow(/HTTP status 404/);
    const html = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(ENFORCE), certs);
    await expect(fetcher(html)('example.test')).rejects.toThrow(/media type/);
    const huge = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(`${ENFORCE}${'x: y\n'.repeat(20_000)}`), certs);
    await expect(fetcher(huge)('example.test')).rejects.toThrow(/larger than 65536 bytes/);
    await expect(fetcher(huge, { maxPolicyBytes: 1_000_000 })('example.test')).resolves.toContain('mode: enforce');
  });

  it('refuses a certificate for another name, an untrusted CA, and private addresses by default', async () => {
    const port = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(ENFORCE), wrongName);
    await expect(fetcher(port)('example.test')).rejects.toThrow(/altnames|does not match|Hostname/i);
    const good = await serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end(ENFORCE), certs);
    await expect(fetcher(good, { ca: undefined })('example.test')).rejects.toThrow(/certificate/i);
    await expect(fetcher(good, { allowPrivateAddresses: false })('example.test')).rejects.toThrow(/no usable address/);
  });

  it('gives up after the timeout', async () => {
    const port = await serve(() => undefined, certs);
    await expect(fetcher(port, { timeoutMs: 200 })('example.test')).rejects.toThrow(/within 200 ms/);
  });
});
