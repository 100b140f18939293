/**
 * Every limit of @pigeonpost/smtp-core, in one place (STYLE habit 4). Each is
 * a named option with a safe default and the reason for the number. Options
 * left `undefined` take the default; an explicit 0 stays 0; a negative or NaN
 * value throws a `RangeError`.
 *
 * This file is shared with the client: append, never change another side's
 * numbers.
 */

export interface SmtpServerLimits {
  /**
   * Longest command line, CRLF included. Default 2048: RFC 5321 §4.5.3.1.4
   * says 512, but SMTP extensions make MAIL and RCPT longer (RFC 1869 §4.1.2
   * adds 512 per extension parameter list) — Postfix's `line_length_limit` is 2048.
   */
  readonly maxCommandLineLength: number;
  /**
   * Longest AUTH command line or SASL response line, CRLF included. Default
   * 12288, RFC 4954 §4 ("the 512 octet limit ... is increased to 12288 octets").
   */
  readonly maxAuthLineLength: number;
  /** Most recipients per message. Default 100: RFC 5321 §4.5.3.1.8 ("MUST be able to accept ... 100"). */
  readonly maxRecipients: number;
  /**
   * Largest message, in bytes, advertised with SIZE and enforced during the
   * transfer (RFC 1870). Default 50 MiB, wire's `maxDataBytes` (Gmail's 50 MB
   * incoming limit; Postfix's `message_size_limit` default is 10240000).
   */
  readonly maxMessageBytes: number;
  /** Unrecognized commands before 421 and disconnect. Default 10: smtp-server disconnects after 10 unrecognized commands; Postfix's `smtpd_soft_error_limit` is 10. */
  readonly maxUnrecognizedCommands: number;
  /** Commands refused with a 5xx/4xx syntax or sequence error before 421 and disconnect. Default 20: Postfix's `smtpd_hard_error_limit`. */
  readonly maxInvalidCommands: number;
  /** Commands before a successful AUTH on a listener that requires it. Default 20: EHLO, STARTTLS, EHLO, AUTH need 4 (smtp-server's `maxAllowedUnauthenticatedCommands` is 10). */
  readonly maxCommandsBeforeAuth: number;
  /** Failed AUTH attempts before 421 and disconnect. Default 3: each failure is a password guess; three covers a typo or two, and the growing delay slows the rest. */
  readonly maxAuthFailures: number;
  /** Delay before answering a failed AUTH, doubled after each failure, in ms. Default 1000 (Dovecot's `auth_failure_delay` is 2 s). 0 turns it off. */
  readonly authFailureDelayMs: number;
  /**
   * Longest a DATA or BDAT transfer may take, from 354 (or the first BDAT) to
   * the end of the body, in ms. Default 600000 — RFC 5321 §4.5.3.2.6 gives the
   * client 10 minutes for the data termination. The idle timeout cannot stop a
   * client that trickles one byte every few minutes; this does. 0 turns it off.
   */
  readonly dataTimeoutMs: number;
}

export interface SmtpListenerLimits {
  /** Idle time while waiting for a command, in ms. Default 300000: RFC 5321 §4.5.3.2.7 ("at least 5 minutes"). */
  readonly idleTimeoutMs: number;
  /** Connections open at once. Default 100: Postfix's `default_process_limit` (smtpd processes). */
  readonly maxConnections: number;
  /** Connections at once from one client IP. Default 50: Postfix's `smtpd_client_connection_count_limit`. */
  readonly maxConnectionsPerIp: number;
}

export type SmtpLimits = SmtpServerLimits & SmtpListenerLimits;

export const defaultSmtpLimits: Readonly<SmtpLimits> = Object.freeze({
  maxCommandLineLength: 2048,
  maxAuthLineLength: 12288,
  maxRecipients: 100,
  maxMessageBytes: 50 * 1024 * 1024,
  maxUnrecognizedCommands: 10,
  maxInvalidCommands: 20,
  maxCommandsBeforeAuth: 20,
  maxAuthFailures: 3,
  authFailureDelayMs: 1000,
  dataTimeoutMs: 600_000,
  idleTimeoutMs: 300_000,
  maxConnections: 100,
  maxConnectionsPerIp: 50,
});

