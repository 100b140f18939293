/**
 * Every limit of @pigeonpost/wire, in one place (STYLE habit 4). Each is a
 * named option with a safe default and the reason for the number. An explicit
 * 0 means 0 where the option allows it (it is never replaced by the default):
 * `resolveLimits` only fills options that are `undefined`.
 */

export interface LineFramerLimits {
  /**
   * Longest line accepted, in bytes, CRLF included. Default 8192.
   * RFC 5321 §4.5.3.1.4 sets 1000 for an SMTP text line and §4.5.3.1.5 512
   * for a command line, but extensions make command lines longer (Postfix's
   * `line_length_limit` is 2048, Dovecot's IMAP `imap_max_line_length` is 64k);
   * each protocol passes its own number, and 8192 is the generic safe default.
   */
  readonly maxLineLength: number;
}

export interface DataDecoderLimits {
  /**
   * Largest message body accepted by the DATA decoder, in bytes after
   * dot-unstuffing. Default 50 MiB — Postfix's `message_size_limit` default is
   * 10 MB and Gmail accepts 50 MB; SMTP servers advertise their own with SIZE.
   */
  readonly maxDataBytes: number;
  /**
   * Longest line inside the body, CRLF included. Default 1 MiB. RFC 5321
   * §4.5.3.1.6 says 1000, but real mail breaks it often (Postfix folds lines
   * over 2048 rather than refusing); this cap only bounds memory per line.
   */
  readonly maxDataLineLength: number;
}

export interface LiteralLimits {
  /**
   * Largest IMAP literal accepted, in bytes. Default 64 MiB, a little above
   * the largest message most servers accept (Dovecot has no default cap; its
   * APPEND is bounded by the quota). The caller decides per literal, before
   * any of its bytes are read.
   */
  readonly maxLiteralBytes: number;
}

export interface ProxyProtocolLimits {
  /**
   * Longest PROXY v1 header, CRLF included: 107 bytes, fixed by the spec
   * (haproxy proxy-protocol.txt §2.1). Not configurable upward.
   */
  readonly maxV1HeaderBytes: 107;
  /**
   * Largest PROXY v2 header accepted (16-byte prefix plus addresses and TLVs).
   * Default 4096: the spec allows 16 + 65535, but haproxy sends a few hundred
   * bytes at most; a bigger header is refused rather than buffered.
   */
  readonly maxV2HeaderBytes: number;
  /** How long to wait for the whole header, in ms. Default 5000 (haproxy's `timeout client` is usually far longer; the header comes first and at once). */
  readonly headerTimeoutMs: number;
}

export interface ListenerLimits {
  /** Most connections open at once. Default 1000 (Postfix `default_process_limit` is 100 smtpd processes; Node handles many more). */
  readonly maxConnections: number;
  /** Most connections open at once from one client IP. Default 20 (Dovecot `mail_max_userip_connections` is 10 per user+IP; Postfix `smtpd_client_connection_count_limit` is 50). 0 refuses every connection. */
  readonly maxConnectionsPerIp: number;
  /** Idle time before a connection is closed, in ms. Default 300000 (RFC 5321 §4.5.3.2.7: a server SHOULD wait at least 5 minutes). Each protocol passes its own (IMAP: 30 min, RFC 9051 §5.4). */
  readonly idleTimeoutMs: number;
  /** How long an implicit-TLS handshake may take, in ms. Default 30000. */
  readonly tlsHandshakeTimeoutMs: number;
  /** How long `close()` waits for sessions to finish before destroying them, in ms. Default 30000. */
  readonly closeTimeoutMs: number;
}

export interface SaslLimits {
  /**
   * Longest SASL message accepted, in bytes after base64 decoding. Default
   * 16384: an OAuth bearer token or a SCRAM message is a few hundred bytes;
   * Dovecot caps the whole AUTH line at 64 KiB of base64.
   */
  readonly maxSaslMessageBytes: number;
  /** Lowest SCRAM iteration count a client accepts. Default 4096 (RFC 7677 §4: at least 4096). */
  readonly minScramIterations: number;
  /** Highest SCRAM iteration count a client accepts, so a hostile server cannot make it spin. Default 1,000,000. */
  readonly maxScramIterations: number;
}

export interface WireLimits
  extends LineFramerLimits,
    DataDecoderLimits,
    LiteralLimits,
    Omit<ProxyProtocolLimits, 'maxV1HeaderBytes'>,
    ListenerLimits,
    SaslLimits {}

export const defaultLimits: Readonly<WireLimits> = Object.freeze({
  maxLineLength: 8192,
  maxDataBytes: 50 * 1024 * 1024,
  maxDataLineLength: 1024 * 1024,
  maxLiteralBytes: 64 * 1024 * 1024,
  maxV2HeaderBytes: 4096,
  headerTimeoutMs: 5000,
  maxConnections: 1000,
  maxConnectionsPerIp: 20,
  idleTimeoutMs: 300_000,
  tlsHandshakeTimeoutMs: 30_000,
  closeTimeoutMs: 30_000,
  maxSaslMessageBytes: 16_384,
  minScramIterations: 4096,
  maxScramIterations: 1_000_000,
});

/** PROXY v1's fixed maximum header length (haproxy proxy-protocol.txt §2.1). */
export const PROXY_V1_MAX_HEADER_BYTES = 107;

/**
 * Fill in the defaults for the limits the caller left `undefined`. An explicit
 * 0 stays 0. Negative numbers and NaN are refused: a limit is a promise, and a
 * nonsense one is a configuration bug worth failing loudly for.
 */
export function resolveLimits<K extends keyof WireLimits>(
  keys: readonly K[],
  given: Partial<Pick<WireLimits, K>> = {},
): Pick<WireLimits, K> {
  const out = {} as Pick<WireLimits, K>;
  for (const key of keys) {
    const value = given[key];
    if (value === undefined) {
      out[key] = defaultLimits[key];
      continue;
    }
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`limit ${key} must be a number >= 0, got ${String(value)}`);
    }
    out[key] = value;
  }
  return out;
}
