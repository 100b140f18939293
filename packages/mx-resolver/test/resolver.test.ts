import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { DnsCache, DnsLookup, MxError, MxResolver, type MxRoute } from '../src/index.js';
import { UdpDnsTransport, createMxResolver, type CreateMxResolverOptions } from '../src/node/index.js';
import { startTestDnsServer, type TestDnsRecord, type TestDnsServer } from '../src/testing/index.js';

const ZONE: TestDnsRecord[] = [
  // Different preferences, given out of order.
  { name: 'example.test', type: 'MX', data: { preference: 20, exchange: 'mx2.example.test' } },
  { name: 'example.test', type: 'MX', data: { preference: 10, exchange: 'mx1.example.test' } },
  { name: 'mx1.example.test', type: 'A', data: '127.0.0.2' },
  { name: 'mx1.example.test', type: 'AAAA', data: '::1' },
  { name: 'mx2.example.test', type: 'A', data: '127.0.0.3' },
  // Equal preferences.
  { name: 'equal.test', type: 'MX', data: { preference: 10, exchange: 'a.equal.test' } },
  { name: 'equal.test', type: 'MX', data: { preference: 10, exchange: 'b.equal.test' } },
  { name: 'equal.test', type: 'MX', data: { preference: 10, exchange: 'c.equal.test' } },
  { name: 'equal.test', type: 'MX', data: { preference: 5, exchange: 'first.equal.test' } },
  { name: 'a.equal.test', type: 'A', data: '127.0.1.1' },
  { name: 'b.equal.test', type: 'A', data: '127.0.1.2' },
  { name: 'c.equal.test', type: 'A', data: '127.0.1.3' },
  { name: 'first.equal.test', type: 'A', data: '127.0.1.0' },
  // Implicit MX: no MX, an A record.
  { name: 'implicit.test', type: 'A', data: '127.0.0.4' },
  // Neither MX nor address, but the name exists.
  { name: 'txtonly.test', type: 'TXT', data: 'hello' },
  // CNAME to a domain with MX.
  { name: 'alias.test', type: 'CNAME', data: 'example.test' },
  // MX target that is a CNAME.
  { name: 'cnamemx.test', type: 'MX', data: { preference: 10, exchange: 'mail.cnamemx.test' } },
  { name: 'mail.cnamemx.test', type: 'CNAME', data: 'mx1.example.test' },
  // Null MX, alone and mixed.
  { name: 'nullmx.test', type: 'MX', data: { preference: 0, exchange: '.' } },
  { name: 'nullmx.test', type: 'A', data: '127.0.0.9' },
  { name: 'mixednull.test', type: 'MX', data: { preference: 0, exchange: '.' } },
  { name: 'mixednull.test', type: 'MX', data: { preference: 10, exchange: 'mx1.example.test' } },
  // MX records none of which has an address; the domain has an A record that must NOT be used.
  { name: 'deadmx.test', type: 'MX', data: { preference: 10, exchange: 'gone.deadmx.test' } },
  { name: 'deadmx.test', type: 'MX', data: { preference: 20, exchange: 'noaddr.deadmx.test' } },
  { name: 'noaddr.deadmx.test', type: 'TXT', data: 'x' },
  { name: 'deadmx.test', type: 'A', data: '127.0.0.5' },
  // This host is an MX.
  { name: 'self.test', type: 'MX', data: { preference: 10, exchange: 'mx1.example.test' } },
  { name: 'self.test', type: 'MX', data: { preference: 20, exchange: 'me.self.test' } },
  { name: 'self.test', type: 'MX', data: { preference: 20, exchange: 'peer.self.test' } },
  { name: 'self.test', type: 'MX', data: { preference: 30, exchange: 'backup.self.test' } },
  { name: 'me.self.test', type: 'A', data: '127.0.0.10' },
  { name: 'peer.self.test', type: 'A', data: '127.0.0.11' },
  { name: 'backup.self.test', type: 'A', data: '127.0.0.12' },
  { name: 'selfbest.test', type: 'MX', data: { preference: 10, exchange: 'me.self.test' } },
  { name: 'selfbest.test', type: 'MX', data: { preference: 20, exchange: 'backup.self.test' } },
  { name: 'selfaddr.test', type: 'MX', data: { preference: 10, exchange: 'other-name.self.test' } },
  { name: 'other-name.self.test', type: 'A', data: '127.0.0.10' },
  // Public and private addresses.
  { name: 'public.test', type: 'MX', data: { preference: 10, exchange: 'mx.public.test' } },
  { name: 'public.test', type: 'MX', data: { preference: 20, exchange: 'lan.public.test' } },
  { name: 'mx.public.test', type: 'A', data: '192.0.43.10' },
  { name: 'mx.public.test', type: 'A', data: '10.1.2.3' },
  { name: 'lan.public.test', type: 'A', data: '192.168.1.1' },
  { name: 'lan.public.test', type: 'AAAA', data: 'fe80::1' },
  // Many addresses (limit).
  { name: 'many.test', type: 'MX', data: { preference: 10, exchange: 'm1.many.test' } },
  { name: 'many.test', type: 'MX', data: { preference: 20, exchange: 'm2.many.test' } },
  ...[1, 2, 3, 4].map((i): TestDnsRecord => ({ name: 'm1.many.test', type: 'A', data: `127.0.2.${i}` })),
  ...[1, 2, 3, 4].map((i): TestDnsRecord => ({ name: 'm2.many.test', type: 'A', data: `127.0.3.${i}` })),
  // IDN: bücher.test → xn--bcher-kva.test
  { name: 'xn--bcher-kva.test', type: 'MX', data: { preference: 10, exchange: 'mx1.example.test' } },
  // Short TTLs for the cache tests.
  { name: 'ttl.test', type: 'MX', data: { preference: 10, exchange: 'mx1.example.test' }, ttl: 30 },
  // A server failure for one MX host only.
  { name: 'halfbroken.test', type: 'MX', data: { preference: 10, exchange: 'broken.halfbroken.test' } },
  { name: 'halfbroken.test', type: 'MX', data: { preference: 20, exchange: 'mx2.example.test' } },
  { name: 'allbroken.test', type: 'MX', data: { preference: 10, exchange: 'broken.allbroken.test' } },
  // A big answer, truncated over UDP.
  ...Array.from({ length: 40 }, (_, i): TestDnsRecord => ({ name: 'big.test', type: 'MX', data: { preference: 10 + i, exchange: `a-rather-long-mail-exchanger-name-number-${i}.big.test` } })),
  { name: 'a-rather-long-mail-exchanger-name-number-0.big.test', type: 'A', data: '127.0.4.1' },
];

