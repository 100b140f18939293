import { domainToASCII } from 'node:url';
import { isIP } from 'node:net';

/** A domain made ready for DNS: A-labels, lower case, no trailing dot; or an address literal. */
export type NormalizedDestination =
  | { readonly kind: 'domain'; readonly name: string }
  | { readonly kind: 'literal'; readonly address: string; readonly family: 4 | 6 };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Turns the domain part of an address into what DNS is asked: IDNA
 * (UTS #46, through `node:url`'s `domainToASCII`) to A-labels, lower case,
 * trailing dot removed, each label 1–63 letters/digits/hyphens (RFC 1035,
 * RFC 5890; underscores are refused: they never name a mail host), at most
 * 253 octets. An RFC 5321 address literal (`[192.0.2.1]`,
 * `[IPv6:2001:db8::1]`) is returned as an address. Returns `undefined` for
 * anything else.
 */
export function normalizeDestination(domain: string): NormalizedDestination | undefined {
  const trimmed = domain.trim();
  if (trimmed.startsWith('[') && trimmed.endsWith(']')) {
    const inner = trimmed.slice(1, -1);
    if (/^ipv6:/i.test(inner)) {
      const address = inner.slice(5);
      return isIP(address) === 6 ? { kind: 'literal', address, family: 6 } : undefined;
    }
    return isIP(inner) === 4 ? { kind: 'literal', address: inner, family: 4 } : undefined;
  }
  const name = normalizeHostname(trimmed);
  return name === undefined ? undefined : { kind: 'domain', name };
}

/** `normalizeDestination` for a host name only (an MX exchange, say): A-labels, or `undefined` when invalid. */
export function normalizeHostname(host: string): string | undefined {
  if (host === '' || host.length > 1024 || /[\s\0]/.test(host)) return undefined;
  const withoutDot = host.endsWith('.') ? host.slice(0, -1) : host;
  if (withoutDot === '' || isIP(withoutDot) !== 0) return undefined;
  // domainToASCII returns '' for invalid input (bad punycode, disallowed code points).
  const ascii = domainToASCII(withoutDot).toLowerCase();
  if (ascii === '' || ascii.length > 253) return undefined;
  const labels = ascii.split('.');
  // A single label is not a mail domain (RFC 5321 §2.3.5: fully qualified).
  if (labels.length < 2) return undefined;
  for (const label of labels) if (!LABEL.test(label)) return undefined;
  // An all-numeric top-level label is an IPv4 address typed as a name.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return undefined;
  return ascii;
}
