import type { SmtpSecureMode } from '@pigeonpost/smtp-core';
import type { Secret } from '@pigeonpost/wire';

/**
 * A next hop other than the domain's MX hosts, like a Postfix
 * `transport_maps` entry or `relayhost`: `host` is a name or an address;
 * `mx: true` looks up MX records of `host` (Postfix `smtp:host`), `mx: false`
 * connects to `host` itself (Postfix `smtp:[host]`).
 */
export interface NextHop {
  readonly host: string;
  /** Default: the relay's `port` (25). */
  readonly port?: number;
  /** Look up MX records for `host`. Default false (the `[host]` form). */
  readonly mx?: boolean;
  /** TLS towards this hop. Default: the relay's `tlsPolicy` (`opportunistic`). */
  readonly secure?: SmtpSecureMode;
  /** Verify the certificate (chain and name). Default: only under `secure: 'starttls'`/`'implicit'`, MTA-STS enforce and REQUIRETLS. */
  readonly verifyCertificate?: boolean;
  /** SASL credentials for a smarthost (Postfix `smtp_sasl_password_maps`). */
  readonly auth?: { readonly username: string; readonly password: Secret };
  /** Allow AUTH without TLS (loopback tests only). */
  readonly allowPlaintextAuth?: boolean;
}

export interface RoutingOptions {
  /**
   * Per-domain next hops. Keys: `example.com` (that domain), `.example.com`
   * (its subdomains, as Postfix's `parent_domain_matches_subdomains` off), or
   * `*` (everything else). The most specific key wins.
   */
  readonly transport?: Readonly<Record<string, NextHop>>;
  /** Everything without a transport entry goes here (Postfix `relayhost`). */
  readonly relayHost?: NextHop;
  /** SMTP port for MX delivery. Default 25 (tests use a high port). */
  readonly port?: number;
}

/** The next hop for a recipient domain, or undefined for plain MX delivery. */
export function nextHopFor(domain: string, routing: RoutingOptions): NextHop | undefined {
  const d = domain.toLowerCase().replace(/\.$/, '');
  const table = routing.transport ?? {};
  const exact = table[d];
  if (exact !== undefined) return exact;
  const labels = d.split('.');
  for (let i = 1; i < labels.length; i++) {
    const parent = table[`.${labels.slice(i).join('.')}`];
    if (parent !== undefined) return parent;
  }
  return table['*'] ?? routing.relayHost;
}

/** The domain part of an address (after the last `@`), lower-cased; `''` when there is none. */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}