let dns: TestDnsServer;

beforeAll(async () => {
  dns = await startTestDnsServer({
    records: ZONE,
    zones: ['test'],
    behaviour: (q) => {
      if (q.name === 'servfail.test' || q.name.startsWith('broken.')) return 'servfail';
      if (q.name === 'refused.test') return 'refused';
      if (q.name === 'silent.test') return 'drop';
      if (q.name === 'big.test') return 'truncate';
      return 'answer';
    },
  });
});
afterAll(async () => {
  await dns.close();
});

/** A resolver on the test server. With a virtual clock, the cache runs on it (and so would DNS timeouts: only for answered queries). */
function resolver(options: CreateMxResolverOptions = {}, clock?: VirtualClock): MxResolver {
  // A generous timeout: a loaded CI machine can stall the event loop for a while. Tests of timeouts pass their own.
  return createMxResolver({ servers: [dns.address], timeoutMs: 3000, tries: 1, allowPrivateAddresses: true, ...(clock ? { clock } : {}), ...options }).mx;
}

async function failure(promise: Promise<unknown>): Promise<MxError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(MxError.isInstance(error), `expected an MxError, got ${String(error)}`).toBe(true);
  return error as MxError;
}

const names = (route: MxRoute): string[] => route.hosts.map((h) => h.exchange);

