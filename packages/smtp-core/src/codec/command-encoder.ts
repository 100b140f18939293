/**
 * Client commands to bytes (RFC 5321 §4.1), validated so that an invalid
 * command cannot be built (STYLE habit 6): no CR, LF or NUL ever reaches a
 * token, an address cannot close its angle brackets early, and ESMTP
 * parameter values are checked against RFC 5321 §4.1.2 `esmtp-value` or
 * xtext-encoded (RFC 3461 §4). Whatever a caller passes, the result is one
 * command line ending in the only CRLF it contains — or an
 * `SmtpClientError` `ERR_SMTP_CLIENT_INVALID_ARGUMENT` (side `'local'`).
 */
import { SmtpClientError } from '../errors.js';
import { encodeXtext } from './xtext.js';

/** ESMTP parameters of MAIL or RCPT: `{ SIZE: '1000', SMTPUTF8: true }`. `true` sends the keyword alone. */
export type EsmtpParams = Readonly<Record<string, string | true | undefined>>;

export type ClientCommand =
  | { readonly name: 'EHLO' | 'HELO' | 'LHLO'; readonly domain: string }
  | { readonly name: 'MAIL'; readonly from: string; readonly params?: EsmtpParams }
  | { readonly name: 'RCPT'; readonly to: string; readonly params?: EsmtpParams }
  | { readonly name: 'BDAT'; readonly size: number; readonly last: boolean }
  | { readonly name: 'AUTH'; readonly mechanism: string; readonly initialResponse?: string }
  | { readonly name: 'DATA' | 'RSET' | 'NOOP' | 'QUIT' | 'STARTTLS' };

export interface EncodeCommandOptions {
  /**
   * Allow UTF-8 in addresses and parameter values (RFC 6531 §3.3). Only when
   * the server offers SMTPUTF8 and the MAIL command carries it.
   */
  readonly smtputf8?: boolean;
}

function invalid(message: string): SmtpClientError {
  return new SmtpClientError('ERR_SMTP_CLIENT_INVALID_ARGUMENT', message, { side: 'local' });
}

// RFC 5321 §4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
const ESMTP_KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// RFC 5321 §4.1.2: esmtp-value = 1*(%d33-60 / %d62-126); RFC 6531 §3.3 adds UTF8-non-ascii.
const ESMTP_VALUE_ASCII = /^[\x21-\x3c\x3e-\x7e]+$/;
const ESMTP_VALUE_UTF8 = /^(?:[\x21-\x3c\x3e-\x7e]|[\u0080-\u{10FFFF}])+$/u;
// RFC 5321 §4.1.2 atext (RFC 5322 §3.2.3) for Dot-string local parts with RFC 6531 §3.3's UTF8-non-ascii (ASCII: `ATEXT`).
const ATOM_UTF8 = /^(?:[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]|[\u0080-\u{10FFFF}])+$/u;
// RFC 5321 §4.1.2 Quoted-string: qtextSMTP = %d32-33 / %d35-91 / %d93-126; quoted-pairSMTP = "\" %d32-126.
// "<" and ">" are legal inside quotes but refused here: a server that looks for ">" without parsing
// quotes would end the path early, and no real mailbox needs them.
const QUOTED_ASCII = /^"(?:[\x20\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]|\\[\x20-\x3b\x3d\x3f-\x7e])*"$/;
const QUOTED_UTF8 = /^"(?:[\x20\x21\x23-\x3b\x3d\x3f-\x5b\x5d-\x7e]|\\[\x20-\x3b\x3d\x3f-\x7e]|[\u0080-\u{10FFFF}])*"$/u;
// RFC 5321 §4.1.2 sub-domain = Let-dig [Ldh-str], with UTF8-non-ascii (ASCII: `LDH`); underscores are
// tolerated (they exist in real host names).
const LABEL_UTF8 = /^(?:[A-Za-z0-9_]|[\u0080-\u{10FFFF}])(?:(?:[A-Za-z0-9_-]|[\u0080-\u{10FFFF}])*(?:[A-Za-z0-9_]|[\u0080-\u{10FFFF}]))?$/u;
// RFC 5321 §4.1.3 address literal: "[" (IPv4 / "IPv6:" IPv6 / tag ":" dcontent) "]", dcontent = %d33-90 / %d94-126.
const ADDRESS_LITERAL = /^\[[\x21-\x5a\x5e-\x7e]+\]$/;

