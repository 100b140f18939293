import type { Clock } from '@pigeonpost/wire';
import type { DnsLookup } from './dns.js';
import { normalizeDestination } from './domain.js';
import { MtaStsError } from './errors.js';

/** RFC 8461 §3.2 policy modes. */
export type MtaStsMode = 'enforce' | 'testing' | 'none';

/** A parsed MTA-STS policy. */
export interface MtaStsPolicy {
  readonly version: 'STSv1';
  readonly mode: MtaStsMode;
  /** MX patterns: host names, or `*.example.com` matching exactly one more label. */
  readonly mx: readonly string[];
  /** Seconds the policy may be cached (at most 31,557,600, one year). */
  readonly maxAge: number;
}

export const mtaStsDefaults = Object.freeze({
  /** RFC 8461 §3.3: "senders SHOULD impose a limit on the maximum size of the response body (e.g., 64 KB)". */
  maxPolicyBytes: 65_536,
  /** RFC 8461 §3.3: "a sender SHOULD use a timeout" and suggests 60 s; 10 s keeps a queue run moving. */
  fetchTimeoutMs: 10_000,
  /** RFC 8461 §3.2: max_age at most 31557600 seconds (about one year). */
  maxMaxAgeSeconds: 31_557_600,
  /** Most domains whose policies are cached (least recently used dropped first). */
  maxCachedPolicies: 10_000,
});

/** The `id` of an `_mta-sts` TXT record (RFC 8461 §3.1), or `undefined` when the record is not a valid STSv1 record. */
export function parseMtaStsRecord(txt: string): { readonly id: string } | undefined {
  const fields = txt.split(';').map((f) => f.trim()).filter((f) => f !== '');
  if (fields[0] !== 'v=STSv1') return undefined;
  let id: string | undefined;
  for (const field of fields.slice(1)) {
    const eq = field.indexOf('=');
    if (eq <= 0) return undefined;
    const key = field.slice(0, eq).trim();
    const value = field.slice(eq + 1).trim();
    if (key === 'id') {
      if (!/^[A-Za-z0-9]{1,32}$/.test(value)) return undefined;
      id ??= value;
    }
  }
  return id === undefined ? undefined : { id };
}

/** Parses a policy body (RFC 8461 §3.2). Throws `MtaStsError` (`ERR_MTA_STS_INVALID_POLICY`) when it is not a valid policy. */
export function parseMtaStsPolicy(text: string): MtaStsPolicy {
  const fields = new Map<string, string[]>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw invalid(`not a "key: value" line: ${JSON.stringify(line.slice(0, 80))}`);
    const key = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    const list = fields.get(key) ?? [];
    list.push(value);
    fields.set(key, list);
  }
  // Unknown keys are ignored (§3.2: "additional key/value pairs ... MUST be ignored"); the first of a repeated key wins.
  const version = fields.get('version')?.[0];
  if (version !== 'STSv1') throw invalid(`version must be STSv1, got ${JSON.stringify(version)}`);
  const mode = fields.get('mode')?.[0];
  if (mode !== 'enforce' && mode !== 'testing' && mode !== 'none') throw invalid(`mode must be enforce, testing or none, got ${JSON.stringify(mode)}`);
  const maxAgeText = fields.get('max_age')?.[0];
  if (maxAgeText === undefined || !/^[0-9]{1,10}$/.test(maxAgeText)) throw invalid(`max_age must be a number of seconds, got ${JSON.stringify(maxAgeText)}`);
  const maxAge = Math.min(Number(maxAgeText), mtaStsDefaults.maxMaxAgeSeconds);
  const mx = (fields.get('mx') ?? []).map((p) => p.toLowerCase().replace(/\.$/, ''));
  for (const pattern of mx) {
    const name = pattern.startsWith('*.') ? pattern.slice(2) : pattern;
    const normalized = normalizeDestination(name);
    if (normalized?.kind !== 'domain') throw invalid(`mx pattern ${JSON.stringify(pattern)} is not a host name`);
  }
  if (mx.length === 0 && mode !== 'none') throw invalid('a policy in enforce or testing mode needs at least one mx line');
  return { version: 'STSv1', mode, mx, maxAge };
}

/** Whether an MX host name matches one of the policy's patterns (RFC 8461 §4.1: a wildcard matches one leftmost label only). */
export function mtaStsMatchesMx(policy: Pick<MtaStsPolicy, 'mx'>, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  for (const pattern of policy.mx) {
    if (pattern.startsWith('*.')) {
      const suffix = pattern.slice(1); // ".example.com"
      if (name.endsWith(suffix)) {
        const label = name.slice(0, -suffix.length);
        if (label !== '' && !label.includes('.')) return true;
      }
    } else if (name === pattern) {
      return true;
    }
  }
  return false;
}

