// mx-resolver against a real DNS server: Debian's dnsmasq on loopback (see PEERS.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsmasqAvailable, startDnsmasq, type RunningDnsmasq } from '@pigeonpost/testkit';
import { MxError } from '../src/index.js';
import { createMxResolver } from '../src/node/index.js';

const peer = dnsmasqAvailable();

describe.skipIf(!peer.available)(`dnsmasq${peer.available ? '' : ` (skipped: ${peer.reason})`}`, () => {
  let dnsmasq: RunningDnsmasq;

  beforeAll(async () => {
    dnsmasq = await startDnsmasq({
      zones: ['test'],
      records: [
        'mx-host=example.test,mx2.example.test,20',
        'mx-host=example.test,mx1.example.test,10',
        'host-record=mx1.example.test,127.0.0.2',
        'host-record=mx2.example.test,127.0.0.3',
        'mx-host=equal.test,a.equal.test,10',
        'mx-host=equal.test,b.equal.test,10',
        'host-record=a.equal.test,127.0.0.4',
        'host-record=b.equal.test,127.0.0.5',
        'host-record=implicit.test,127.0.0.6',
        'cname=alias.test,example.test',
        'mx-host=nullmx.test,.,0',
        'host-record=nullmx.test,127.0.0.7',
        'mx-host=self.test,mx1.example.test,10',
        'mx-host=self.test,me.self.test,20',
        'mx-host=self.test,peer.self.test,30',
        'host-record=me.self.test,127.0.0.8',
        'host-record=peer.self.test,127.0.0.9',
        'mx-host=loop.test,me.self.test,10',
        'mx-host=loop.test,peer.self.test,20',
        'mx-host=xn--bcher-kva.test,mx1.example.test,10',
      ],
    });
  });
  afterAll(async () => {
    await dnsmasq?.stop();
  });

  const resolver = (options: Parameters<typeof createMxResolver>[0] = {}) =>
    createMxResolver({ servers: [dnsmasq.address], timeoutMs: 3000, tries: 1, allowPrivateAddresses: true, families: [4], ...options }).mx;

  it('orders MX hosts by preference with their addresses', async () => {
    const route = await resolver().resolveMx('example.test');
    expect(route.hosts).toEqual([
      { exchange: 'mx1.example.test', preference: 10, addresses: [{ address: '127.0.0.2', family: 4 }] },
      { exchange: 'mx2.example.test', preference: 20, addresses: [{ address: '127.0.0.3', family: 4 }] },
    ]);
  });

  it('randomises equal preferences', async () => {
    const r = createMxResolver({ servers: [dnsmasq.address], allowPrivateAddresses: true, families: [4], cache: false }).mx;
    const first = new Set<string>();
    for (let i = 0; i < 60 && first.size < 2; i++) first.add((await r.resolveMx('equal.test')).hosts[0]?.exchange ?? '');
    expect([...first].sort()).toEqual(['a.equal.test', 'b.equal.test']);
  });

  it('uses the implicit MX when there is no MX record', async () => {
    const route = await resolver().resolveMx('implicit.test');
    expect(route.implicit).toBe(true);
    expect(route.hosts[0]?.addresses).toEqual([{ address: '127.0.0.6', family: 4 }]);
  });

  it('follows a CNAME', async () => {
    const route = await resolver().resolveMx('alias.test');
    expect(route.hosts.map((h) => h.exchange)).toEqual(['mx1.example.test', 'mx2.example.test']);
  });

  it('refuses a null MX with 5.1.10 (and does not use the A record)', async () => {
    const error = await resolver().resolveMx('nullmx.test').catch((e: unknown) => e);
    expect(MxError.isInstance(error) && error.code).toBe('ERR_MX_NULL_MX');
  });

  it('fails permanently for NXDOMAIN', async () => {
    const error = await resolver().resolveMx('nowhere.test').catch((e: unknown) => e);
    expect(MxError.isInstance(error) && error.code).toBe('ERR_MX_NXDOMAIN');
  });

  it('drops itself and worse MX hosts, and reports a loop when it is the best', async () => {
    const route = await resolver({ localHostnames: ['me.self.test'] }).resolveMx('self.test');
    expect(route.hosts.map((h) => h.exchange)).toEqual(['mx1.example.test']);
    const error = await resolver({ localAddresses: ['127.0.0.8'] }).resolveMx('loop.test').catch((e: unknown) => e);
    expect(MxError.isInstance(error) && error.code).toBe('ERR_MX_LOOP');
  });

  it('looks up IDN domains by their A-label', async () => {
    const route = await resolver().resolveMx('bücher.test');
    expect(route.domain).toBe('xn--bcher-kva.test');
    expect(route.hosts[0]?.exchange).toBe('mx1.example.test');
  });
});