/** Fill the `undefined` options of `given` from `defaultSmtpLimits`; an explicit 0 stays 0. */
export function resolveSmtpLimits<K extends keyof SmtpLimits>(keys: readonly K[], given: Partial<SmtpLimits> = {}): Pick<SmtpLimits, K> {
  const out: Partial<SmtpLimits> = {};
  for (const key of keys) {
    const value = given[key] ?? defaultSmtpLimits[key];
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`SMTP limit ${key} must be a number >= 0, got ${String(value)}`);
    }
    out[key] = value;
  }
  return out as Pick<SmtpLimits, K>;
}

// --- client side: appended by the client's owner ---

/**
 * Limits and timeouts of the SMTP client (`SmtpClientConnection`,
 * `SmtpClient.connect`). Timeouts are in ms; 0 turns one off.
 */
export interface SmtpClientLimits {
  /**
   * Longest reply line, CRLF included. Default 4096: RFC 5321 §4.5.3.1.5 says
   * 512, but real servers send longer text; 8× the RFC is generous and still
   * bounds the memory a hostile server can make us hold per line.
   */
  readonly maxReplyLineLength: number;
  /**
   * Most lines in one reply. Default 128: an EHLO reply has one line per
   * extension (about 15 in Postfix, 20 in Exchange); anything near 128 is an
   * attempt to make the client buffer without end.
   */
  readonly maxReplyLines: number;
  /** TCP connect (and implicit-TLS handshake). Default 30000: Postfix's `smtp_connect_timeout` is 30 s. */
  readonly connectTimeoutMs: number;
  /** Waiting for the 220 greeting. Default 300000, RFC 5321 §4.5.3.2.1 ("Initial 220 Message: 5 Minutes"). */
  readonly greetingTimeoutMs: number;
  /** EHLO, HELO, STARTTLS, AUTH, RSET, NOOP, QUIT replies. Default 300000: Postfix's `smtp_helo_timeout` is 300 s. */
  readonly commandTimeoutMs: number;
  /** MAIL reply. Default 300000, RFC 5321 §4.5.3.2.2 ("MAIL Command: 5 Minutes"). */
  readonly mailTimeoutMs: number;
  /** RCPT reply. Default 300000, RFC 5321 §4.5.3.2.3 ("RCPT Command: 5 Minutes"). */
  readonly rcptTimeoutMs: number;
  /** The 354 reply to DATA. Default 120000, RFC 5321 §4.5.3.2.4 ("DATA Initiation: 2 Minutes"). */
  readonly dataInitiationTimeoutMs: number;
  /**
   * One write of the body (the socket accepting a chunk), and each BDAT
   * chunk's reply. Default 180000, RFC 5321 §4.5.3.2.5 ("Data Block: 3 Minutes").
   */
  readonly dataBlockTimeoutMs: number;
  /** The reply after the final "." (or BDAT LAST). Default 600000, RFC 5321 §4.5.3.2.6 ("DATA Termination: 10 Minutes"). */
  readonly dataTerminationTimeoutMs: number;
  /**
   * Largest BDAT chunk, in bytes (RFC 3030). Default 262144: the body is
   * gathered into chunks of at most this size, so this is also the most body
   * the client holds at once.
   */
  readonly maxBdatChunkBytes: number;
}

export const defaultSmtpClientLimits: Readonly<SmtpClientLimits> = Object.freeze({
  maxReplyLineLength: 4096,
  maxReplyLines: 128,
  connectTimeoutMs: 30_000,
  greetingTimeoutMs: 300_000,
  commandTimeoutMs: 300_000,
  mailTimeoutMs: 300_000,
  rcptTimeoutMs: 300_000,
  dataInitiationTimeoutMs: 120_000,
  dataBlockTimeoutMs: 180_000,
  dataTerminationTimeoutMs: 600_000,
  maxBdatChunkBytes: 256 * 1024,
});

/** Fill the `undefined` client options from `defaultSmtpClientLimits`; an explicit 0 stays 0; negative or NaN throws `RangeError`. */
export function resolveSmtpClientLimits(given: Partial<SmtpClientLimits> = {}): SmtpClientLimits {
  const out: Record<string, number> = {};
  for (const key of Object.keys(defaultSmtpClientLimits) as (keyof SmtpClientLimits)[]) {
    const value = given[key] ?? defaultSmtpClientLimits[key];
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`SMTP client limit ${key} must be a number >= 0, got ${String(value)}`);
    }
    out[key] = value;
  }
  return out as unknown as SmtpClientLimits;
}
