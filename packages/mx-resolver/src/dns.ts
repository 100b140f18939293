import type { Clock } from '@pigeonpost/wire';
import { DnsError } from './errors.js';

/** The record types routing needs. */
export type DnsRecordType = 'A' | 'AAAA' | 'MX' | 'TXT' | 'CNAME';

/** One resource record, decoded. `data` depends on `type`. */
export type DnsRecord =
  | { readonly name: string; readonly type: 'A' | 'AAAA' | 'CNAME'; readonly ttl: number; readonly data: string }
  | { readonly name: string; readonly type: 'MX'; readonly ttl: number; readonly data: { readonly preference: number; readonly exchange: string } }
  /** TXT: the record's character-strings joined (RFC 8461 §3.1 and RFC 7208 §3.3 read them that way). */
  | { readonly name: string; readonly type: 'TXT'; readonly ttl: number; readonly data: string }
  | { readonly name: string; readonly type: 'SOA'; readonly ttl: number; readonly data: { readonly minimum: number } };

/** A DNS response as the resolver needs it. */
export interface DnsResponse {
  /** `NOERROR`, `NXDOMAIN`, `SERVFAIL`, `REFUSED`, … */
  readonly rcode: string;
  readonly answers: readonly DnsRecord[];
  /** The authority section: its SOA gives the negative-caching TTL (RFC 2308 §5). */
  readonly authorities: readonly DnsRecord[];
}

/**
 * How queries reach a DNS server. `@pigeonpost/mx-resolver/node` has one over
 * UDP with TCP fallback; tests may pass their own. Rejects with a `DnsError`
 * when no response came (timeout, network); a response with an error RCODE
 * resolves and the caller decides.
 */
export interface DnsTransport {
  query(name: string, type: DnsRecordType, signal?: AbortSignal): Promise<DnsResponse>;
}

/** The outcome of looking up one name and type, CNAMEs followed. */
export type LookupResult =
  | { readonly kind: 'records'; readonly records: readonly DnsRecord[]; readonly canonicalName: string; readonly ttl: number }
  | { readonly kind: 'nxdomain' | 'nodata'; readonly canonicalName: string; readonly ttl: number };

export interface DnsCacheOptions {
  /** Most entries kept (least recently used dropped first). Default 10,000. */
  readonly maxEntries?: number;
  /** Positive answers are kept at most this long, whatever their TTL, in seconds. Default 86,400 (one day). */
  readonly maxTtlSeconds?: number;
  /** Negative answers (NXDOMAIN, no data) at most this long, in seconds. Default 3,600 (RFC 2308 §5 recommends one to three hours at most). */
  readonly maxNegativeTtlSeconds?: number;
  /** Negative TTL when the response carries no SOA, in seconds. Default 60. */
  readonly defaultNegativeTtlSeconds?: number;
}

export const dnsCacheDefaults = Object.freeze({
  maxEntries: 10_000,
  maxTtlSeconds: 86_400,
  maxNegativeTtlSeconds: 3_600,
  defaultNegativeTtlSeconds: 60,
});

export const lookupDefaults = Object.freeze({
  /** CNAMEs followed for one lookup before giving up (BIND and Postfix stop at about 8–16). */
  maxCnameHops: 8,
});

interface Entry {
  readonly result: LookupResult;
  readonly expiresAt: number;
}

/**
 * DNS answers kept for their TTL (RFC 1035 §3.2.1), negative answers for the
 * SOA's negative TTL (RFC 2308), bounded in size, on an injectable clock.
 */
export class DnsCache {
  readonly #clock: Pick<Clock, 'now'>;
  readonly #options: Required<DnsCacheOptions>;
  readonly #entries = new Map<string, Entry>();

  constructor(clock: Pick<Clock, 'now'>, options: DnsCacheOptions = {}) {
    this.#clock = clock;
    this.#options = { ...dnsCacheDefaults, ...options };
  }

  get size(): number {
    return this.#entries.size;
  }

  get(name: string, type: DnsRecordType): LookupResult | undefined {
    const key = `${type} ${name}`;
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    const now = this.#clock.now();
    if (entry.expiresAt <= now) {
      this.#entries.delete(key);
      return undefined;
    }
    // Refresh the LRU position, and age the TTL as a cache must (RFC 1035 §6.1.2).
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return { ...entry.result, ttl: Math.max(0, Math.floor((entry.expiresAt - now) / 1000)) };
  }