describe('MX ordering (RFC 5321 §5.1)', () => {
  it('sorts by preference and resolves each host, IPv6 and IPv4', async () => {
    const route = await resolver({ addressPreference: 'ipv6' }).resolveMx('example.test');
    expect(route.implicit).toBe(false);
    expect(names(route)).toEqual(['mx1.example.test', 'mx2.example.test']);
    expect(route.hosts[0]?.addresses).toEqual([
      { address: '::1', family: 6 },
      { address: '127.0.0.2', family: 4 },
    ]);
    expect(route.hosts[1]?.addresses).toEqual([{ address: '127.0.0.3', family: 4 }]);
    expect(route.hosts.map((h) => h.preference)).toEqual([10, 20]);
  });

  it('honours the address family preference and the family list', async () => {
    const v4first = await resolver({ addressPreference: 'ipv4' }).resolveMx('example.test');
    expect(v4first.hosts[0]?.addresses.map((a) => a.family)).toEqual([4, 6]);
    const v4only = await resolver({ families: [4] }).resolveMx('example.test');
    expect(v4only.hosts[0]?.addresses).toEqual([{ address: '127.0.0.2', family: 4 }]);
  });

  /** Which of the equal-preference hosts comes first, counted over `runs` resolutions. */
  async function firstOfEqual(r: ReturnType<typeof resolver>, runs: number): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (let i = 0; i < runs; i++) {
      const route = await r.resolveMx('equal.test');
      expect(route.hosts[0]?.exchange).toBe('first.equal.test');
      expect(route.hosts.slice(1).map((h) => h.preference)).toEqual([10, 10, 10]);
      const second = route.hosts[1]?.exchange ?? '';
      counts.set(second, (counts.get(second) ?? 0) + 1);
    }
    return counts;
  }

  it('randomises hosts of equal preference (statistically), keeping preference order', async () => {
    // A seeded generator (mulberry32), so the statistics are the same at every run: each of the three
    // comes first about a third of the time, chi-square with 2 degrees of freedom under 13.8 (the 0.001
    // critical value), which a fixed or biased shuffle fails.
    let seed = 0x9e3779b9;
    const seeded = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const runs = 300;
    const counts = await firstOfEqual(resolver({ random: seeded }), runs);
    expect([...counts.keys()].sort()).toEqual(['a.equal.test', 'b.equal.test', 'c.equal.test']);
    const expected = runs / 3;
    const chi2 = [...counts.values()].reduce((sum, n) => sum + (n - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(13.8);
    // The default source (Math.random) shuffles too: in 300 runs each comes first at least once
    // (a fixed order fails; chance fails with p = 3 * (2/3)^300, never).
    expect([...(await firstOfEqual(resolver(), runs)).keys()].sort()).toEqual(['a.equal.test', 'b.equal.test', 'c.equal.test']);
  });

  it('is deterministic with an injected random source', async () => {
    const a = await resolver({ random: () => 0 }).resolveMx('equal.test');
    const b = await resolver({ random: () => 0 }).resolveMx('equal.test');
    expect(names(a)).toEqual(names(b));
  });

  it('follows a CNAME for the domain and for an MX target', async () => {
    const viaAlias = await resolver().resolveMx('alias.test');
    expect(names(viaAlias)).toEqual(['mx1.example.test', 'mx2.example.test']);
    const cnameTarget = await resolver({ families: [4] }).resolveMx('cnamemx.test');
    expect(cnameTarget.hosts).toEqual([{ exchange: 'mail.cnamemx.test', preference: 10, addresses: [{ address: '127.0.0.2', family: 4 }] }]);
  });

  it('uses the implicit MX (the domain\'s own address) when there is no MX record', async () => {
    const route = await resolver().resolveMx('implicit.test');
    expect(route.implicit).toBe(true);
    expect(route.hosts).toEqual([{ exchange: 'implicit.test', preference: 0, addresses: [{ address: '127.0.0.4', family: 4 }] }]);
  });

  it('converts IDN domains to A-labels and refuses invalid ones', async () => {
    const route = await resolver().resolveMx('BÜCHER.test.');
    expect(route.domain).toBe('xn--bcher-kva.test');
    expect(names(route)).toEqual(['mx1.example.test']);
    for (const bad of ['', 'localhost', 'exa mple.test', 'a..test', '-bad.test', 'under_score.test', `${'a'.repeat(64)}.test`, '1.2.3.4', '[300.1.1.1]', 'xn--zz.test']) {
      const error = await failure(resolver().resolveMx(bad));
      expect(error.code, bad).toBe('ERR_MX_INVALID_DOMAIN');
      expect(error.temporary).toBe(false);
      expect(error.reply?.smtp).toEqual({ code: 550, enhanced: '5.1.2' });
    }
  });

  it('routes RFC 5321 address literals without DNS', async () => {
    const before = dns.queries.length;
    const v4 = await resolver().resolveMx('[127.0.0.7]');
    expect(v4.hosts).toEqual([{ exchange: '[127.0.0.7]', preference: 0, addresses: [{ address: '127.0.0.7', family: 4 }] }]);
    const v6 = await resolver().resolveMx('[IPv6:::1]');
    expect(v6.hosts[0]?.addresses).toEqual([{ address: '::1', family: 6 }]);
    expect(dns.queries.length).toBe(before);
  });

  it('gets a truncated answer again over TCP', async () => {
    const route = await resolver().resolveMx('big.test');
    expect(route.hosts[0]?.exchange).toBe('a-rather-long-mail-exchanger-name-number-0.big.test');
    expect(route.skipped.filter((s) => s.reason === 'nxdomain' || s.reason === 'host-limit').length).toBe(39);
    const asked = dns.queries.filter((q) => q.name === 'big.test');
    expect(asked.map((q) => q.transport)).toEqual(['udp', 'tcp']);
  });
});

describe('failures', () => {
  it('NXDOMAIN is permanent (5.1.2)', async () => {
    const error = await failure(resolver().resolveMx('no-such-domain.test'));
    expect(error.code).toBe('ERR_MX_NXDOMAIN');
    expect(error.temporary).toBe(false);
    expect(error.reply?.smtp).toEqual({ code: 550, enhanced: '5.1.2' });
  });

  it('SERVFAIL, REFUSED and timeouts are temporary (4.4.3)', async () => {
    for (const domain of ['servfail.test', 'refused.test', 'silent.test']) {
      const error = await failure(resolver({ timeoutMs: 300 }).resolveMx(domain));
      expect(error.code, domain).toBe('ERR_MX_TEMPORARY');
      expect(error.temporary).toBe(true);
      expect(error.reply?.smtp).toEqual({ code: 451, enhanced: '4.4.3' });
    }
  });

  it('a null MX alone is a permanent 5.1.10, and the domain\'s A record is not used', async () => {
    const error = await failure(resolver().resolveMx('nullmx.test'));
    expect(error.code).toBe('ERR_MX_NULL_MX');
    expect(error.reply?.smtp).toEqual({ code: 556, enhanced: '5.1.10' });
  });

  it('a null MX next to real MX records is ignored, as Postfix does', async () => {
    const route = await resolver().resolveMx('mixednull.test');
    expect(names(route)).toEqual(['mx1.example.test']);
  });

  it('MX records without usable hosts fail permanently, never falling back to the domain\'s A record', async () => {
    const error = await failure(resolver().resolveMx('deadmx.test'));
    expect(error.code).toBe('ERR_MX_NO_USABLE_HOST');
    expect(error.reply?.smtp).toEqual({ code: 550, enhanced: '5.4.4' });
    expect(error.message).toContain('gone.deadmx.test (nxdomain:');
    expect(error.message).toContain('noaddr.deadmx.test (no-address:');
  });

  it('a name that exists without MX or address fails permanently', async () => {
    const error = await failure(resolver().resolveMx('txtonly.test'));
    expect(error.code).toBe('ERR_MX_NO_USABLE_HOST');
  });

  it('skips an MX host whose lookup fails when another one works, and is temporary when none does', async () => {
    const half = await resolver().resolveMx('halfbroken.test');
    expect(names(half)).toEqual(['mx2.example.test']);
    expect(half.skipped).toEqual([expect.objectContaining({ exchange: 'broken.halfbroken.test', reason: 'dns-failure' })]);
    const all = await failure(resolver().resolveMx('allbroken.test'));
    expect(all.code).toBe('ERR_MX_TEMPORARY');
  });

  it('an aborted lookup rejects at once', async () => {
    const controller = new AbortController();
    const pending = resolver({ timeoutMs: 300 }).resolveMx('silent.test', { signal: controller.signal });
    controller.abort();
    const error = await failure(pending);
    expect(error.code).toBe('ERR_MX_TEMPORARY');
    expect(error.message).toContain('aborted');
  });
});

describe('loop avoidance (RFC 5321 §5.1)', () => {
  it('drops this host and every MX of equal or worse preference', async () => {
    const route = await resolver({ localHostnames: ['me.self.test'] }).resolveMx('self.test');
    expect(names(route)).toEqual(['mx1.example.test']);
    expect(route.skipped.map((s) => `${s.exchange} ${s.reason}`).sort()).toEqual(['backup.self.test self', 'me.self.test self', 'peer.self.test self']);
  });

  it('recognises this host by address too', async () => {
    const error = await failure(resolver({ localAddresses: ['127.0.0.10'] }).resolveMx('selfaddr.test'));
    expect(error.code).toBe('ERR_MX_LOOP');
  });

  it('is a permanent 5.4.6 when this host is the best MX', async () => {
    const error = await failure(resolver({ localHostnames: ['ME.self.test.'] }).resolveMx('selfbest.test'));
    expect(error.code).toBe('ERR_MX_LOOP');
    expect(error.reply?.smtp).toEqual({ code: 550, enhanced: '5.4.6' });
    const implicit = await failure(resolver({ localAddresses: ['127.0.0.4'] }).resolveMx('implicit.test'));
    expect(implicit.code).toBe('ERR_MX_LOOP');
  });
});

describe('address policy and limits', () => {
  it('refuses private, loopback and link-local addresses by default', async () => {
    const strict = resolver({ allowPrivateAddresses: false });
    const route = await strict.resolveMx('public.test');
    expect(route.hosts).toEqual([{ exchange: 'mx.public.test', preference: 10, addresses: [{ address: '192.0.43.10', family: 4 }] }]);
    expect(route.skipped).toEqual([expect.objectContaining({ exchange: 'lan.public.test', reason: 'address-refused' })]);
    const loopback = await failure(strict.resolveMx('example.test'));
    expect(loopback.code).toBe('ERR_MX_NO_USABLE_HOST');
    expect(loopback.message).toContain('loopback');
    expect((await failure(strict.resolveMx('[127.0.0.1]'))).code).toBe('ERR_MX_NO_USABLE_HOST');
  });

  it('caps the addresses of a route (Postfix smtp_mx_address_limit)', async () => {
    const route = await resolver({ maxAddresses: 5 }).resolveMx('many.test');
    expect(route.hosts.map((h) => h.addresses.length)).toEqual([4, 1]);
    const three = await resolver({ maxAddresses: 3 }).resolveMx('many.test');
    expect(three.hosts.map((h) => h.addresses.length)).toEqual([3]);
    expect(three.skipped).toEqual([expect.objectContaining({ exchange: 'm2.many.test', reason: 'address-limit' })]);
    const oneHost = await resolver({ maxHosts: 1 }).resolveMx('many.test');
    expect(names(oneHost)).toEqual(['m1.many.test']);
    expect(oneHost.skipped).toEqual([expect.objectContaining({ exchange: 'm2.many.test', reason: 'host-limit' })]);
  });
});

describe('cache', () => {
  it('answers from the cache until the TTL runs out (positive and negative)', async () => {
    const clock = new VirtualClock(5_000_000);
    const r = resolver({}, clock);
    const count = (name: string): number => dns.queries.filter((q) => q.name === name).length;

    const before = count('ttl.test');
    await r.resolveMx('ttl.test');
    await r.resolveMx('ttl.test');
    expect(count('ttl.test')).toBe(before + 1);
    clock.advance(29_000);
    const aged = await r.resolveMx('ttl.test');
    expect(aged.ttl).toBeLessThanOrEqual(1);
    expect(count('ttl.test')).toBe(before + 1);
    clock.advance(1_000);
    await r.resolveMx('ttl.test');
    expect(count('ttl.test')).toBe(before + 2);

    // NXDOMAIN is kept for the SOA's negative TTL (60 s here).
    const nx = 'cached-nx.test';
    await failure(r.resolveMx(nx));
    await failure(r.resolveMx(nx));
    expect(count(nx)).toBe(1);
    clock.advance(60_000);
    await failure(r.resolveMx(nx));
    expect(count(nx)).toBe(2);
  });

  it('is bounded, and shares one query between concurrent lookups', async () => {
    const clock = new VirtualClock(0);
    const cache = new DnsCache(clock, { maxEntries: 2 });
    const lookup = new DnsLookup(new UdpDnsTransport({ servers: [dns.address], timeoutMs: 3000, tries: 1, clock }), cache);
    const r = new MxResolver(lookup, { allowPrivateAddresses: true, families: [4] });
    await r.resolveMx('implicit.test'); // MX (nodata) + A
    expect(cache.size).toBe(2);
    await r.resolveMx('example.test');
    expect(cache.size).toBe(2);

    const before = dns.queries.filter((q) => q.name === 'equal.test').length;
    await Promise.all([lookup.lookup('equal.test', 'MX'), lookup.lookup('EQUAL.test', 'MX'), lookup.lookup('equal.test', 'MX')]);
    expect(dns.queries.filter((q) => q.name === 'equal.test').length).toBe(before + 1);
  });

  it('caps positive TTLs', () => {
    const clock = new VirtualClock(0);
    const cache = new DnsCache(clock, { maxTtlSeconds: 10 });
    cache.set('a.test', 'A', { kind: 'records', records: [], canonicalName: 'a.test', ttl: 1_000_000 });
    clock.advance(9_999);
    expect(cache.get('a.test', 'A')).toBeDefined();
    clock.advance(1);
    expect(cache.get('a.test', 'A')).toBeUndefined();
    cache.set('zero.test', 'A', { kind: 'records', records: [], canonicalName: 'zero.test', ttl: 0 });
    expect(cache.get('zero.test', 'A')).toBeUndefined();
  });
});

describe('transport', () => {
  it('ignores a response with the wrong ID (spoofing defence) and times out', async () => {
    const spoofing = await startTestDnsServer({ records: ZONE, behaviour: () => 'wrong-id' });
    try {
      const r = createMxResolver({ servers: [spoofing.address], timeoutMs: 200, tries: 1, allowPrivateAddresses: true }).mx;
      const error = await failure(r.resolveMx('example.test'));
      expect(error.code).toBe('ERR_MX_TEMPORARY');
      expect(error.message).toContain('no answer');
    } finally {
      await spoofing.close();
    }
  });

  it('tries the next server when one does not answer', async () => {
    const dead = await startTestDnsServer({ behaviour: () => 'drop' });
    try {
      const r = createMxResolver({ servers: [dead.address, dns.address], timeoutMs: 1000, tries: 1, allowPrivateAddresses: true }).mx;
      expect(names(await r.resolveMx('example.test'))).toEqual(['mx1.example.test', 'mx2.example.test']);
      expect(dead.queries.length).toBeGreaterThan(0);
    } finally {
      await dead.close();
    }
  });

  it('parses server addresses and refuses bad ones', async () => {
    const { parseDnsServer } = await import('../src/node/index.js');
    expect(parseDnsServer('127.0.0.1')).toEqual({ host: '127.0.0.1', port: 53 });
    expect(parseDnsServer('127.0.0.1:15353')).toEqual({ host: '127.0.0.1', port: 15353 });
    expect(parseDnsServer('[::1]:15353')).toEqual({ host: '::1', port: 15353 });
    expect(parseDnsServer('::1')).toEqual({ host: '::1', port: 53 });
    for (const bad of ['dns.google', '127.0.0.1:0', '127.0.0.1:70000', '[::1]x', '']) {
      expect(() => parseDnsServer(bad), bad).toThrow(TypeError);
    }
  });
});

describe('resolveHost (a next hop without MX lookup)', () => {
  it('resolves a named host\'s addresses, or takes an address as it is', async () => {
    const before = dns.queries.filter((q) => q.name === 'mx2.example.test' && q.type === 'MX').length;
    const route = await resolver({ families: [4] }).resolveHost('mx2.example.test');
    expect(route.hosts).toEqual([{ exchange: 'mx2.example.test', preference: 0, addresses: [{ address: '127.0.0.3', family: 4 }] }]);
    expect(dns.queries.filter((q) => q.name === 'mx2.example.test' && q.type === 'MX').length).toBe(before);
    expect((await resolver().resolveHost('127.0.0.9')).hosts[0]?.addresses).toEqual([{ address: '127.0.0.9', family: 4 }]);
    expect((await resolver().resolveHost('[::1]')).hosts[0]?.addresses).toEqual([{ address: '::1', family: 6 }]);
    expect((await failure(resolver().resolveHost('nothing.test'))).code).toBe('ERR_MX_NO_USABLE_HOST');
    expect((await failure(resolver({ allowPrivateAddresses: false }).resolveHost('127.0.0.9'))).code).toBe('ERR_MX_NO_USABLE_HOST');
  });
});
