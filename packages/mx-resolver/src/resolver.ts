import { isIP } from 'node:net';
import { addressScope, type AddressScope } from './addresses.js';
import type { DnsLookup} from './dns.js';
import { type LookupResult } from './dns.js';
import { normalizeDestination, normalizeHostname } from './domain.js';
import { DnsError, MxError } from './errors.js';

/** One address to connect to. */
export interface MxAddress {
  readonly address: string;
  readonly family: 4 | 6;
}

/** One mail exchanger, in the order to try, with its addresses in the order to try. */
export interface MxHost {
  /** The MX target (A-labels, no trailing dot); for an implicit MX, the domain itself; for an address literal, the literal. */
  readonly exchange: string;
  readonly preference: number;
  readonly addresses: readonly MxAddress[];
}

/** A host left out of the route, and why (for logs and the DSN's diagnostic). */
export interface SkippedMxHost {
  readonly exchange: string;
  readonly preference: number;
  readonly reason:
    | 'invalid-name'
    | 'no-address'
    | 'nxdomain'
    | 'dns-failure'
    | 'address-refused'
    | 'self'
    | 'address-limit'
    | 'host-limit';
  readonly detail?: string;
}

/** Where mail for a domain goes. */
export interface MxRoute {
  /** The domain as looked up: A-labels, lower case (or the address literal). */
  readonly domain: string;
  /** True when the domain has no MX records and its own addresses are used (RFC 5321 §5.1 implicit MX). */
  readonly implicit: boolean;
  /** Hosts to try, best first: by preference, in random order among equal preferences. Never empty. */
  readonly hosts: readonly MxHost[];
  readonly skipped: readonly SkippedMxHost[];
  /** Seconds this answer stays valid: the smallest TTL among the records used. */
  readonly ttl: number;
}

export type AddressFamilyPreference = 'ipv4' | 'ipv6' | 'any';

export interface MxResolverOptions {
  /** Names of this host (its `myhostname`, as Postfix calls it): an MX pointing at one of them is this host. */
  readonly localHostnames?: readonly string[];
  /** Addresses this host receives mail on: an MX resolving to one of them is this host. */
  readonly localAddresses?: readonly string[];
  /** Allow loopback, private (RFC 1918, ULA), link-local and reserved addresses. Default false: mail is relayed to the public internet only. Tests set it. */
  readonly allowPrivateAddresses?: boolean;
  /** Which address families to use. Default both. */
  readonly families?: readonly (4 | 6)[];
  /** Order of families for one host: `ipv6` first, `ipv4` first, or `any` (random per host, Postfix's default `smtp_address_preference`). Default `any`. */
  readonly addressPreference?: AddressFamilyPreference;
  /** Most addresses in a route, over all hosts (Postfix's `smtp_mx_address_limit`). Default 5. */
  readonly maxAddresses?: number;
  /** Most MX hosts looked up per route. Default 10. */
  readonly maxHosts?: number;
  /** Source of randomness in [0, 1) for shuffling equal preferences. Default `Math.random`. */
  readonly random?: () => number;
}

export const mxResolverDefaults = Object.freeze({
  allowPrivateAddresses: false,
  families: Object.freeze([4, 6] as (4 | 6)[]),
  addressPreference: 'any',
  /** Postfix's `smtp_mx_address_limit` (5). */
  maxAddresses: 5,
  /** Postfix's `smtp_mx_session_limit` is 2 sessions; looking up more than 10 hosts for one domain only costs queries. */
  maxHosts: 10,
});

export interface ResolveOptions {
  readonly signal?: AbortSignal;
}

interface Candidate {
  readonly exchange: string;
  readonly preference: number;
}

type HostAddresses =
  | { readonly ok: true; readonly addresses: readonly MxAddress[]; readonly ttl: number }
  | { readonly ok: false; readonly reason: 'nxdomain' | 'no-address' | 'dns-failure'; readonly detail: string };

/**
 * RFC 5321 §5.1 routing over a `DnsLookup`: the sans-I/O heart of the
 * package. `createMxResolver` from `@pigeonpost/mx-resolver/node` wires it to
 * UDP/TCP DNS and the system clock.
 */
export class MxResolver {
  readonly #dns: DnsLookup;
  readonly #options: Required<MxResolverOptions>;
  readonly #selfNames: ReadonlySet<string>;
  readonly #selfAddresses: ReadonlySet<string>;

