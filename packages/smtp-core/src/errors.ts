/**
 * The errors of @pigeonpost/smtp-core. All are `PigeonpostError`s from
 * @pigeonpost/wire (a stable `code`, the `side` that broke the protocol, and
 * the `reply` to send), branded with `Symbol.for` so `SmtpError.isInstance`
 * works across copies of the package.
 *
 * Server hooks reject a command by throwing an `SmtpError` (most simply with
 * `smtpReply(550, '5.1.1', 'No such user')`): the session sends its reply code,
 * enhanced status code and text. Any other thrown value becomes a temporary
 * failure (451 4.3.0), so a bug in a hook never turns into a permanent bounce.
 *
 * This file is shared with the client: append new codes, never renumber.
 */
import { PigeonpostError } from '@pigeonpost/wire';
import type { PigeonpostErrorOptions, ProtocolReply, ProtocolSide } from '@pigeonpost/wire';

/** Every `code` an `SmtpError` can carry. Documented in the README's error table. */
export type SmtpErrorCode =
  // --- server side (session, codec) ---
  /** A hook refused the command with a reply of its choosing (`smtpReply`). */
  | 'ERR_SMTP_REJECTED'
  /** A hook threw something that is not an `SmtpError`; the client gets 451 4.3.0. */
  | 'ERR_SMTP_HOOK_FAILED'
  /** The command line does not follow the command's grammar (501 5.5.4, 501 5.5.2). */
  | 'ERR_SMTP_SYNTAX'
  /** The command is not known, or not enabled (500 5.5.1). */
  | 'ERR_SMTP_UNRECOGNIZED'
  /** The command is known but not allowed now (503 5.5.1). */
  | 'ERR_SMTP_BAD_SEQUENCE'
  /** A mailbox or domain is not valid (501 5.1.3 / 501 5.1.7 / 553 5.1.3). */
  | 'ERR_SMTP_INVALID_ADDRESS'
  /** An unknown or invalid ESMTP parameter (555 5.5.4). */
  | 'ERR_SMTP_INVALID_PARAMETER'
  /** SMTPUTF8 content without the SMTPUTF8 parameter (553 5.6.7, RFC 6531 §3.7.4.1). */
  | 'ERR_SMTP_UTF8_REQUIRED'
  /** A message larger than the SIZE limit (552 5.3.4, RFC 1870). */
  | 'ERR_SMTP_MESSAGE_TOO_LARGE'
  /** More recipients than `maxRecipients` (452 4.5.3, RFC 5321 §4.5.3.1.10). */
  | 'ERR_SMTP_TOO_MANY_RECIPIENTS'
  /** A bare CR or LF in a command or body while `bareLineEndings` is `reject` (550 5.5.2 / 500 5.5.2). */
  | 'ERR_SMTP_BARE_LINE_ENDING'
  /** A NUL byte in a command line (500 5.5.2). */
  | 'ERR_SMTP_NUL'
  /** The command line is longer than `maxCommandLineLength` (500 5.5.2). */
  | 'ERR_SMTP_LINE_TOO_LONG'
  /** The client sent bytes before the greeting (554 5.5.0, RFC 5321 §4.3.1 "talking too soon"). */
  | 'ERR_SMTP_EARLY_TALKER'
  /** An HTTP request line arrived on the SMTP port (cross-protocol attack); 554 5.7.0 and close. */
  | 'ERR_SMTP_HTTP_REQUEST'
  /** Too many unrecognized or invalid commands (421 4.7.0 and close). */
  | 'ERR_SMTP_TOO_MANY_ERRORS'
  /** Too many commands before AUTH on a listener that requires it (421 4.7.0 and close). */
  | 'ERR_SMTP_TOO_MANY_COMMANDS'
  /** Too many failed AUTH attempts (421 4.7.0 and close). */
  | 'ERR_SMTP_TOO_MANY_AUTH_FAILURES'
  /** AUTH required before this command (530 5.7.0, RFC 4954 §6). */
  | 'ERR_SMTP_AUTH_REQUIRED'
  /** TLS required before this command: AUTH before TLS (538 5.7.11, RFC 4954 §4). */
  | 'ERR_SMTP_TLS_REQUIRED'
  /** The DATA or BDAT transfer took longer than `dataTimeoutMs` (421 4.4.2). */
  | 'ERR_SMTP_DATA_TIMEOUT'
  /** The connection was lost while a body was being received (the `onData` body iterator throws it). */
  | 'ERR_SMTP_CONNECTION_LOST'
  /** The server is shutting down (421 4.3.2). */
  | 'ERR_SMTP_SHUTTING_DOWN'
  /** The session or server was used wrongly by our caller (a bug; no reply). */
  | 'ERR_SMTP_STATE'
  /** Invalid server options (thrown by `createSmtpServerSession` / `createSmtpServer`). */
  | 'ERR_SMTP_CONFIG'
  // --- client side (src/client, src/codec/reply-parser.ts, src/codec/command-encoder.ts) ---
  /** The server answered a command with a 4xx/5xx (or unexpected) reply; `serverReply` holds it. */
  | 'ERR_SMTP_CLIENT_REPLY'
  /** The greeting was not 220 (e.g. 554 "no SMTP service here", RFC 5321 §3.1). */
  | 'ERR_SMTP_CLIENT_GREETING'
  /** EHLO and HELO (or LHLO) were both refused. */
  | 'ERR_SMTP_CLIENT_HELO'
  /** STARTTLS was required (`secure: 'starttls'`) but not offered or refused: downgrade protection (RFC 3207 §6). */
  | 'ERR_SMTP_CLIENT_STARTTLS_UNAVAILABLE'
  /** The server offers no SASL mechanism the client can use with the given credentials. */
  | 'ERR_SMTP_CLIENT_AUTH_UNAVAILABLE'
  /** AUTH was refused (535 5.7.8 and friends) or the SASL exchange failed. */
  | 'ERR_SMTP_CLIENT_AUTH_FAILED'
  /** A password or token mechanism would go over a connection without TLS, and `allowPlaintextAuth` is not set. */
  | 'ERR_SMTP_CLIENT_AUTH_INSECURE'
  /** MAIL FROM was refused. */
  | 'ERR_SMTP_CLIENT_MAIL_REJECTED'
  /** Every RCPT TO was refused; `recipients` holds each reply. */
  | 'ERR_SMTP_CLIENT_RECIPIENTS_REJECTED'
  /** DATA or BDAT, or the message after it, was refused. */
  | 'ERR_SMTP_CLIENT_DATA_REJECTED'
  /** The message needs SMTPUTF8 (non-ASCII addresses) and the server does not offer it (RFC 6531 §3.4). */
  | 'ERR_SMTP_CLIENT_UTF8_UNSUPPORTED'
  /** The message is larger than the server's SIZE limit (RFC 1870 §6). */
  | 'ERR_SMTP_CLIENT_SIZE_EXCEEDED'
  /** The server's reply does not follow RFC 5321 §4.2 (bad code, mixed codes in a multiline reply, over a limit). */
  | 'ERR_SMTP_CLIENT_MALFORMED_REPLY'
  /** The server closed the connection, or the socket failed, while the client waited for it. */
  | 'ERR_SMTP_CLIENT_CONNECTION'
  /** A connect, greeting, command or data timeout (RFC 5321 §4.5.3.2) expired. */
  | 'ERR_SMTP_CLIENT_TIMEOUT'
  /** The caller's AbortSignal fired. */
  | 'ERR_SMTP_CLIENT_ABORTED'
  /** An argument cannot be sent: CR, LF or NUL in a token, an invalid address, parameter or domain. */
  | 'ERR_SMTP_CLIENT_INVALID_ARGUMENT'
  /** The client was used wrongly: a command in the wrong state, use after close. */
  | 'ERR_SMTP_CLIENT_STATE';