/** True when the string holds only ASCII. */
export function isAscii(text: string): boolean {
  return !/[\u0080-\uffff]/.test(text);
}

/** RFC 5322 §3.2.3 atext (ASCII): 1 where the code is allowed in an atom. */
const ATEXT = new Uint8Array(128);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~") ATEXT[c.charCodeAt(0)] = 1;
/** Let-dig plus "_" (1) and "-" (2): what an ASCII domain label may hold. */
const LDH = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_') LDH[c.charCodeAt(0)] = 1;
LDH[0x2d] = 2;

/** An ASCII Dot-string (RFC 5321 §4.1.2): atoms of atext joined by single dots, checked in one pass (no split, no regex). */
function isDotStringAscii(text: string): boolean {
  let atomStart = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x2e) {
      if (atomStart) return false;
      atomStart = true;
    } else if (c < 128 && ATEXT[c] === 1) atomStart = false;
    else return false;
  }
  return !atomStart;
}

/** ASCII labels (letters, digits, `_`, and `-` inside) joined by single dots, checked in one pass. */
function isDomainAscii(domain: string): boolean {
  let labelStart = true;
  let last = 0;
  for (let i = 0; i < domain.length; i++) {
    const c = domain.charCodeAt(i);
    if (c === 0x2e) {
      if (labelStart || last === 2) return false;
      labelStart = true;
      continue;
    }
    const kind = c < 128 ? LDH[c]! : 0;
    if (kind === 0 || (labelStart && kind === 2)) return false;
    labelStart = false;
    last = kind;
  }
  return !labelStart && last !== 2;
}

function checkDomain(domain: string, allowUtf8: boolean): string | undefined {
  if (domain.length === 0) return 'empty domain';
  if (domain.charCodeAt(0) === 0x5b) return ADDRESS_LITERAL.test(domain) ? undefined : `invalid domain ${JSON.stringify(domain)}`;
  if (!allowUtf8 || isAscii(domain)) return isDomainAscii(domain) ? undefined : `invalid domain ${JSON.stringify(domain)}`;
  for (const l of domain.split('.')) if (!LABEL_UTF8.test(l)) return `invalid domain ${JSON.stringify(domain)}`;
  return undefined;
}

/**
 * Why `address` cannot be sent as a mailbox (RFC 5321 §4.1.2 `Mailbox`), or
 * `undefined` when it can. Non-ASCII is allowed only with `smtputf8`.
 */
export function checkMailbox(address: string, options: EncodeCommandOptions = {}): string | undefined {
  const ascii = isAscii(address);
  const allowUtf8 = options.smtputf8 === true;
  if (!allowUtf8 && !ascii) return 'non-ASCII address without SMTPUTF8';
  // RFC 5321 §4.5.3.1.3: a path is at most 256 octets, angle brackets included.
  if ((ascii ? address.length : Buffer.byteLength(address, 'utf8')) > 254) return 'address longer than 254 octets (RFC 5321 §4.5.3.1.3)';
  const at = address.lastIndexOf('@');
  if (at <= 0) return `address ${JSON.stringify(address)} has no local part and domain`;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (local.startsWith('"')) {
    if (!(allowUtf8 ? QUOTED_UTF8 : QUOTED_ASCII).test(local)) return 'invalid quoted local part';
  } else if (ascii) {
    if (!isDotStringAscii(local)) return `invalid local part ${JSON.stringify(local)}`;
  } else {
    for (const part of local.split('.')) if (!ATOM_UTF8.test(part)) return `invalid local part ${JSON.stringify(local)}`;
  }
  return checkDomain(domain, allowUtf8);
}

/**
 * The ORCPT value for an address: `rfc822;` + xtext for ASCII (RFC 3461
 * §4.2), `utf-8;` + utf-8-addr-xtext for a UTF-8 address (RFC 6533 §3:
 * `+`, `=`, `\`, controls and non-ASCII as `\x{HEX}`).
 */
