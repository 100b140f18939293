/**
 * SMTP command grammar (RFC 5321 §4.1.1, plus the extensions' commands). The
 * parser sees one complete line (the framer has already split and capped it)
 * and returns a typed command or a typed refusal. It never throws: every
 * input, however hostile, gives a value (tested with fast-check).
 */
import { parsePath } from './address.js';
import type { AddressParseOptions, Mailbox } from './address.js';
import { parseMailParams, parseRcptParams } from './params.js';
import type { MailParams, ParamSupport, RcptParams } from './params.js';

export type SmtpVerb =
  | 'HELO' | 'EHLO' | 'LHLO' | 'MAIL' | 'RCPT' | 'DATA' | 'BDAT' | 'RSET' | 'NOOP' | 'QUIT'
  | 'VRFY' | 'EXPN' | 'HELP' | 'STARTTLS' | 'AUTH' | 'XCLIENT';

export const smtpVerbs: readonly SmtpVerb[] = [
  'HELO', 'EHLO', 'LHLO', 'MAIL', 'RCPT', 'DATA', 'BDAT', 'RSET', 'NOOP', 'QUIT', 'VRFY', 'EXPN', 'HELP', 'STARTTLS', 'AUTH', 'XCLIENT',
];

export type SmtpCommand =
  | { readonly verb: 'HELO' | 'EHLO' | 'LHLO'; readonly domain: string }
  | { readonly verb: 'MAIL'; readonly from: Mailbox | null; readonly params: MailParams }
  | { readonly verb: 'RCPT'; readonly to: Mailbox; readonly params: RcptParams }
  | { readonly verb: 'BDAT'; readonly size: number; readonly last: boolean }
  | { readonly verb: 'AUTH'; readonly mechanism: string; readonly initialResponse: string | undefined }
  | { readonly verb: 'XCLIENT'; readonly attributes: ReadonlyMap<string, string> }
  | { readonly verb: 'VRFY' | 'EXPN' | 'HELP' | 'NOOP'; readonly argument: string }
  | { readonly verb: 'DATA' | 'RSET' | 'QUIT' | 'STARTTLS' };

export type CommandErrorKind = 'unrecognized' | 'syntax' | 'address' | 'utf8' | 'parameter' | 'size';

export interface CommandError {
  readonly verb: SmtpVerb | undefined;
  readonly kind: CommandErrorKind;
  readonly code: number;
  readonly enhanced: string;
  readonly text: string;
}

export type CommandParseResult = { readonly ok: true; readonly command: SmtpCommand } | { readonly ok: false; readonly error: CommandError };

/** What the grammar depends on: enabled extensions and the transaction's SMTPUTF8. */
export interface CommandParseContext {
  readonly support?: ParamSupport;
  /** MAIL carried SMTPUTF8 (for RCPT), RFC 6531 §3.4. */
  readonly transactionUtf8?: boolean;
  /** The opt-in lenient address parser. */
  readonly lenientAddresses?: boolean;
}

const fail = (verb: SmtpVerb | undefined, kind: CommandErrorKind, code: number, enhanced: string, text: string): CommandParseResult => ({
  ok: false,
  error: { verb, kind, code, enhanced, text },
});

/** Split a line into its verb (upper-cased) and the text after the first space. */
export function splitCommand(line: string): { verb: string; args: string } {
  const space = line.indexOf(' ');
  return space < 0 ? { verb: line.toUpperCase(), args: '' } : { verb: line.slice(0, space).toUpperCase(), args: line.slice(space + 1) };
}

export function isSmtpVerb(verb: string): verb is SmtpVerb {
  return (smtpVerbs as readonly string[]).includes(verb);
}

const addressError = (verb: SmtpVerb, reason: string, utf8: boolean, which: 'from' | 'to'): CommandParseResult =>
  utf8 && /SMTPUTF8/.test(reason)
    ? fail(verb, 'utf8', 553, '5.6.7', 'Non-ASCII address requires SMTPUTF8')
    : fail(verb, 'address', 501, which === 'from' ? '5.1.7' : '5.1.3', `Invalid ${which === 'from' ? 'sender' : 'recipient'} address: ${reason}`);