  set(name: string, type: DnsRecordType, result: LookupResult): void {
    const cap = result.kind === 'records' ? this.#options.maxTtlSeconds : this.#options.maxNegativeTtlSeconds;
    const ttl = Math.min(result.ttl, cap);
    const key = `${type} ${name}`;
    this.#entries.delete(key);
    if (!(ttl > 0) || this.#options.maxEntries <= 0) return;
    this.#entries.set(key, { result, expiresAt: this.#clock.now() + ttl * 1000 });
    while (this.#entries.size > this.#options.maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      this.#entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.#entries.clear();
  }

  negativeTtl(authorities: readonly DnsRecord[]): number {
    for (const record of authorities) {
      if (record.type === 'SOA') return Math.min(record.ttl, record.data.minimum);
    }
    return this.#options.defaultNegativeTtlSeconds;
  }
}

function sameName(a: string, b: string): boolean {
  return a.length === b.length && a.toLowerCase() === b.toLowerCase();
}

function stripDot(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * Looks up `name`/`type`, following CNAMEs within a response and by further
 * queries, through the cache. Concurrent lookups of the same question share
 * one query. Rejects with a `DnsError` for a transport failure or an error
 * RCODE other than NXDOMAIN.
 */
export class DnsLookup {
  readonly #transport: DnsTransport;
  readonly #cache: DnsCache | undefined;
  readonly #maxCnameHops: number;
  readonly #inFlight = new Map<string, Promise<LookupResult>>();

  constructor(transport: DnsTransport, cache: DnsCache | undefined, options: { readonly maxCnameHops?: number } = {}) {
    this.#transport = transport;
    this.#cache = cache;
    this.#maxCnameHops = options.maxCnameHops ?? lookupDefaults.maxCnameHops;
  }

  lookup(name: string, type: DnsRecordType, signal?: AbortSignal): Promise<LookupResult> {
    const key = `${type} ${name.toLowerCase()}`;
    const cached = this.#cache?.get(name.toLowerCase(), type);
    if (cached !== undefined) return Promise.resolve(cached);
    const running = this.#inFlight.get(key);
    if (running !== undefined) return running;
    const run = this.#resolve(name.toLowerCase(), type, signal).finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, run);
    return run;
  }

  async #resolve(qname: string, type: DnsRecordType, signal: AbortSignal | undefined): Promise<LookupResult> {
    let current = qname;
    let ttl = Number.POSITIVE_INFINITY;
    for (let hop = 0; hop <= this.#maxCnameHops; hop++) {
      const cached = hop === 0 ? undefined : this.#cache?.get(current, type);
      if (cached !== undefined) return this.#store(qname, type, { ...cached, ttl: Math.min(ttl, cached.ttl) });
      const response = await this.#transport.query(current, type, signal);
      if (response.rcode !== 'NOERROR' && response.rcode !== 'NXDOMAIN') {
        throw new DnsError('ERR_DNS_SERVER_FAILURE', `${current} ${type}`, `DNS server answered ${response.rcode} for ${current} ${type}`);
      }
      // Walk the CNAME chain inside this response.
      let followed = 0;
      for (;;) {
        const matches = response.answers.filter((r) => r.type === type && sameName(stripDot(r.name), current));
        if (matches.length > 0) {
          for (const r of matches) ttl = Math.min(ttl, r.ttl);
          return this.#store(qname, type, { kind: 'records', records: matches, canonicalName: current, ttl });
        }
        if (type === 'CNAME') break;
        const alias = response.answers.find((r) => r.type === 'CNAME' && sameName(stripDot(r.name), current));
        if (alias === undefined || alias.type !== 'CNAME') break;
        ttl = Math.min(ttl, alias.ttl);
        current = stripDot(alias.data).toLowerCase();
        if (++followed + hop > this.#maxCnameHops) {
          throw new DnsError('ERR_DNS_BAD_RESPONSE', `${qname} ${type}`, `more than ${this.#maxCnameHops} CNAMEs from ${qname}`);
        }
      }
      hop += followed;
      // The chain moved to a name this response has no records for. A
      // negative answer (NXDOMAIN, or NOERROR with the zone's SOA) is about
      // that last name (RFC 6604); a bare CNAME means: ask for the target.
      const answersTarget = response.rcode === 'NXDOMAIN' || response.authorities.some((r) => r.type === 'SOA');
      if (followed > 0 && !answersTarget) continue;
      const negativeTtl = this.#cache?.negativeTtl(response.authorities) ?? 0;
      return this.#store(qname, type, {
        kind: response.rcode === 'NXDOMAIN' ? 'nxdomain' : 'nodata',
        canonicalName: current,
        ttl: Math.min(ttl, negativeTtl),
      });
    }
    throw new DnsError('ERR_DNS_BAD_RESPONSE', `${qname} ${type}`, `more than ${this.#maxCnameHops} CNAMEs from ${qname}`);
  }

  #store(qname: string, type: DnsRecordType, result: LookupResult): LookupResult {
    this.#cache?.set(qname, type, result);
    return result;
  }
}
