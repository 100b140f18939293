/**
 * Every limit of @pigeonpost/pop3-core, in one place (STYLE habit 4). Each is
 * a named option with a safe default and the reason for the number. Options
 * left `undefined` take the default; an explicit 0 stays 0; a negative or NaN
 * value throws a `RangeError`.
 */

export interface Pop3ServerLimits {
  /**
   * Longest command line, CRLF included. Default 512: RFC 2449 §4 caps a
   * command at 255 octets including CRLF; twice that (plus margin) lets
   * long UTF-8 user names and passwords through while still bounding memory.
   */
  readonly maxCommandLineLength: number;
  /**
   * Longest AUTH command or SASL response line, CRLF included. Default
   * 12288: RFC 5034 §4 lifts the 255-octet limit for AUTH; 12288 is the
   * limit RFC 4954 §4 gives SMTP AUTH, and fits an OAuth token.
   */
  readonly maxAuthLineLength: number;
  /** Unknown, wrong-state or malformed commands before `-ERR` and close. Default 20: Dovecot's `CLIENT_MAX_BAD_COMMANDS`. */
  readonly maxBadCommands: number;
  /** Failed USER/PASS, APOP or AUTH attempts before `-ERR [AUTH]` and close. Default 3. */
  readonly maxAuthFailures: number;
  /** Delay before answering a failed login, doubled after each failure, in ms. Default 1000 (Dovecot's `auth_failure_delay` is 2 s). 0 turns it off. */
  readonly authFailureDelayMs: number;
  /**
   * Pipelined RETR/TOP commands read ahead while the current message is
   * sent, each up to 64 KiB. Default 8: it keeps the file system busy
   * (Node's thread pool has 4 threads) for at most 512 KiB per session. 0
   * turns it off.
   */
  readonly prefetchMessages: number;
}

export interface Pop3ListenerLimits {
  /** Idle time while waiting for a command, in ms. Default 600000: RFC 1939 §3 ("at least 10 minutes"). */
  readonly idleTimeoutMs: number;
  /** Connections open at once. Default 100: Dovecot's `default_process_limit`. */
  readonly maxConnections: number;
  /** Connections at once from one client IP. Default 20: twice Dovecot's `mail_max_userip_connections` (10, per user and IP). */
  readonly maxConnectionsPerIp: number;
}

export type Pop3Limits = Pop3ServerLimits & Pop3ListenerLimits;

export const defaultPop3Limits: Readonly<Pop3Limits> = Object.freeze({
  maxCommandLineLength: 512,
  maxAuthLineLength: 12288,
  maxBadCommands: 20,
  maxAuthFailures: 3,
  authFailureDelayMs: 1000,
  prefetchMessages: 8,
  idleTimeoutMs: 600_000,
  maxConnections: 100,
  maxConnectionsPerIp: 20,
});

/** Fill the `undefined` options of `given` from `defaultPop3Limits`; an explicit 0 stays 0. */
export function resolvePop3Limits<K extends keyof Pop3Limits>(keys: readonly K[], given: Partial<Pop3Limits> = {}): Pick<Pop3Limits, K> {
  const out: Partial<Pop3Limits> = {};
  for (const key of keys) {
    const value = given[key] ?? defaultPop3Limits[key];
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`POP3 limit ${key} must be a number >= 0, got ${String(value)}`);
    }
    out[key] = value;
  }
  return out as Pick<Pop3Limits, K>;
}

/** Limits and timeouts of the POP3 client. Timeouts are in ms; 0 turns one off. */
export interface Pop3ClientLimits {
  /** Longest status or body line, CRLF included. Default 65536: RFC 2449 §4 says 512 for status lines; message lines are unbounded in practice, and this bounds what a hostile server makes us hold per line. */
  readonly maxResponseLineLength: number;
  /** Most lines of a CAPA, LIST or UIDL listing. Default 1,000,000: a listing is held in memory, and no real maildrop has more messages. */
  readonly maxListingLines: number;
  /** TCP connect and implicit-TLS handshake. Default 30000. */
  readonly connectTimeoutMs: number;
  /** Waiting for a status line or for the next body bytes. Default 600000: RFC 1939 §3's 10-minute server timer, mirrored. */
  readonly commandTimeoutMs: number;
}

export const defaultPop3ClientLimits: Readonly<Pop3ClientLimits> = Object.freeze({
  maxResponseLineLength: 65536,
  maxListingLines: 1_000_000,
  connectTimeoutMs: 30_000,
  commandTimeoutMs: 600_000,
});

/** Fill the `undefined` client options from `defaultPop3ClientLimits`; negative or NaN throws `RangeError`. */
export function resolvePop3ClientLimits(given: Partial<Pop3ClientLimits> = {}): Pop3ClientLimits {
  const out: Record<string, number> = {};
  for (const key of Object.keys(defaultPop3ClientLimits) as (keyof Pop3ClientLimits)[]) {
    const value = given[key] ?? defaultPop3ClientLimits[key];
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`POP3 client limit ${key} must be a number >= 0, got ${String(value)}`);
    }
    out[key] = value;
  }
  return out as unknown as Pop3ClientLimits;
}
