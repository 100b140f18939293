/**
 * POP3 commands: the line grammar of RFC 1939 §3 and §5–7, RFC 2449 (CAPA),
 * RFC 2595 (STLS), RFC 5034 (AUTH) and RFC 6856 (UTF8, LANG). Pure: a
 * command line (without CRLF) in, a typed command or a typed error out; and
 * the reverse for the client (`encodeCommand`), which refuses arguments that
 * would change the meaning of the line (CR, LF, NUL).
 */

/** Every command this package knows. */
export type Pop3Verb = 'USER' | 'PASS' | 'APOP' | 'STAT' | 'LIST' | 'RETR' | 'DELE' | 'NOOP' | 'RSET' | 'QUIT' | 'TOP' | 'UIDL' | 'CAPA' | 'STLS' | 'AUTH' | 'UTF8' | 'LANG';

export const pop3Verbs: readonly Pop3Verb[] = Object.freeze(['USER', 'PASS', 'APOP', 'STAT', 'LIST', 'RETR', 'DELE', 'NOOP', 'RSET', 'QUIT', 'TOP', 'UIDL', 'CAPA', 'STLS', 'AUTH', 'UTF8', 'LANG']);

export type Pop3Command =
  | { readonly verb: 'USER'; readonly name: string }
  /** RFC 1939 §7: the rest of the line, spaces included ("a server may treat spaces in the argument as part of the password"). */
  | { readonly verb: 'PASS'; readonly password: string }
  | { readonly verb: 'APOP'; readonly name: string; readonly digest: string }
  | { readonly verb: 'STAT' }
  | { readonly verb: 'NOOP' }
  | { readonly verb: 'RSET' }
  | { readonly verb: 'QUIT' }
  | { readonly verb: 'CAPA' }
  | { readonly verb: 'STLS' }
  | { readonly verb: 'UTF8' }
  | { readonly verb: 'LIST'; readonly message: number | undefined }
  | { readonly verb: 'UIDL'; readonly message: number | undefined }
  | { readonly verb: 'RETR'; readonly message: number }
  | { readonly verb: 'DELE'; readonly message: number }
  | { readonly verb: 'TOP'; readonly message: number; readonly lines: number }
  /** RFC 5034 §4: no mechanism lists the mechanisms (as Dovecot and RFC 1734 clients expect); `initialResponse` is the base64 text, `=` for empty. */
  | { readonly verb: 'AUTH'; readonly mechanism: string | undefined; readonly initialResponse: string | undefined }
  /** RFC 6856 §3: no tag lists the languages. */
  | { readonly verb: 'LANG'; readonly tag: string | undefined };

export type CommandErrorKind = 'unknown' | 'syntax';

export interface CommandError {
  readonly kind: CommandErrorKind;
  /** Text for the `-ERR` reply. */
  readonly text: string;
}

export type CommandParseResult = { readonly ok: true; readonly command: Pop3Command } | { readonly ok: false; readonly error: CommandError };

/** Largest message number or line count accepted: fits in a double exactly, more than any maildrop has. */
const MAX_NUMBER_DIGITS = 15;

/** Split a line into its keyword (upper-cased) and the rest (after one space). */
export function splitCommand(line: string): { readonly verb: string; readonly rest: string | undefined } {
  const sp = line.indexOf(' ');
  if (sp === -1) return { verb: line.toUpperCase(), rest: undefined };
  return { verb: line.slice(0, sp).toUpperCase(), rest: line.slice(sp + 1) };
}

export function isPop3Verb(verb: string): verb is Pop3Verb {
  return (pop3Verbs as readonly string[]).includes(verb);
}

/** A message number or line count: decimal digits, leading zeros allowed. */
function parseNumber(text: string | undefined, min: number): number | undefined {
  if (text === undefined || !/^[0-9]+$/.test(text)) return undefined;
  const digits = text.replace(/^0+(?=\d)/, '');
  // `TOP n 99999999` is what fetchmail sends to mean "the whole message": clamp, never overflow.
  const n = digits.length > MAX_NUMBER_DIGITS ? Number.MAX_SAFE_INTEGER : Number(digits);
  return n >= min ? n : undefined;
}

const syntax = (text: string): CommandParseResult => ({ ok: false, error: { kind: 'syntax', text } });

/**
 * Parse one command line (no CRLF). Arguments are separated by single
 * spaces (RFC 1939 §3); a run of spaces is tolerated, as real clients send it.
 */