export function encodeOrcpt(address: string): string {
  if (isAscii(address)) return `rfc822;${encodeXtext(address)}`;
  let out = '';
  for (const ch of address) {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp >= 0x21 && cp <= 0x7e && cp !== 0x2b && cp !== 0x3d && cp !== 0x5c) out += ch;
    else out += `\\x{${cp.toString(16).toUpperCase()}}`;
  }
  return `utf-8;${out}`;
}

function encodeParams(params: EsmtpParams | undefined, allowUtf8: boolean): string {
  if (params === undefined) return '';
  let out = '';
  const seen = new Set<string>();
  for (const [keyword, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (!ESMTP_KEYWORD.test(keyword)) throw invalid(`invalid ESMTP parameter keyword ${JSON.stringify(keyword)}`);
    const key = keyword.toUpperCase();
    if (seen.has(key)) throw invalid(`duplicate ESMTP parameter ${key}`);
    seen.add(key);
    if (value === true) {
      out += ` ${key}`;
      continue;
    }
    if (typeof value !== 'string' || !(allowUtf8 ? ESMTP_VALUE_UTF8 : ESMTP_VALUE_ASCII).test(value)) {
      throw invalid(`invalid value for ESMTP parameter ${key}: only printable characters except "=" and space (RFC 5321 §4.1.2)`);
    }
    out += ` ${key}=${value}`;
  }
  return out;
}

function checkPath(address: string, what: string, options: EncodeCommandOptions): void {
  const why = checkMailbox(address, options);
  if (why !== undefined) throw invalid(`${what}: ${why}`);
}

function line(text: string): Buffer {
  return Buffer.from(`${text}\r\n`, 'utf8');
}

/**
 * Encode one client command, CRLF included. Throws `SmtpClientError`
 * `ERR_SMTP_CLIENT_INVALID_ARGUMENT` for anything that could not be sent as
 * exactly that one command.
 */
export function encodeCommand(command: ClientCommand, options: EncodeCommandOptions = {}): Buffer {
  const allowUtf8 = options.smtputf8 === true;
  switch (command.name) {
    case 'EHLO':
    case 'HELO':
    case 'LHLO': {
      // RFC 6531 §3.7.1: the EHLO domain stays ASCII (A-labels).
      const why = checkDomain(command.domain, false);
      if (why !== undefined) throw invalid(`${command.name}: ${why}`);
      return line(`${command.name} ${command.domain}`);
    }
    case 'MAIL': {
      // RFC 5321 §4.1.1.2: the null reverse-path "<>" is for bounces.
      if (command.from !== '') checkPath(command.from, 'MAIL FROM', options);
      return line(`MAIL FROM:<${command.from}>${encodeParams(command.params, allowUtf8)}`);
    }
    case 'RCPT': {
      // RFC 5321 §4.1.1.3: "<Postmaster>" without a domain must be accepted by every server.
      if (command.to.toLowerCase() !== 'postmaster') checkPath(command.to, 'RCPT TO', options);
      return line(`RCPT TO:<${command.to}>${encodeParams(command.params, allowUtf8)}`);
    }
    case 'BDAT': {
      if (!Number.isSafeInteger(command.size) || command.size < 0) throw invalid(`BDAT size ${String(command.size)} is not a byte count`);
      return line(`BDAT ${command.size}${command.last ? ' LAST' : ''}`);
    }
    case 'AUTH': {
      if (!/^[A-Z0-9_-]{1,20}$/.test(command.mechanism)) throw invalid(`invalid SASL mechanism name ${JSON.stringify(command.mechanism)}`);
      if (command.initialResponse === undefined) return line(`AUTH ${command.mechanism}`);
      encodeSaslLine(command.initialResponse); // validates
      return line(`AUTH ${command.mechanism} ${command.initialResponse}`);
    }
    case 'DATA':
    case 'RSET':
    case 'NOOP':
    case 'QUIT':
    case 'STARTTLS':
      return line(command.name);
    default: {
      const name: unknown = (command as { name?: unknown }).name;
      throw invalid(`unknown command ${JSON.stringify(name)}`);
    }
  }
}

/** A SASL response line (RFC 4954 §4): base64, `=` for an empty initial response, or `*` to cancel. */
export function encodeSaslLine(text: string): Buffer {
  if (text !== '*' && text !== '=' && !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw invalid('SASL response is not base64');
  return line(text);
}