  constructor(dns: DnsLookup, options: MxResolverOptions = {}) {
    this.#dns = dns;
    this.#options = {
      localHostnames: [],
      localAddresses: [],
      random: Math.random,
      ...mxResolverDefaults,
      ...options,
    };
    this.#selfNames = new Set(this.#options.localHostnames.map((n) => normalizeHostname(n) ?? n.toLowerCase()));
    this.#selfAddresses = new Set(this.#options.localAddresses.map(canonicalAddress));
  }

  /** Where mail for `domain` (a domain or an RFC 5321 address literal) goes. Rejects with an `MxError`. */
  async resolveMx(domain: string, options: ResolveOptions = {}): Promise<MxRoute> {
    const destination = normalizeDestination(domain);
    if (destination === undefined) {
      throw new MxError('ERR_MX_INVALID_DOMAIN', domain, `invalid mail domain: ${JSON.stringify(domain)}`);
    }
    if (destination.kind === 'literal') return this.#literalRoute(destination.address, destination.family);
    const name = destination.name;

    const mx: LookupResult = await this.#dns.lookup(name, 'MX', options.signal).catch((error: unknown) => {
      throw temporary(name, `MX lookup for ${name} failed`, error);
    });
    if (mx.kind === 'nxdomain') {
      throw new MxError('ERR_MX_NXDOMAIN', name, `domain ${name} does not exist (NXDOMAIN)`);
    }
    if (mx.kind !== 'records') {
      return this.#implicitRoute(name, mx.ttl, options);
    }
    const candidates: Candidate[] = [];
    let nullMx = false;
    for (const record of mx.records) {
      if (record.type !== 'MX') continue;
      const exchange = record.data.exchange.replace(/\.$/, '');
      if (exchange === '') {
        nullMx = true; // RFC 7505: "0 ."; ignored when real MX records are next to it, as Postfix does.
        continue;
      }
      candidates.push({ exchange, preference: record.data.preference });
    }
    if (candidates.length === 0) {
      if (nullMx) throw new MxError('ERR_MX_NULL_MX', name, `domain ${name} accepts no mail (null MX, RFC 7505)`);
      return this.#implicitRoute(name, mx.ttl, options);
    }
    return this.#mxRoute(name, this.#order(candidates), mx.ttl, options);
  }

  /**
   * A route to one named host without an MX lookup — Postfix's `[host]` next
   * hop in `relayhost` and `transport_maps`: its A/AAAA records (or the
   * address itself for an IP address or literal), with the same address
   * policy, limits and loop check as `resolveMx`.
   */
  async resolveHost(host: string, options: ResolveOptions = {}): Promise<MxRoute> {
    const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
    const family = isIP(bare.replace(/^ipv6:/i, ''));
    if (family !== 0) return this.#literalRoute(bare.replace(/^ipv6:/i, ''), family === 6 ? 6 : 4);
    const name = normalizeHostname(bare);
    if (name === undefined) throw new MxError('ERR_MX_INVALID_DOMAIN', host, `invalid host name: ${JSON.stringify(host)}`);
    return this.#implicitRoute(name, Number.POSITIVE_INFINITY, options);
  }

  #order(candidates: Candidate[]): Candidate[] {
    // Shuffle first (Fisher–Yates), then a stable sort by preference: equal preferences end up in random order.
    const list = [...candidates];
    for (let i = list.length - 1; i > 0; i--) {
      const j = Math.floor(this.#options.random() * (i + 1));
      const a = list[i] as Candidate;
      list[i] = list[j] as Candidate;
      list[j] = a;
    }
    return list.sort((a, b) => a.preference - b.preference);
  }

  async #mxRoute(domain: string, ordered: readonly Candidate[], mxTtl: number, options: ResolveOptions): Promise<MxRoute> {
    const skipped: SkippedMxHost[] = [];
    const considered = ordered.slice(0, this.#options.maxHosts);
    for (const c of ordered.slice(this.#options.maxHosts)) skipped.push({ ...c, reason: 'host-limit' });

    // Loop avoidance by name (RFC 5321 §5.1): drop this host and every worse MX.
    let selfPreference = Number.POSITIVE_INFINITY;
    for (const c of considered) {
      if (this.#selfNames.has(normalizeHostname(c.exchange) ?? c.exchange.toLowerCase())) selfPreference = Math.min(selfPreference, c.preference);
    }
    const looked = await Promise.all(
      considered.map(async (c) => {
        if (c.preference >= selfPreference) return { c, result: undefined };
        const host = normalizeHostname(c.exchange);
        if (host === undefined) return { c, result: { ok: false, reason: 'invalid-name', detail: `MX target ${c.exchange} is not a host name` } as const };
        return { c, result: await this.#addresses(host, options) };
      }),
    );
    // Loop avoidance by address: an MX that resolves to one of our own addresses is us.
    for (const { c, result } of looked) {
      if (result?.ok === true && result.addresses.some((a) => this.#selfAddresses.has(canonicalAddress(a.address)))) {
        selfPreference = Math.min(selfPreference, c.preference);
      }
    }

    const hosts: MxHost[] = [];
    let ttl = mxTtl;
    let temporaryFailure: string | undefined;
    let budget = this.#options.maxAddresses;
    for (const { c, result } of looked) {
      if (c.preference >= selfPreference) {
        skipped.push({ ...c, reason: 'self' });
        continue;
      }
      if (result === undefined) continue;
      if (!result.ok) {
        if (result.reason === 'dns-failure') temporaryFailure ??= result.detail;
        skipped.push({ ...c, reason: result.reason, detail: result.detail });
        continue;
      }
      const usable = this.#filter(c, result.addresses, skipped);
      if (usable.length === 0) continue;
      if (budget <= 0) {
        skipped.push({ ...c, reason: 'address-limit' });
        continue;
      }
      const addresses = usable.slice(0, budget);
      budget -= addresses.length;
      hosts.push({ exchange: normalizeHostname(c.exchange) ?? c.exchange, preference: c.preference, addresses });
      ttl = Math.min(ttl, result.ttl);
    }
    if (hosts.length > 0) return { domain, implicit: false, hosts, skipped, ttl };
    if (Number.isFinite(selfPreference) && skipped.every((s) => s.reason === 'self' || s.preference >= selfPreference)) {
      throw new MxError('ERR_MX_LOOP', domain, `mail for ${domain} loops back to myself (this host is its best MX)`);
    }
    if (temporaryFailure !== undefined) {
      throw new MxError('ERR_MX_TEMPORARY', domain, `no MX host of ${domain} could be resolved now: ${temporaryFailure}`);
    }
    throw new MxError('ERR_MX_NO_USABLE_HOST', domain, `no usable MX host for ${domain}: ${describe(skipped)}`);
  }

  async #implicitRoute(domain: string, ttl: number, options: ResolveOptions): Promise<MxRoute> {
    if (this.#selfNames.has(domain)) throw new MxError('ERR_MX_LOOP', domain, `mail for ${domain} loops back to myself (implicit MX)`);
    const result = await this.#addresses(domain, options);
    const c = { exchange: domain, preference: 0 };
    if (!result.ok) {
      if (result.reason === 'dns-failure') throw new MxError('ERR_MX_TEMPORARY', domain, `address lookup for ${domain} failed: ${result.detail}`);
      throw new MxError('ERR_MX_NO_USABLE_HOST', domain, `${domain} has neither MX records nor an address`);
    }
    if (result.addresses.some((a) => this.#selfAddresses.has(canonicalAddress(a.address)))) {
      throw new MxError('ERR_MX_LOOP', domain, `mail for ${domain} loops back to myself (implicit MX)`);
    }
    const skipped: SkippedMxHost[] = [];
    const usable = this.#filter(c, result.addresses, skipped).slice(0, this.#options.maxAddresses);
    if (usable.length === 0) throw new MxError('ERR_MX_NO_USABLE_HOST', domain, `no usable address for ${domain}: ${describe(skipped)}`);
    return { domain, implicit: true, hosts: [{ ...c, addresses: usable }], skipped, ttl: Math.min(ttl, result.ttl) };
  }

  #literalRoute(address: string, family: 4 | 6): MxRoute {
    const display = family === 6 ? `[IPv6:${address}]` : `[${address}]`;
    if (this.#selfAddresses.has(canonicalAddress(address))) throw new MxError('ERR_MX_LOOP', display, `mail for ${display} loops back to myself`);
    const skipped: SkippedMxHost[] = [];
    const usable = this.#filter({ exchange: display, preference: 0 }, [{ address, family }], skipped);
    if (usable.length === 0) throw new MxError('ERR_MX_NO_USABLE_HOST', display, `address literal ${display} refused: ${describe(skipped)}`);
    return { domain: display, implicit: true, hosts: [{ exchange: display, preference: 0, addresses: usable }], skipped, ttl: Number.POSITIVE_INFINITY };
  }

  #filter(c: Candidate, addresses: readonly MxAddress[], skipped: SkippedMxHost[]): MxAddress[] {
    if (this.#options.allowPrivateAddresses) return [...addresses];
    const usable: MxAddress[] = [];
    const refused: string[] = [];
    for (const a of addresses) {
      const scope: AddressScope = addressScope(a.address);
      if (scope === 'public') usable.push(a);
      else refused.push(`${a.address} (${scope})`);
    }
    if (usable.length === 0 && refused.length > 0) skipped.push({ ...c, reason: 'address-refused', detail: refused.join(', ') });
    return usable;
  }

  async #addresses(host: string, options: ResolveOptions): Promise<HostAddresses> {
    const families = this.#options.families;
    const lookups = await Promise.all(
      families.map(async (family) => {
        try {
          return { family, result: await this.#dns.lookup(host, family === 4 ? 'A' : 'AAAA', options.signal) };
        } catch (error) {
          return { family, error: error instanceof Error ? error.message : String(error) };
        }
      }),
    );
    const byFamily = new Map<4 | 6, MxAddress[]>();
    let ttl = Number.POSITIVE_INFINITY;
    let failure: string | undefined;
    let nxdomain = true;
    for (const l of lookups) {
      if ('error' in l) {
        failure ??= l.error;
        nxdomain = false;
        continue;
      }
      if (l.result.kind !== 'nxdomain') nxdomain = false;
      if (l.result.kind !== 'records') continue;
      const list: MxAddress[] = [];
      for (const r of l.result.records) {
        if ((r.type === 'A' || r.type === 'AAAA') && isIP(r.data) === l.family) list.push({ address: r.data, family: l.family });
      }
      if (list.length > 0) {
        byFamily.set(l.family, list);
        ttl = Math.min(ttl, l.result.ttl);
      }
    }
    if (byFamily.size === 0) {
      // One family failing while the other has no data is still a temporary failure: the addresses may exist.
      if (failure !== undefined) return { ok: false, reason: 'dns-failure', detail: failure };
      return { ok: false, reason: nxdomain ? 'nxdomain' : 'no-address', detail: `${host} has no ${families.map((f) => (f === 4 ? 'A' : 'AAAA')).join('/')} record` };
    }
    let order: (4 | 6)[];
    const preference = this.#options.addressPreference;
    if (preference === 'ipv4') order = [4, 6];
    else if (preference === 'ipv6') order = [6, 4];
    else order = this.#options.random() < 0.5 ? [4, 6] : [6, 4];
    const addresses: MxAddress[] = [];
    for (const family of order) addresses.push(...(byFamily.get(family) ?? []));
    return { ok: true, addresses, ttl };
  }
}

function canonicalAddress(address: string): string {
  const a = address.toLowerCase();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1] ?? a;
  if (isIP(a) !== 6) return a;
  // Expand :: so that '2001:db8::1' and '2001:db8:0:0:0:0:0:1' compare equal.
  const [head = '', tail = ''] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = a.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.map((g) => Number.parseInt(g, 16).toString(16)).join(':');
}

function temporary(domain: string, what: string, error: unknown): MxError {
  const detail = error instanceof Error ? error.message : String(error);
  if (DnsError.isInstance(error) && error.code === 'ERR_DNS_ABORTED') {
    return new MxError('ERR_MX_TEMPORARY', domain, `${what}: aborted`, { cause: error });
  }
  return new MxError('ERR_MX_TEMPORARY', domain, `${what}: ${detail}`, { cause: error });
}

function describe(skipped: readonly SkippedMxHost[]): string {
  if (skipped.length === 0) return 'no hosts';
  return skipped.map((s) => `${s.exchange} (${s.reason}${s.detail ? `: ${s.detail}` : ''})`).join('; ');
}