export function parseCommand(line: string): CommandParseResult {
  const { verb, rest } = splitCommand(line);
  if (!isPop3Verb(verb)) return { ok: false, error: { kind: 'unknown', text: 'Unknown command' } };
  const args = rest === undefined ? [] : rest.split(/ +/).filter((a) => a !== '');
  const noArgs = (v: 'STAT' | 'NOOP' | 'RSET' | 'QUIT' | 'CAPA' | 'STLS' | 'UTF8'): CommandParseResult =>
    args.length === 0 ? { ok: true, command: { verb: v } } : syntax(`${v} takes no arguments`);
  switch (verb) {
    case 'STAT':
    case 'NOOP':
    case 'RSET':
    case 'QUIT':
    case 'CAPA':
    case 'STLS':
    case 'UTF8':
      return noArgs(verb);
    case 'USER':
      if (rest === undefined || rest === '') return syntax('USER needs a name');
      // RFC 1939 §7 says one argument; names with spaces exist in the wild, and the backend decides.
      return { ok: true, command: { verb, name: rest } };
    case 'PASS':
      if (rest === undefined || rest === '') return syntax('PASS needs a password');
      return { ok: true, command: { verb, password: rest } };
    case 'APOP': {
      // RFC 1939 §7: "APOP name digest", digest is 32 lower-case hex digits (we accept either case).
      const sp = rest?.lastIndexOf(' ') ?? -1;
      if (rest === undefined || sp <= 0) return syntax('APOP needs a name and a digest');
      const digest = rest.slice(sp + 1);
      if (!/^[0-9a-fA-F]{32}$/.test(digest)) return syntax('APOP digest must be 32 hex digits');
      return { ok: true, command: { verb, name: rest.slice(0, sp).trimEnd(), digest: digest.toLowerCase() } };
    }
    case 'LIST':
    case 'UIDL': {
      if (args.length === 0) return { ok: true, command: { verb, message: undefined } };
      const message = parseNumber(args[0], 1);
      if (args.length > 1 || message === undefined) return syntax('Invalid message number');
      return { ok: true, command: { verb, message } };
    }
    case 'RETR':
    case 'DELE': {
      const message = parseNumber(args[0], 1);
      if (args.length !== 1 || message === undefined) return syntax('Invalid message number');
      return { ok: true, command: { verb, message } };
    }
    case 'TOP': {
      const message = parseNumber(args[0], 1);
      const lines = parseNumber(args[1], 0);
      if (args.length !== 2 || message === undefined || lines === undefined) return syntax('TOP needs a message number and a line count');
      return { ok: true, command: { verb, message, lines } };
    }
    case 'AUTH': {
      if (args.length > 2) return syntax('AUTH takes a mechanism and an optional initial response');
      const mechanism = args[0]?.toUpperCase();
      if (mechanism !== undefined && !/^[A-Z0-9_-]{1,20}$/.test(mechanism)) return syntax('Invalid SASL mechanism name');
      return { ok: true, command: { verb, mechanism, initialResponse: args[1] } };
    }
    case 'LANG': {
      if (args.length > 1) return syntax('LANG takes one language tag');
      const tag = args[0];
      if (tag !== undefined && !/^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$/.test(tag)) return syntax('Invalid language tag');
      return { ok: true, command: { verb, tag } };
    }
  }
}

/** A command the client sends. Numbers must be positive integers; strings may not hold CR, LF or NUL. */
export type Pop3ClientCommand = Pop3Command;

/**
 * Encode a command for the wire, CRLF included. Throws `RangeError` for an
 * argument that cannot be sent (CR, LF or NUL; a bad number; an empty USER).
 */
export function encodeCommand(command: Pop3ClientCommand): string {
  const token = (value: string, what: string, allowSpace = false): string => {
    if (value === '' || /[\r\n\0]/.test(value) || (!allowSpace && value.includes(' '))) throw new RangeError(`POP3 ${command.verb}: invalid ${what}`);
    return value;
  };
  const num = (n: number, min: number, what: string): string => {
    if (!Number.isSafeInteger(n) || n < min) throw new RangeError(`POP3 ${command.verb}: ${what} must be an integer >= ${min}`);
    return String(n);
  };
  let line: string;
  switch (command.verb) {
    case 'USER':
      line = `USER ${token(command.name, 'user name', true)}`;
      break;
    case 'PASS':
      line = `PASS ${token(command.password, 'password', true)}`;
      break;
    case 'APOP':
      if (!/^[0-9a-f]{32}$/.test(command.digest)) throw new RangeError('POP3 APOP: the digest must be 32 lower-case hex digits');
      line = `APOP ${token(command.name, 'user name')} ${command.digest}`;
      break;
    case 'LIST':
    case 'UIDL':
      line = command.message === undefined ? command.verb : `${command.verb} ${num(command.message, 1, 'the message number')}`;
      break;
    case 'RETR':
    case 'DELE':
      line = `${command.verb} ${num(command.message, 1, 'the message number')}`;
      break;
    case 'TOP':
      line = `TOP ${num(command.message, 1, 'the message number')} ${num(command.lines, 0, 'the line count')}`;
      break;
    case 'AUTH':
      line = command.mechanism === undefined ? 'AUTH' : `AUTH ${token(command.mechanism, 'mechanism')}${command.initialResponse === undefined ? '' : ` ${token(command.initialResponse, 'initial response')}`}`;
      break;
    case 'LANG':
      line = command.tag === undefined ? 'LANG' : `LANG ${token(command.tag, 'language tag')}`;
      break;
    default:
      line = command.verb;
  }
  return `${line}\r\n`;
}