/** Parse one command line (without its CRLF). */
export function parseCommand(line: string, context: CommandParseContext = {}): CommandParseResult {
  const { verb, args } = splitCommand(line);
  if (!isSmtpVerb(verb)) return fail(undefined, 'unrecognized', 500, '5.5.1', 'Command unrecognized');
  const support = context.support ?? {};
  switch (verb) {
    case 'HELO':
    case 'EHLO':
    case 'LHLO': {
      // RFC 5321 §4.1.1.1: Domain or address-literal. Servers must not refuse
      // a mismatching name (§4.1.4), so any single printable token is taken.
      const domain = args.trim();
      // eslint-disable-next-line no-control-regex -- refusing control characters is the point
      if (domain === '' || /[\s\x00-\x1f\x7f]/.test(domain)) return fail(verb, 'syntax', 501, '5.5.4', `Syntax: ${verb} hostname`);
      return { ok: true, command: { verb, domain } };
    }
    case 'MAIL': {
      const m = /^FROM:/i.exec(args);
      if (m === null) return fail(verb, 'syntax', 501, '5.5.4', 'Syntax: MAIL FROM:<address>');
      // Many clients put a space after the colon; Postfix and Exim accept it, so do we.
      const pathText = args.slice(5).replace(/^ +/, '');
      // First pass: the parameters decide whether UTF-8 is allowed in the path (SMTPUTF8).
      const close = pathText.indexOf('>');
      const paramsGuess = close >= 0 ? pathText.slice(close + 1) : '';
      const utf8 = support.smtputf8 === true && /(?:^| )SMTPUTF8(?: |$)/i.test(paramsGuess);
      const options: AddressParseOptions & { allowNull: boolean } = { smtputf8: utf8, lenient: context.lenientAddresses === true, allowNull: true };
      const path = parsePath(pathText, options);
      if (!path.ok) return addressError(verb, path.reason, path.utf8, 'from');
      const params = parseMailParams(path.rest, support);
      if (!params.ok) return fail(verb, params.error.code === 552 ? 'size' : 'parameter', params.error.code, params.error.enhanced, params.error.text);
      return { ok: true, command: { verb, from: path.mailbox, params: params.params } };
    }
    case 'RCPT': {
      const m = /^TO:/i.exec(args);
      if (m === null) return fail(verb, 'syntax', 501, '5.5.4', 'Syntax: RCPT TO:<address>');
      const pathText = args.slice(3).replace(/^ +/, '');
      // RFC 5321 §4.1.1.3: <Postmaster> without a domain must be accepted.
      const pm = /^<postmaster>(.*)$/i.exec(pathText);
      let to: Mailbox;
      let rest: string;
      if (pm !== null) {
        to = Object.freeze({ address: 'Postmaster', localPart: 'Postmaster', domain: '', asciiDomain: '', literal: false, utf8: false });
        rest = pm[1] ?? '';
        if (rest !== '' && !rest.startsWith(' ')) return fail(verb, 'address', 501, '5.1.3', 'Invalid recipient address');
      } else {
        const path = parsePath(pathText, { smtputf8: context.transactionUtf8 === true, lenient: context.lenientAddresses === true });
        if (!path.ok) return addressError(verb, path.reason, path.utf8, 'to');
        if (path.mailbox === null) return fail(verb, 'address', 501, '5.1.3', 'Invalid recipient address: null path');
        to = path.mailbox;
        rest = path.rest;
      }
      const params = parseRcptParams(rest, { ...support, smtputf8: support.smtputf8 === true && context.transactionUtf8 === true });
      if (!params.ok) return fail(verb, 'parameter', params.error.code, params.error.enhanced, params.error.text);
      return { ok: true, command: { verb, to, params: params.params } };
    }
    case 'BDAT': {
      // RFC 3030 §2: BDAT SP chunk-size [SP end-marker]
      const m = /^(\d{1,15})(?: (LAST))?$/i.exec(args);
      if (m === null) return fail(verb, 'syntax', 501, '5.5.4', 'Syntax: BDAT size [LAST]');
      return { ok: true, command: { verb, size: Number(m[1]), last: m[2] !== undefined } };
    }
    case 'AUTH': {
      // RFC 4954 §4: AUTH mechanism [initial-response]
      const m = /^([A-Za-z0-9_-]{1,20})(?: (\S+))?$/.exec(args);
      if (m === null) return fail(verb, 'syntax', 501, '5.5.4', 'Syntax: AUTH mechanism [initial-response]');
      return { ok: true, command: { verb, mechanism: (m[1] ?? '').toUpperCase(), initialResponse: m[2] } };
    }
    case 'XCLIENT': {
      // Postfix XCLIENT_README: attribute=value pairs, values in xtext.
      const attributes = new Map<string, string>();
      for (const item of args.trim().split(/ +/)) {
        const eq = item.indexOf('=');
        if (eq <= 0) return fail(verb, 'syntax', 501, '5.5.4', 'Syntax: XCLIENT attribute=value ...');
        attributes.set(item.slice(0, eq).toUpperCase(), item.slice(eq + 1));
      }
      return { ok: true, command: { verb, attributes } };
    }
    case 'VRFY':
    case 'EXPN':
    case 'HELP':
    case 'NOOP': {
      if ((verb === 'VRFY' || verb === 'EXPN') && args.trim() === '') return fail(verb, 'syntax', 501, '5.5.4', `Syntax: ${verb} address`);
      return { ok: true, command: { verb, argument: args } };
    }
    default: {
      if (args !== '') return fail(verb, 'syntax', 501, '5.5.4', `Syntax: ${verb} takes no arguments`);
      return { ok: true, command: { verb } };
    }
  }
}