export interface SmtpErrorOptions extends Omit<PigeonpostErrorOptions, 'reply'> {
  /** The reply the server sends; `text` must not contain CR or LF. */
  readonly reply?: ProtocolReply;
}

/** The error class of smtp-core. `reply.smtp` holds the reply code and enhanced status code. */
export class SmtpError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/SmtpError');

  declare readonly code: SmtpErrorCode;

  constructor(code: SmtpErrorCode, message: string, options: SmtpErrorOptions = {}) {
    super(code, message, options);
  }

  /** The SMTP reply code (e.g. 550), or `undefined` for local errors. */
  get replyCode(): number | undefined {
    return this.reply?.smtp?.code;
  }

  /** The RFC 3463 enhanced status code (e.g. `'5.1.1'`), if any. */
  get enhancedCode(): string | undefined {
    return this.reply?.smtp?.enhanced;
  }
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3}$/;

/**
 * The error a hook throws to refuse a command with a reply of its choosing:
 * `throw smtpReply(550, '5.1.1', 'No such user here')`. The code must be
 * 4xx or 5xx and agree with the enhanced code's class (RFC 3463 §2).
 */
export function smtpReply(code: number, enhanced: string | undefined, text: string, side: ProtocolSide = 'remote'): SmtpError {
  if (!Number.isInteger(code) || code < 400 || code > 599) {
    throw new SmtpError('ERR_SMTP_STATE', `smtpReply: ${code} is not a 4xx or 5xx reply code`, { side: 'local' });
  }
  if (enhanced !== undefined && (!ENHANCED.test(enhanced) || enhanced[0] !== String(code)[0])) {
    throw new SmtpError('ERR_SMTP_STATE', `smtpReply: enhanced code ${enhanced} does not fit ${code}`, { side: 'local' });
  }
  if (/[\r\n\0]/.test(text)) throw new SmtpError('ERR_SMTP_STATE', 'smtpReply: text contains CR, LF or NUL', { side: 'local' });
  return new SmtpError('ERR_SMTP_REJECTED', text, {
    side,
    reply: { smtp: enhanced === undefined ? { code } : { code, enhanced }, text },
  });
}

