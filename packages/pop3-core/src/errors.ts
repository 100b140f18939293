/**
 * The errors of @pigeonpost/pop3-core. All are `PigeonpostError`s from
 * @pigeonpost/wire (a stable `code`, the `side` that broke the protocol, and
 * the `reply` to send), branded with `Symbol.for` so `Pop3Error.isInstance`
 * works across copies of the package.
 *
 * A backend refuses with a reply of its choosing by throwing
 * `pop3Reply('IN-USE', 'Mailbox locked')`: the session sends
 * `-ERR [IN-USE] Mailbox locked`. Anything else a backend throws becomes
 * `-ERR [SYS/TEMP]` (RFC 3206 §4), so a bug never reads as "wrong password".
 * The session answers bad input itself (`-ERR`, counted against
 * `maxBadCommands`): no error object is made for the peer's mistakes.
 */
import { PigeonpostError } from '@pigeonpost/wire';
import type { PigeonpostErrorOptions, ProtocolSide } from '@pigeonpost/wire';

/**
 * A POP3 extended response code (RFC 2449 §8, RFC 3206, RFC 6856): the text in
 * brackets after `-ERR`. Unknown codes from a server are kept as strings.
 */
export type Pop3ResponseCode = 'IN-USE' | 'LOGIN-DELAY' | 'SYS/TEMP' | 'SYS/PERM' | 'AUTH' | 'UTF8' | (string & {});

/** Every `code` a `Pop3Error` can carry. Documented in the README's error table. */
export type Pop3ErrorCode =
  // --- server side ---
  /** A backend refused with a reply of its choosing (`pop3Reply`). */
  | 'ERR_POP3_REJECTED'
  /** The session or server was used wrongly by our caller (a bug; no reply). */
  | 'ERR_POP3_STATE'
  /** Invalid server options. */
  | 'ERR_POP3_CONFIG'
  // --- client side ---
  /** The server answered `-ERR` (its response code in `responseCode`). */
  | 'ERR_POP3_CLIENT_REPLY'
  /** The greeting was not `+OK`. */
  | 'ERR_POP3_CLIENT_GREETING'
  /** STLS was required (`secure: 'starttls'`) but is not offered or was refused (RFC 2595 downgrade protection). */
  | 'ERR_POP3_CLIENT_STLS_UNAVAILABLE'
  /** No authentication method the client may use with the given credentials. */
  | 'ERR_POP3_CLIENT_AUTH_UNAVAILABLE'
  /** AUTH, APOP or USER/PASS was refused. */
  | 'ERR_POP3_CLIENT_AUTH_FAILED'
  /** A password would go over a connection without TLS, and `allowPlaintextAuth` is not set. */
  | 'ERR_POP3_CLIENT_AUTH_INSECURE'
  /** The server's response does not follow RFC 1939 (no `+OK`/`-ERR`, a line over the limit). */
  | 'ERR_POP3_CLIENT_MALFORMED_RESPONSE'
  /** The server closed the connection, or the socket failed, while the client waited. */
  | 'ERR_POP3_CLIENT_CONNECTION'
  /** A connect or command timeout expired. */
  | 'ERR_POP3_CLIENT_TIMEOUT'
  /** The caller's AbortSignal fired. */
  | 'ERR_POP3_CLIENT_ABORTED'
  /** An argument cannot be sent (CR, LF or NUL, a message number that is not a positive integer). */
  | 'ERR_POP3_CLIENT_INVALID_ARGUMENT'
  /** The client was used wrongly: use after QUIT or close. */
  | 'ERR_POP3_CLIENT_STATE';

export interface Pop3ErrorOptions extends PigeonpostErrorOptions {
  /** The RFC 2449 response code of the `-ERR` reply, if any (stored as `reply.pop3.code`). */
  readonly responseCode?: Pop3ResponseCode;
}

/** The error class of pop3-core. `reply.text` is the `-ERR` text; `responseCode` its bracketed code. */
export class Pop3Error extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/Pop3Error');

  declare readonly code: Pop3ErrorCode;

  constructor(code: Pop3ErrorCode, message: string, options: Pop3ErrorOptions = {}) {
    const { responseCode, ...rest } = options;
    const reply = rest.reply ?? (responseCode === undefined ? undefined : { text: message });
    super(code, message, reply === undefined ? rest : { ...rest, reply: { ...reply, pop3: responseCode === undefined ? (reply.pop3 ?? {}) : { code: responseCode } } });
  }

  /** The RFC 2449 response code (`'IN-USE'`, `'AUTH'`, …), if any. */
  get responseCode(): Pop3ResponseCode | undefined {
    return this.reply?.pop3?.code;
  }
}

/**
 * The error a backend throws to refuse with `-ERR [code] text`:
 * `throw pop3Reply('IN-USE', 'Mailbox is locked by another session')`.
 * Pass `undefined` as the code for a plain `-ERR text`.
 */
export function pop3Reply(responseCode: Pop3ResponseCode | undefined, text: string, side: ProtocolSide = 'remote'): Pop3Error {
  if (/[\r\n\0]/.test(text)) throw new Pop3Error('ERR_POP3_STATE', 'pop3Reply: text contains CR, LF or NUL', { side: 'local' });
  if (responseCode !== undefined && !/^[\x21-\x5c\x5e-\x7e]+$/.test(responseCode)) {
    throw new Pop3Error('ERR_POP3_STATE', `pop3Reply: ${responseCode} is not a valid response code`, { side: 'local' });
  }
  return new Pop3Error('ERR_POP3_REJECTED', text, { side, reply: { text, pop3: responseCode === undefined ? {} : { code: responseCode } } });
}

/** A status line as the client saw it. */
export interface Pop3ServerReply {
  readonly ok: boolean;
  readonly responseCode: Pop3ResponseCode | undefined;
  /** The text after `+OK`/`-ERR` and the response code. */
  readonly text: string;
}

export interface Pop3ClientErrorOptions extends Pop3ErrorOptions {
  /** The server's reply that caused the error. */
  readonly serverReply?: Pop3ServerReply;
}

/** Errors of the POP3 client. `serverReply` is the `-ERR` line that caused it, when one did. */
export class Pop3ClientError extends Pop3Error {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/Pop3ClientError');
  readonly serverReply: Pop3ServerReply | undefined;

  constructor(code: Pop3ErrorCode, message: string, options: Pop3ClientErrorOptions = {}) {
    const { serverReply, ...rest } = options;
    const responseCode = rest.responseCode ?? serverReply?.responseCode;
    const reply = rest.reply ?? (serverReply === undefined ? undefined : { text: serverReply.text });
    super(code, message, { ...rest, ...(responseCode === undefined ? {} : { responseCode }), ...(reply === undefined ? {} : { reply }) });
    this.serverReply = serverReply;
  }
}
