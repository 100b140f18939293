/**
 * The SASL error codes and the reply each protocol sends for them. Messages
 * are fixed texts: they never contain a password, token, proof or response
 * (and not the user name either — log the identity from the session instead).
 */
import type { ProtocolReply, ProtocolSide } from '../errors.js';
import { SaslError } from '../errors.js';

export type SaslErrorCode =
  /** Wrong credentials, unknown user, wrong proof (server), or the server refused them (client). */
  | 'ERR_SASL_AUTH_FAILED'
  /** Authenticated, but not allowed to act as the requested authorization identity. */
  | 'ERR_SASL_AUTHZ_FAILED'
  /** The peer's message does not follow the mechanism's grammar, or is not valid base64/UTF-8. */
  | 'ERR_SASL_MALFORMED'
  /** The client cancelled the exchange with `*`. */
  | 'ERR_SASL_CANCELLED'
  /** A SASL message is larger than `maxSaslMessageBytes`, or a field larger than its limit. */
  | 'ERR_SASL_MESSAGE_TOO_LARGE'
  /** The mechanism is unknown or not enabled on this server. */
  | 'ERR_SASL_MECHANISM_UNSUPPORTED'
  /** The mechanism sends credentials in the clear and the connection is not TLS-protected. */
  | 'ERR_SASL_ENCRYPTION_REQUIRED'
  /** SCRAM channel binding mismatch, or a downgrade (`y` flag while the server offers -PLUS). */
  | 'ERR_SASL_CHANNEL_BINDING'
  /** SCRAM nonce in the final message is not the combined nonce (server), or does not extend ours (client). */
  | 'ERR_SASL_NONCE_MISMATCH'
  /** The backend failed (threw); try again later. */
  | 'ERR_SASL_TEMPORARY_FAILURE'
  /** Client: the SCRAM iteration count is outside [minScramIterations, maxScramIterations]. */
  | 'ERR_SASL_SCRAM_ITERATIONS'
  /** Client: the server's SCRAM signature is wrong or missing — the server did not prove it knows the credentials. */
  | 'ERR_SASL_SERVER_SIGNATURE'
  /** Local: the credentials given to a client cannot be sent (missing, NUL inside, prohibited by SASLprep). */
  | 'ERR_SASL_INVALID_CREDENTIALS'
  /** Local: a session method was called in a state that does not allow it (after the end, or concurrently). */
  | 'ERR_SASL_BAD_STATE'
  /** A stored password hash is malformed, or its parameters are outside the limits. */
  | 'ERR_SASL_PASSWORD_HASH_INVALID';

/** What a server replies, per code (RFC 4954 §4, §6 for SMTP; RFC 3501 §6.2.2 and RFC 5530 for IMAP; RFC 5034 and RFC 3206 for POP3). */
export const saslReplies: Readonly<Partial<Record<SaslErrorCode, ProtocolReply>>> = Object.freeze({
  ERR_SASL_AUTH_FAILED: {
    smtp: { code: 535, enhanced: '5.7.8' },
    imap: { status: 'NO', code: 'AUTHENTICATIONFAILED' },
    pop3: { code: 'AUTH' },
    text: 'Authentication credentials invalid',
  },
  ERR_SASL_CHANNEL_BINDING: {
    smtp: { code: 535, enhanced: '5.7.8' },
    imap: { status: 'NO', code: 'AUTHENTICATIONFAILED' },
    pop3: { code: 'AUTH' },
    text: 'Authentication credentials invalid',
  },
  ERR_SASL_NONCE_MISMATCH: {
    smtp: { code: 535, enhanced: '5.7.8' },
    imap: { status: 'NO', code: 'AUTHENTICATIONFAILED' },
    pop3: { code: 'AUTH' },
    text: 'Authentication credentials invalid',
  },
  ERR_SASL_AUTHZ_FAILED: {
    smtp: { code: 535, enhanced: '5.7.8' },
    imap: { status: 'NO', code: 'AUTHORIZATIONFAILED' },
    pop3: { code: 'AUTH' },
    text: 'Not authorized to use the requested identity',
  },
  ERR_SASL_MALFORMED: {
    smtp: { code: 501, enhanced: '5.5.2' },
    imap: { status: 'BAD' },
    pop3: {},
    text: 'Malformed authentication response',
  },
  ERR_SASL_CANCELLED: {
    smtp: { code: 501, enhanced: '5.0.0' },
    imap: { status: 'BAD' },
    pop3: {},
    text: 'Authentication cancelled',
  },
  ERR_SASL_MESSAGE_TOO_LARGE: {
    smtp: { code: 500, enhanced: '5.5.6' },
    imap: { status: 'BAD' },
    pop3: {},
    text: 'Authentication exchange line is too long',
  },
  ERR_SASL_MECHANISM_UNSUPPORTED: {
    smtp: { code: 504, enhanced: '5.5.4' },
    imap: { status: 'NO' },
    pop3: {},
    text: 'Unrecognized authentication type',
  },
  ERR_SASL_ENCRYPTION_REQUIRED: {
    smtp: { code: 538, enhanced: '5.7.11' },
    imap: { status: 'NO', code: 'PRIVACYREQUIRED' },
    pop3: { code: 'AUTH' },
    text: 'Encryption required for requested authentication mechanism',
  },
  ERR_SASL_TEMPORARY_FAILURE: {
    smtp: { code: 454, enhanced: '4.7.0' },
    imap: { status: 'NO', code: 'UNAVAILABLE' },
    pop3: { code: 'SYS/TEMP' },
    text: 'Temporary authentication failure',
  },
} satisfies Partial<Record<SaslErrorCode, ProtocolReply>>);

/** Which side breaks the protocol by default for each code. */
const defaultSide: Readonly<Record<SaslErrorCode, ProtocolSide>> = {
  ERR_SASL_AUTH_FAILED: 'remote',
  ERR_SASL_AUTHZ_FAILED: 'remote',
  ERR_SASL_MALFORMED: 'remote',
  ERR_SASL_CANCELLED: 'remote',
  ERR_SASL_MESSAGE_TOO_LARGE: 'remote',
  ERR_SASL_MECHANISM_UNSUPPORTED: 'remote',
  ERR_SASL_ENCRYPTION_REQUIRED: 'remote',
  ERR_SASL_CHANNEL_BINDING: 'remote',
  ERR_SASL_NONCE_MISMATCH: 'remote',
  ERR_SASL_TEMPORARY_FAILURE: 'none',
  ERR_SASL_SCRAM_ITERATIONS: 'remote',
  ERR_SASL_SERVER_SIGNATURE: 'remote',
  ERR_SASL_INVALID_CREDENTIALS: 'local',
  ERR_SASL_BAD_STATE: 'local',
  ERR_SASL_PASSWORD_HASH_INVALID: 'local',
};

export interface SaslErrorOptions {
  readonly side?: ProtocolSide;
  readonly cause?: unknown;
  /** Attach the server reply for `code` (true for server-side failures; client-side errors have nothing to reply). */
  readonly reply?: boolean;
}

/** Build a SaslError with the documented side and reply for `code`. */
export function saslError(code: SaslErrorCode, message: string, options: SaslErrorOptions = {}): SaslError {
  const reply = options.reply === false ? undefined : saslReplies[code];
  return new SaslError(code, message, {
    side: options.side ?? defaultSide[code],
    ...(reply === undefined ? {} : { reply }),
    ...(options.cause === undefined ? {} : { cause: options.cause }),
  });
}
