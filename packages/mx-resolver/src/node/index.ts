import type { Clock } from '@pigeonpost/wire';
import { systemClock } from '@pigeonpost/wire/node';
import { DnsCache, DnsLookup, type DnsCacheOptions } from '../dns.js';
import { MtaStsResolver } from '../mta-sts.js';
import { MxResolver, type MxResolverOptions } from '../resolver.js';
import { createMtaStsFetcher, type MtaStsFetchOptions } from './mta-sts-fetch.js';
import { UdpDnsTransport, type UdpDnsTransportOptions } from './transport.js';

export { UdpDnsTransport, parseDnsServer, udpDnsTransportDefaults } from './transport.js';
export type { DnsServerAddress, UdpDnsTransportOptions } from './transport.js';
export { createMtaStsFetcher } from './mta-sts-fetch.js';
export type { MtaStsFetchOptions } from './mta-sts-fetch.js';

export interface CreateMxResolverOptions extends MxResolverOptions, Omit<UdpDnsTransportOptions, 'clock'> {
  /** Cache settings, or `false` for no cache. Default: a cache with `dnsCacheDefaults`. */
  readonly cache?: DnsCacheOptions | false;
  readonly clock?: Clock;
  /** MTA-STS fetch settings (port, CA, limits); `dns` and `allowPrivateAddresses` come from this resolver. */
  readonly mtaSts?: Omit<MtaStsFetchOptions, 'dns' | 'allowPrivateAddresses'>;
}

/** An MX resolver and an MTA-STS policy resolver sharing one DNS client and cache. */
export interface NodeMxResolver {
  readonly mx: MxResolver;
  readonly mtaSts: MtaStsResolver;
  readonly dns: DnsLookup;
  /** The cache, when there is one (its `size`, `clear()`). */
  readonly cache: DnsCache | undefined;
}

/** Builds the resolver on UDP/TCP DNS to `servers` (the system's list by default) and the system clock. */
export function createMxResolver(options: CreateMxResolverOptions = {}): NodeMxResolver {
  const clock = options.clock ?? systemClock;
  const transport = new UdpDnsTransport({ ...options, clock });
  const cache = options.cache === false ? undefined : new DnsCache(clock, options.cache ?? {});
  const dns = new DnsLookup(transport, cache);
  const mx = new MxResolver(dns, options);
  const fetch = createMtaStsFetcher({ ...options.mtaSts, dns, allowPrivateAddresses: options.allowPrivateAddresses ?? false });
  return { mx, mtaSts: new MtaStsResolver({ dns, fetch, clock }), dns, cache };
}
