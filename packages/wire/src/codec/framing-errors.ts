/**
 * The FramingError codes of the codec, and the reply each protocol sends for
 * them. Remote errors are returned as events, never thrown (DESIGN: "bad input
 * gets a clear protocol error"); only a caller's misuse of the API throws
 * (`ERR_FRAMER_STATE`, side 'local'), as h11 raises LocalProtocolError.
 */
import { FramingError } from '../errors.js';

/** Every `code` a FramingError from the codec can carry. */
export type FramingErrorCode =
  /** A line (or IMAP line fragment) is longer than `maxLineLength`. */
  | 'ERR_LINE_TOO_LONG'
  /** A DATA body (SMTP) or multi-line response (POP3) is larger than `maxDataBytes`. */
  | 'ERR_DATA_TOO_LARGE'
  /** An IMAP literal announces more than `maxLiteralBytes`. */
  | 'ERR_LITERAL_TOO_LARGE'
  /** The caller used the framer or codec out of order (a bug in our code, side 'local'). Thrown. */
  | 'ERR_FRAMER_STATE';

export function lineTooLongError(maxLineLength: number): FramingError {
  return new FramingError('ERR_LINE_TOO_LONG', `line longer than ${maxLineLength} bytes (CRLF included)`, {
    side: 'remote',
    reply: {
      // RFC 5321 §4.5.3.1.9 answers "500 Line too long"; 5.5.2 (syntax
      // error, RFC 3463) as Postfix sends it. X.5.6 is registered for an
      // over-long SASL line only (RFC 4954), so it is not used here.
      smtp: { code: 500, enhanced: '5.5.2' },
      // RFC 9051 §7.1: BAD for a command the server cannot parse.
      imap: { status: 'BAD' },
      pop3: {},
      text: 'Line too long',
    },
  });
}

export function dataTooLargeError(maxDataBytes: number): FramingError {
  return new FramingError('ERR_DATA_TOO_LARGE', `message body larger than ${maxDataBytes} bytes`, {
    side: 'remote',
    reply: {
      // RFC 5321 §4.5.3.1.9 ("552 Too much mail data") and RFC 1870 (SIZE);
      // RFC 3463 §3.4 X.3.4 "message too big for system".
      smtp: { code: 552, enhanced: '5.3.4' },
      pop3: {},
      text: 'Message size exceeds fixed maximum message size',
    },
  });
}

export function literalTooLargeError(size: number, maxLiteralBytes: number, synchronizing: boolean): FramingError {
  return new FramingError('ERR_LITERAL_TOO_LARGE', `literal of ${size} bytes is larger than ${maxLiteralBytes}`, {
    side: 'remote',
    reply: {
      // RFC 9051 §7.1 TOOBIG. A synchronizing literal is refused with NO
      // before the client sends it; a non-synchronizing one is already on the
      // wire and RFC 7888 (LITERAL-) has the server answer BAD.
      imap: { status: synchronizing ? 'NO' : 'BAD', code: 'TOOBIG' },
      text: 'Literal too large',
    },
  });
}

export function stateError(message: string): FramingError {
  return new FramingError('ERR_FRAMER_STATE', message, { side: 'local' });
}