/** Fetches the policy text of a domain over HTTPS, as RFC 8461 §3.3 says. `@pigeonpost/mx-resolver/node` has one. */
export type MtaStsFetcher = (domain: string, signal?: AbortSignal) => Promise<string>;

/** What the relay must do for one domain, from its MTA-STS policy. */
export interface MtaStsResult {
  readonly domain: string;
  /** The policy in force, or undefined when the domain has none (or none could be had and none was cached). */
  readonly policy: MtaStsPolicy | undefined;
  /** The policy `id` from DNS (or the cache). */
  readonly id: string | undefined;
  /** Where the policy came from. */
  readonly source: 'none' | 'fetched' | 'cache';
  /** In `enforce` mode: deliver only over TLS with a valid certificate to an MX host that matches the policy. */
  readonly enforce: boolean;
  /** Why no policy, when a fetch or parse failed (report it; RFC 8460 TLSRPT would). */
  readonly failure?: string;
}

interface CachedPolicy {
  readonly id: string;
  readonly policy: MtaStsPolicy;
  readonly expiresAt: number;
}

export interface MtaStsResolverOptions {
  readonly dns: DnsLookup;
  readonly fetch: MtaStsFetcher;
  readonly clock: Pick<Clock, 'now'>;
  readonly maxCachedPolicies?: number;
}

/**
 * RFC 8461 policy discovery with its caching rules: the TXT record's `id`
 * decides whether to fetch again; a cached policy stays in force until its
 * `max_age` runs out even when the TXT record vanishes or a fetch fails
 * (§5.1), which is what stops a downgrade by an attacker who removes the
 * record.
 */
export class MtaStsResolver {
  readonly #options: MtaStsResolverOptions;
  readonly #cache = new Map<string, CachedPolicy>();

  constructor(options: MtaStsResolverOptions) {
    this.#options = options;
  }

  async resolve(domain: string, options: { readonly signal?: AbortSignal } = {}): Promise<MtaStsResult> {
    const normalized = normalizeDestination(domain);
    if (normalized?.kind !== 'domain') return { domain, policy: undefined, id: undefined, source: 'none', enforce: false, failure: 'not a domain' };
    const name = normalized.name;
    const now = this.#options.clock.now();
    let cached = this.#cache.get(name);
    if (cached !== undefined && cached.expiresAt <= now) {
      this.#cache.delete(name);
      cached = undefined;
    }
    const fromCache = (failure?: string): MtaStsResult => {
      if (cached === undefined) return { domain: name, policy: undefined, id: undefined, source: 'none', enforce: false, ...(failure ? { failure } : {}) };
      return { domain: name, policy: cached.policy, id: cached.id, source: 'cache', enforce: cached.policy.mode === 'enforce', ...(failure ? { failure } : {}) };
    };

    let id: string | undefined;
    try {
      const txt = await this.#options.dns.lookup(`_mta-sts.${name}`, 'TXT', options.signal);
      if (txt.kind === 'records') {
        const ids = txt.records.flatMap((r) => (r.type === 'TXT' && r.data.startsWith('v=STSv1') ? [parseMtaStsRecord(r.data)] : []));
        // §3.1: more than one STSv1 record, or an invalid one, means "no policy" from DNS.
        if (ids.length === 1 && ids[0] !== undefined) id = ids[0].id;
      }
    } catch (error) {
      return fromCache(`TXT lookup failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (id === undefined) return fromCache();
    if (cached !== undefined && cached.id === id) return fromCache();

    let policy: MtaStsPolicy;
    try {
      policy = parseMtaStsPolicy(await this.#options.fetch(name, options.signal));
    } catch (error) {
      return fromCache(error instanceof Error ? error.message : String(error));
    }
    if (policy.maxAge > 0) {
      this.#cache.delete(name);
      this.#cache.set(name, { id, policy, expiresAt: this.#options.clock.now() + policy.maxAge * 1000 });
      const limit = this.#options.maxCachedPolicies ?? mtaStsDefaults.maxCachedPolicies;
      while (this.#cache.size > limit) {
        const oldest = this.#cache.keys().next();
        if (oldest.done === true) break;
        this.#cache.delete(oldest.value);
      }
    } else {
      this.#cache.delete(name);
    }
    return { domain: name, policy, id, source: 'fetched', enforce: policy.mode === 'enforce' };
  }
}

function invalid(message: string): MtaStsError {
  return new MtaStsError('ERR_MTA_STS_INVALID_POLICY', `invalid MTA-STS policy: ${message}`);
}