/** Build the `SmtpError` for one of the server's own refusals. */
export function serverError(code: SmtpErrorCode, reply: number, enhanced: string, text: string): SmtpError {
  return new SmtpError(code, text, { side: 'remote', reply: { smtp: { code: reply, enhanced }, text } });
}

// --- client side: appended by the client's owner ---

/** A parsed server reply, as the client saw it (see `src/codec/reply-parser.ts`). */
export interface SmtpServerReply {
  /** The three-digit reply code. */
  readonly code: number;
  /** The RFC 3463 enhanced status code of the first line, when the server sent one. */
  readonly enhanced?: string | undefined;
  /** The text of each line, without the code, separator or enhanced code. */
  readonly lines: readonly string[];
}

export interface SmtpClientErrorOptions extends SmtpErrorOptions {
  /** The server's reply that caused the error. */
  readonly serverReply?: SmtpServerReply;
  /** Per-recipient results, for `ERR_SMTP_CLIENT_RECIPIENTS_REJECTED` and `ERR_SMTP_CLIENT_DATA_REJECTED`. */
  readonly recipients?: readonly unknown[];
}

/**
 * Errors of the SMTP client. `replyCode`, `enhancedCode` and `reply.text`
 * are the server's reply when one caused the error; `serverReply` has every
 * line of it.
 */
export class SmtpClientError extends SmtpError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/SmtpClientError');

  /** The server's reply that caused the error, if one did. */
  readonly serverReply: SmtpServerReply | undefined;
  /** Per-recipient results (`RecipientResult[]`) when the error is about recipients or the message. */
  readonly recipients: readonly unknown[] | undefined;

  constructor(code: SmtpErrorCode, message: string, options: SmtpClientErrorOptions = {}) {
    const { serverReply, recipients, ...rest } = options;
    const reply =
      rest.reply ??
      (serverReply === undefined
        ? undefined
        : {
            smtp: serverReply.enhanced === undefined ? { code: serverReply.code } : { code: serverReply.code, enhanced: serverReply.enhanced },
            text: serverReply.lines.join(' '),
          });
    super(code, message, reply === undefined ? rest : { ...rest, reply });
    this.serverReply = serverReply;
    this.recipients = recipients;
  }
}
