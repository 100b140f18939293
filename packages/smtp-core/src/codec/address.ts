/**
 * RFC 5321 §4.1.2 paths and mailboxes, RFC 6531 §3.3 (SMTPUTF8) and RFC 5890
 * (IDN) domains, and address literals (§4.1.3). Pure: the IDN conversion uses
 * WHATWG `domainToASCII` from `node:url`, which does no I/O.
 *
 * A `Mailbox` can only be built by `parseMailbox`/`parsePath`, so holding one
 * means its syntax was checked (STYLE habit 6).
 */
import { domainToASCII } from 'node:url';

/** A syntactically valid mailbox. */
export interface Mailbox {
  /** The whole address as sent, without angle brackets: `local@domain`. */
  readonly address: string;
  /** The local part as sent (quoted strings keep their quotes). */
  readonly localPart: string;
  /** The domain as sent: a host name (possibly U-labels) or an address literal with its brackets. */
  readonly domain: string;
  /** The domain in ASCII: A-labels for IDNs, lower-cased; address literals unchanged. */
  readonly asciiDomain: string;
  /** The domain is an address literal (`[192.0.2.1]`, `[IPv6:…]`). */
  readonly literal: boolean;
  /** The mailbox contains non-ASCII characters (needs SMTPUTF8, RFC 6531). */
  readonly utf8: boolean;
}

export interface AddressParseOptions {
  /** Allow UTF-8 in local parts and domains (the transaction used SMTPUTF8). Default false. */
  readonly smtputf8?: boolean;
  /**
   * Accept common real-world mistakes: no angle brackets, spaces inside them,
   * leading/trailing/double dots in the local part, `_` in domain labels and a
   * trailing dot on the domain. Default false (RFC 5321 only).
   */
  readonly lenient?: boolean;
}

export type AddressParseResult =
  | { readonly ok: true; readonly mailbox: Mailbox | null; readonly rest: string }
  | { readonly ok: false; readonly reason: string; readonly utf8: boolean };

// RFC 5322 §3.2.3 atext.
const ATEXT = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]$/;
const NON_ASCII = /[^\p{ASCII}]/u;

/** RFC 5321 §4.5.3.1.1–3: local part 64 octets, domain 255, path 256 (brackets included). */
export const MAX_LOCAL_PART_OCTETS = 64;
export const MAX_DOMAIN_OCTETS = 255;
export const MAX_PATH_OCTETS = 256;

const utf8Length = (s: string): number => Buffer.byteLength(s, 'utf8');

function isAtext(ch: string, utf8: boolean): boolean {
  return ATEXT.test(ch) || (utf8 && ch.charCodeAt(0) > 0x7f);
}

function checkLocalPart(local: string, options: AddressParseOptions): string | undefined {
  const utf8 = options.smtputf8 === true;
  if (local.length === 0) return 'empty local part';
  if (utf8Length(local) > MAX_LOCAL_PART_OCTETS) return 'local part longer than 64 octets';
  if (local.startsWith('"')) {
    // Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 §4.1.2).
    if (local.length < 2 || !local.endsWith('"')) return 'unterminated quoted string';
    const inner = local.slice(1, -1);
    for (let i = 0; i < inner.length; i++) {
      const c = inner.charCodeAt(i);
      if (c === 0x5c) {
        const next = inner.charCodeAt(i + 1);
        if (!(next >= 32 && next <= 126)) return 'bad quoted pair';
        i++;
      } else if (c === 0x22) {
        return 'bare quote in quoted string';
      } else if (c > 0x7f ? !utf8 : !(c >= 32 && c <= 126)) {
        return c > 0x7f ? 'non-ASCII local part without SMTPUTF8' : 'control character in quoted string';
      }
    }
    return undefined;
  }
  const atoms = local.split('.');
  for (const atom of atoms) {
    if (atom.length === 0) {
      if (options.lenient === true) continue;
      return 'empty atom in local part (leading, trailing or double dot)';
    }
    for (const ch of atom) {
      if (!isAtext(ch, utf8)) return ch.charCodeAt(0) > 0x7f ? 'non-ASCII local part without SMTPUTF8' : `invalid character ${JSON.stringify(ch)} in local part`;
    }
  }
  return undefined;
}

/** RFC 5321 §4.1.3 IPv4-address-literal: four Snum (0–255). */
export function isIPv4Literal(text: string): boolean {
  const parts = text.split('.');
  return parts.length === 4 && parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255);
}

/** RFC 5321 §4.1.3 IPv6-addr (full, compressed, and with an embedded IPv4 address). */
export function isIPv6Literal(text: string): boolean {
  if (text.length === 0 || text.length > 45) return false;
  let groups = text.split(':');
  let tail = 0;
  const last = groups[groups.length - 1] ?? '';
  if (last.includes('.')) {
    if (!isIPv4Literal(last)) return false;
    groups = groups.slice(0, -1);
    groups.push('0', '0');
    tail = 2;
  }
  void tail;
  const joined = groups.join(':');
  const halves = joined.split('::');
  if (halves.length > 2) return false;
  const hex = /^[0-9A-Fa-f]{1,4}$/;
  const count = (s: string): number | undefined => {
    if (s === '') return 0;
    const g = s.split(':');
    return g.every((x) => hex.test(x)) ? g.length : undefined;
  };
  if (halves.length === 1) return count(joined) === 8;
  const a = count(halves[0] ?? '');
  const b = count(halves[1] ?? '');
  return a !== undefined && b !== undefined && a + b <= 7;
}

