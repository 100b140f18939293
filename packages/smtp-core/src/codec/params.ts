/**
 * ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 `esmtp-param`), and the
 * extensions that define them: SIZE (RFC 1870), BODY (RFC 6152, RFC 3030),
 * SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT (RFC 3461), AUTH (RFC 4954 §5),
 * REQUIRETLS (RFC 8689).
 */
import { decodeXtext } from './xtext.js';

/** One reason a parameter list is refused: the reply the server sends. */
export interface ParamError {
  readonly code: 501 | 504 | 552 | 555;
  readonly enhanced: string;
  readonly text: string;
}

export type BodyType = '7BIT' | '8BITMIME' | 'BINARYMIME';
export type DsnNotify = 'NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY';

/** The parameters of MAIL FROM, parsed and validated. */
export interface MailParams {
  /** SIZE=: the size the client declared (RFC 1870). */
  readonly size?: number;
  /** BODY=: RFC 6152 / RFC 3030. */
  readonly body?: BodyType;
  /** SMTPUTF8 (RFC 6531). */
  readonly smtputf8?: boolean;
  /** RET=FULL|HDRS (RFC 3461 §4.3). */
  readonly ret?: 'FULL' | 'HDRS';
  /** ENVID= decoded from xtext (RFC 3461 §4.4). */
  readonly envid?: string;
  /** AUTH= decoded from xtext; `null` for `AUTH=<>` (RFC 4954 §5). */
  readonly auth?: string | null;
  /** REQUIRETLS (RFC 8689 §4.1). */
  readonly requireTls?: boolean;
}

/** The parameters of RCPT TO, parsed and validated. */
export interface RcptParams {
  /** NOTIFY= (RFC 3461 §4.1). */
  readonly notify?: readonly DsnNotify[];
  /** ORCPT= (RFC 3461 §4.2): the address type and the decoded original recipient. */
  readonly orcpt?: { readonly type: string; readonly address: string };
}

/** Which parameters are enabled (their extension is advertised). */
export interface ParamSupport {
  readonly size?: boolean;
  readonly eightBitMime?: boolean;
  readonly binaryMime?: boolean;
  readonly smtputf8?: boolean;
  readonly dsn?: boolean;
  readonly auth?: boolean;
  readonly requireTls?: boolean;
  /** The largest message; SIZE= above it is refused with 552 5.3.4. */
  readonly maxMessageBytes?: number;
}

const KEYWORD = /^[A-Za-z0-9][A-Za-z0-9-]*$/;
// esmtp-value = 1*(%d33-60 / %d62-126), plus UTF-8 with SMTPUTF8 (RFC 6531 §3.3).
const VALUE = /^[\x21-\x3c\x3e-\x7e\u0080-\u{10ffff}]+$/u;

const syntax = (text: string): ParamError => ({ code: 501, enhanced: '5.5.4', text });
const unknown = (keyword: string): ParamError => ({ code: 555, enhanced: '5.5.4', text: `Unsupported parameter ${keyword}` });

/** Split `" KEY=value KEY2"` into keyword/value pairs (keywords upper-cased). */
export function splitParams(text: string): { ok: true; params: Map<string, string | undefined> } | { ok: false; error: ParamError } {
  const params = new Map<string, string | undefined>();
  const trimmed = text.trim();
  if (trimmed === '') return { ok: true, params };
  for (const item of trimmed.split(/ +/)) {
    const eq = item.indexOf('=');
    const keyword = (eq < 0 ? item : item.slice(0, eq)).toUpperCase();
    const value = eq < 0 ? undefined : item.slice(eq + 1);
    if (!KEYWORD.test(keyword)) return { ok: false, error: syntax(`Invalid parameter ${JSON.stringify(item.slice(0, 32))}`) };
    if (value !== undefined && !VALUE.test(value)) return { ok: false, error: syntax(`Invalid value for ${keyword}`) };
    if (params.has(keyword)) return { ok: false, error: syntax(`Duplicate parameter ${keyword}`) };
    params.set(keyword, value);
  }
  return { ok: true, params };
}

