/**
 * Every limit of @pigeonpost/wire, in one place (STYLE habit 4). Each is a
 * named option with a safe default and the reason for the number. An explicit
 * 0 means 0 where the option allows it (it is never replaced by the default):
 * `resolveLimits` only fills options that are `undefined`.
 */

export interface LineFramerLimits {
  /**
   * Longest line accepted, in bytes, CRLF included. Default 8192.
   * RFC 5321 §4.5.3.1.4 sets 512 for an SMTP command line and §4.5.3.1.6
   * 1000 for a text line, but extensions make command lines longer (Postfix's
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
  /** How long an implicit-TLS or STARTTLS handshake may take, in ms. Default 30000. 0 means no timeout. */
  readonly tlsHandshakeTimeoutMs: number;
  /** How long `close()` waits for sessions to finish before destroying them, in ms. Default 30000. */
  readonly closeTimeoutMs: number;
  /**
   * How long a goodbye may take — an idle-timeout message from `onIdle`, or a
   * reject message — before the socket is destroyed, in ms. Default 5000: the
   * goodbye is one line, and a peer that does not read must not keep a socket
   * (Postfix's smtpd likewise writes its 421 and disconnects at once). 0 means
   * no wait: the socket is destroyed right after the write is queued.
   */
  readonly goodbyeTimeoutMs: number;
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

export interface SaslCredentialLimits {
  /**
   * Longest authentication or authorization identity accepted, in UTF-8
   * bytes. Default 512. RFC 4616 §2 requires a server to accept at least 255
   * octets; an RFC 5321 §4.5.3.1.3 path (a mailbox used as a user name) is at
   * most 256 octets, and 512 leaves room for realm-qualified names.
   */
  readonly maxSaslIdentityBytes: number;
  /**
   * Longest password accepted (PLAIN, LOGIN), in UTF-8 bytes. Default 1024:
   * RFC 4616 §2 asks for at least 255; passphrases and generated app
   * passwords fit easily; longer input is refused before any hashing work.
   */
  readonly maxSaslPasswordBytes: number;
}

export interface PasswordHashLimits {
  /**
   * Lowest scrypt cost exponent (`ln`, N = 2^ln) accepted when hashing or
   * verifying. Default 10 (N = 1024): anything cheaper is not a password hash
   * worth storing (RFC 7914 §2 suggests N = 2^14 for interactive logins).
   */
  readonly minScryptLogN: number;
  /**
   * Highest scrypt cost exponent accepted. Default 20 (N = 2^20, the RFC 7914
   * §2 "file encryption" setting): a stored string asking for more is
   * treated as malformed rather than allowed to spin a core for seconds.
   */
  readonly maxScryptLogN: number;
  /** Highest scrypt block size `r`. Default 32 (RFC 7914 §2 uses r = 8; OWASP too). */
  readonly maxScryptBlockSize: number;
  /** Highest scrypt parallelism `p`. Default 16 (RFC 7914 §2 uses p = 1; OWASP allows up to 5 at lower N). */
  readonly maxScryptParallelism: number;
  /**
   * Most memory one scrypt computation may use, in bytes (about 128·N·r).
   * Default 256 MiB: OWASP's strongest scrypt setting (N = 2^17, r = 8) needs
   * 128 MiB. Passed to `crypto.scrypt` as `maxmem` with a small margin.
   */
  readonly maxScryptMemoryBytes: number;
}

/** What a SASL server session enforces. */
export interface SaslServerLimits extends SaslLimits, SaslCredentialLimits {}

export interface WireLimits
  extends LineFramerLimits,
    DataDecoderLimits,
    LiteralLimits,
    Omit<ProxyProtocolLimits, 'maxV1HeaderBytes'>,
    ListenerLimits,
    SaslLimits,
    SaslCredentialLimits,
    PasswordHashLimits {}

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
  goodbyeTimeoutMs: 5000,
  maxSaslMessageBytes: 16_384,
  minScramIterations: 4096,
  maxScramIterations: 1_000_000,
  maxSaslIdentityBytes: 512,
  maxSaslPasswordBytes: 1024,
  minScryptLogN: 10,
  maxScryptLogN: 20,
  maxScryptBlockSize: 32,
  maxScryptParallelism: 16,
  maxScryptMemoryBytes: 256 * 1024 * 1024,
});

/** The keys of each group, for `resolveLimits(keys, given)`. */
export const saslClientLimitKeys = ['maxSaslMessageBytes', 'minScramIterations', 'maxScramIterations'] as const;
export const saslServerLimitKeys = [...saslClientLimitKeys, 'maxSaslIdentityBytes', 'maxSaslPasswordBytes'] as const;
export const passwordHashLimitKeys = ['minScryptLogN', 'maxScryptLogN', 'maxScryptBlockSize', 'maxScryptParallelism', 'maxScryptMemoryBytes'] as const;

/** PROXY v1's fixed maximum header length (haproxy proxy-protocol.txt §2.1). */
export const PROXY_V1_MAX_HEADER_BYTES = 107;

/**
 * One limit: `given` when it is a number >= 0, the default when undefined;
 * a RangeError otherwise. `resolveLimits` applies it to each key; a codec
 * made per message (the DATA decoder) calls it directly, with no array or
 * object per construction.
 */
export function resolveLimit(key: keyof WireLimits, given: number | undefined): number {
  if (given === undefined) return defaultLimits[key];
  if (typeof given !== 'number' || Number.isNaN(given) || given < 0) throw new RangeError(`limit ${key} must be a number >= 0, got ${String(given)}`);
  return given;
}

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
  for (const key of keys) out[key] = resolveLimit(key, given[key]);
  return out;
}