function checkAddressLiteral(literal: string): boolean {
  const inner = literal.slice(1, -1);
  if (inner.toLowerCase().startsWith('ipv6:')) return isIPv6Literal(inner.slice(5));
  if (isIPv4Literal(inner)) return true;
  // General-address-literal = Standardized-tag ":" 1*dcontent (§4.1.3); no tag other than IPv6 is registered.
  return false;
}

/** Check a domain (or address literal) and return its ASCII form, or why it is invalid. */
export function checkDomain(domain: string, options: AddressParseOptions = {}): { ok: true; ascii: string; literal: boolean } | { ok: false; reason: string } {
  if (domain.startsWith('[')) {
    if (!domain.endsWith(']') || !checkAddressLiteral(domain)) return { ok: false, reason: 'invalid address literal' };
    return { ok: true, ascii: domain, literal: true };
  }
  let name = domain;
  if (options.lenient === true && name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0) return { ok: false, reason: 'empty domain' };
  if (utf8Length(name) > MAX_DOMAIN_OCTETS) return { ok: false, reason: 'domain longer than 255 octets' };
  const utf8 = NON_ASCII.test(name);
  if (utf8 && options.smtputf8 !== true) return { ok: false, reason: 'non-ASCII domain without SMTPUTF8' };
  const label = options.lenient === true ? /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?$/ : /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/;
  let ascii = name.toLowerCase();
  if (utf8) {
    // RFC 6531 §3.3: U-labels are allowed; they must convert to valid A-labels (RFC 5890).
    ascii = domainToASCII(name);
    if (ascii === '') return { ok: false, reason: 'invalid internationalized domain' };
  }
  const labels = ascii.split('.');
  for (const l of labels) {
    if (l.length === 0 || l.length > 63 || !label.test(l)) return { ok: false, reason: 'invalid domain label' };
  }
  if (!utf8 && labels.some((l) => l.startsWith('xn--')) && domainToASCII(ascii) === '') return { ok: false, reason: 'invalid A-label' };
  return { ok: true, ascii, literal: false };
}

/** Parse `local@domain` (no brackets). */
export function parseMailbox(text: string, options: AddressParseOptions = {}): { ok: true; mailbox: Mailbox } | { ok: false; reason: string; utf8: boolean } {
  const utf8 = NON_ASCII.test(text);
  const at = text.lastIndexOf('@');
  if (at <= 0) return { ok: false, reason: 'missing @ or local part', utf8 };
  const localPart = text.slice(0, at);
  const domain = text.slice(at + 1);
  if (!localPart.startsWith('"') && localPart.includes('"')) return { ok: false, reason: 'misplaced quote', utf8 };
  const localError = checkLocalPart(localPart, options);
  if (localError !== undefined) return { ok: false, reason: localError, utf8 };
  const d = checkDomain(domain, options);
  if (!d.ok) return { ok: false, reason: d.reason, utf8 };
  return { ok: true, mailbox: Object.freeze({ address: text, localPart, domain, asciiDomain: d.ascii, literal: d.literal, utf8 }) };
}

/**
 * Parse a path at the start of `text`: `<local@domain>`, `<>` (when
 * `allowNull`), or a source route `<@a,@b:local@domain>` (ignored, RFC 5321
 * §4.1.2 / Appendix C). Returns the mailbox (`null` for `<>`) and the rest of
 * the text (the ESMTP parameters).
 */
export function parsePath(text: string, options: AddressParseOptions & { allowNull?: boolean } = {}): AddressParseResult {
  const lenient = options.lenient === true;
  let s = text;
  if (lenient) s = s.trimStart();
  let inner: string;
  let rest: string;
  if (s.startsWith('<')) {
    const close = findPathEnd(s);
    if (close < 0) return { ok: false, reason: 'missing >', utf8: NON_ASCII.test(s) };
    inner = s.slice(1, close);
    rest = s.slice(close + 1);
    if (lenient) inner = inner.trim();
  } else if (lenient) {
    const space = s.indexOf(' ');
    inner = space < 0 ? s : s.slice(0, space);
    rest = space < 0 ? '' : s.slice(space);
  } else {
    return { ok: false, reason: 'path must be in angle brackets', utf8: NON_ASCII.test(s) };
  }
  if (utf8Length(inner) + 2 > MAX_PATH_OCTETS) return { ok: false, reason: 'path longer than 256 octets', utf8: NON_ASCII.test(inner) };
  if (rest.length > 0 && !rest.startsWith(' ')) return { ok: false, reason: 'text after path', utf8: NON_ASCII.test(rest) };
  if (inner === '') {
    return options.allowNull === true ? { ok: true, mailbox: null, rest } : { ok: false, reason: 'null path not allowed here', utf8: false };
  }
  // A-d-l ":" — a source route, which RFC 5321 §3.3 says to ignore.
  if (inner.startsWith('@')) {
    const colon = inner.indexOf(':');
    if (colon < 0) return { ok: false, reason: 'bad source route', utf8: false };
    const route = inner.slice(0, colon).split(',');
    for (const hop of route) {
      if (!hop.startsWith('@') || !checkDomain(hop.slice(1), options).ok) return { ok: false, reason: 'bad source route', utf8: NON_ASCII.test(hop) };
    }
    inner = inner.slice(colon + 1);
  }
  const parsed = parseMailbox(inner, options);
  if (!parsed.ok) return parsed;
  return { ok: true, mailbox: parsed.mailbox, rest };
}

/** Index of the `>` that closes the path, skipping quoted strings. */
function findPathEnd(s: string): number {
  let quoted = false;
  for (let i = 1; i < s.length; i++) {
    const c = s[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '>') return i;
  }
  return -1;
}