/** Parse and validate the parameters of MAIL FROM. */
export function parseMailParams(text: string, support: ParamSupport): { ok: true; params: MailParams } | { ok: false; error: ParamError } {
  const split = splitParams(text);
  if (!split.ok) return split;
  const out: { -readonly [K in keyof MailParams]: MailParams[K] } = {};
  for (const [keyword, value] of split.params) {
    switch (keyword) {
      case 'SIZE': {
        if (support.size !== true) return { ok: false, error: unknown(keyword) };
        if (value === undefined || !/^\d{1,20}$/.test(value)) return { ok: false, error: syntax('SIZE needs a number') };
        const size = Number(value);
        // RFC 1870 §6: a declared size above the limit is refused at MAIL.
        if (support.maxMessageBytes !== undefined && size > support.maxMessageBytes) {
          return { ok: false, error: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' } };
        }
        out.size = size;
        break;
      }
      case 'BODY': {
        const body = value?.toUpperCase();
        if (body === '7BIT') out.body = '7BIT';
        else if (body === '8BITMIME' && support.eightBitMime === true) out.body = '8BITMIME';
        else if (body === 'BINARYMIME' && support.binaryMime === true) out.body = 'BINARYMIME';
        else return { ok: false, error: { code: 501, enhanced: '5.5.4', text: 'Unsupported BODY type' } };
        break;
      }
      case 'SMTPUTF8':
        if (support.smtputf8 !== true) return { ok: false, error: unknown(keyword) };
        if (value !== undefined) return { ok: false, error: syntax('SMTPUTF8 takes no value') };
        out.smtputf8 = true;
        break;
      case 'RET': {
        if (support.dsn !== true) return { ok: false, error: unknown(keyword) };
        const ret = value?.toUpperCase();
        if (ret !== 'FULL' && ret !== 'HDRS') return { ok: false, error: syntax('RET must be FULL or HDRS') };
        out.ret = ret;
        break;
      }
      case 'ENVID': {
        if (support.dsn !== true) return { ok: false, error: unknown(keyword) };
        const envid = value === undefined ? undefined : decodeXtext(value);
        // RFC 3461 §4.4: at most 100 characters, printable ASCII.
        if (envid === undefined || envid.length === 0 || envid.length > 100 || !/^[\x20-\x7e]+$/.test(envid)) return { ok: false, error: syntax('Invalid ENVID') };
        out.envid = envid;
        break;
      }
      case 'AUTH': {
        if (support.auth !== true) return { ok: false, error: unknown(keyword) };
        if (value === '<>') out.auth = null;
        else {
          const decoded = value === undefined ? undefined : decodeXtext(value);
          if (decoded === undefined || decoded === '') return { ok: false, error: syntax('Invalid AUTH parameter') };
          out.auth = decoded;
        }
        break;
      }
      case 'REQUIRETLS':
        if (support.requireTls !== true) return { ok: false, error: unknown(keyword) };
        if (value !== undefined) return { ok: false, error: syntax('REQUIRETLS takes no value') };
        out.requireTls = true;
        break;
      default:
        return { ok: false, error: unknown(keyword) };
    }
  }
  return { ok: true, params: out };
}

/** Parse and validate the parameters of RCPT TO. */
export function parseRcptParams(text: string, support: ParamSupport): { ok: true; params: RcptParams } | { ok: false; error: ParamError } {
  const split = splitParams(text);
  if (!split.ok) return split;
  const out: { -readonly [K in keyof RcptParams]: RcptParams[K] } = {};
  for (const [keyword, value] of split.params) {
    switch (keyword) {
      case 'NOTIFY': {
        if (support.dsn !== true) return { ok: false, error: unknown(keyword) };
        const items = (value ?? '').toUpperCase().split(',');
        const allowed = new Set(['NEVER', 'SUCCESS', 'FAILURE', 'DELAY']);
        // RFC 3461 §4.1: NEVER alone, or any of SUCCESS, FAILURE, DELAY once each.
        if (items.some((i) => !allowed.has(i)) || new Set(items).size !== items.length || (items.includes('NEVER') && items.length > 1)) {
          return { ok: false, error: syntax('Invalid NOTIFY') };
        }
        out.notify = items as DsnNotify[];
        break;
      }
      case 'ORCPT': {
        if (support.dsn !== true) return { ok: false, error: unknown(keyword) };
        const semi = value === undefined ? -1 : value.indexOf(';');
        if (value === undefined || semi <= 0 || value.length > 500) return { ok: false, error: syntax('Invalid ORCPT') };
        const type = value.slice(0, semi).toLowerCase();
        const raw = value.slice(semi + 1);
        // RFC 6533 §3: the "utf-8" address type carries unitext (UTF-8 and \x{HEX}); rfc822 carries xtext.
        const address = type === 'utf-8' ? (support.smtputf8 === true ? raw : undefined) : decodeXtext(raw);
        if (!/^[A-Za-z0-9-]+$/.test(type) || address === undefined || address === '') return { ok: false, error: syntax('Invalid ORCPT') };
        out.orcpt = { type, address };
        break;
      }
      default:
        return { ok: false, error: unknown(keyword) };
    }
  }
  return { ok: true, params: out };
}
