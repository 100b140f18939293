import { PigeonpostError, type PigeonpostErrorOptions } from '@pigeonpost/wire';

/**
 * Why mail for a domain cannot be routed now (or ever). `temporary` tells the
 * relay what to do: defer and retry (4xx) or bounce (5xx). `reply.smtp`
 * carries the code and RFC 3463 enhanced status code for the DSN.
 */
export type MxErrorCode =
  /** The domain is not a valid host name, not even after IDNA conversion (permanent, 5.1.2). */
  | 'ERR_MX_INVALID_DOMAIN'
  /** The domain does not exist: NXDOMAIN for its MX query (permanent, 5.1.2). */
  | 'ERR_MX_NXDOMAIN'
  /** The domain publishes a null MX (RFC 7505): it accepts no mail (permanent, 5.1.10). */
  | 'ERR_MX_NULL_MX'
  /** MX records exist (or the implicit MX was tried) but no host has a usable address (permanent, 5.4.4). */
  | 'ERR_MX_NO_USABLE_HOST'
  /** This host is the best MX: relaying would loop (permanent, 5.4.6). */
  | 'ERR_MX_LOOP'
  /** DNS failed for now: SERVFAIL, REFUSED, timeout, network error (temporary, 4.4.3). */
  | 'ERR_MX_TEMPORARY';

const REPLIES: Record<MxErrorCode, { readonly code: number; readonly enhanced: string }> = {
  ERR_MX_INVALID_DOMAIN: { code: 550, enhanced: '5.1.2' },
  ERR_MX_NXDOMAIN: { code: 550, enhanced: '5.1.2' },
  ERR_MX_NULL_MX: { code: 556, enhanced: '5.1.10' },
  ERR_MX_NO_USABLE_HOST: { code: 550, enhanced: '5.4.4' },
  ERR_MX_LOOP: { code: 550, enhanced: '5.4.6' },
  ERR_MX_TEMPORARY: { code: 451, enhanced: '4.4.3' },
};

export class MxError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/MxError');

  declare readonly code: MxErrorCode;
  /** True for a failure worth retrying later (4xx), false for one that will not change (5xx). */
  readonly temporary: boolean;
  /** The domain being routed, as looked up (A-labels). */
  readonly domain: string;

  constructor(code: MxErrorCode, domain: string, message: string, options: Omit<PigeonpostErrorOptions, 'reply'> = {}) {
    const reply = REPLIES[code];
    super(code, message, { side: 'none', ...options, reply: { smtp: reply, text: message } });
    this.temporary = code === 'ERR_MX_TEMPORARY';
    this.domain = domain;
  }
}

/** Why a DNS query got no answer: the transport's failure, always temporary for routing. */
export type DnsErrorCode =
  /** No response from any server within the timeout, after every try. */
  | 'ERR_DNS_TIMEOUT'
  /** The server answered SERVFAIL, REFUSED, NOTIMP or another error RCODE. */
  | 'ERR_DNS_SERVER_FAILURE'
  /** A response that does not parse or does not match the question. */
  | 'ERR_DNS_BAD_RESPONSE'
  /** Sockets failed (no route, connection refused for TCP). */
  | 'ERR_DNS_NETWORK'
  /** The caller's `AbortSignal` fired. */
  | 'ERR_DNS_ABORTED';

export class DnsError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/DnsError');
  declare readonly code: DnsErrorCode;
  /** The name and type that failed, e.g. `example.com MX`. */
  readonly question: string;

  constructor(code: DnsErrorCode, question: string, message: string, options: PigeonpostErrorOptions = {}) {
    super(code, message, { side: 'none', ...options });
    this.question = question;
  }
}

/** Why an MTA-STS policy could not be had. Never fatal for delivery on its own: the relay falls back as RFC 8461 §5 says. */
export type MtaStsErrorCode =
  /** The policy text breaks RFC 8461 §3.2 (version, mode, max_age, mx). */
  | 'ERR_MTA_STS_INVALID_POLICY'
  /** The HTTPS fetch failed: status not 200, a redirect, wrong media type, too large, TLS or certificate error, timeout. */
  | 'ERR_MTA_STS_FETCH';

export class MtaStsError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/MtaStsError');
  declare readonly code: MtaStsErrorCode;
  constructor(code: MtaStsErrorCode, message: string, options: PigeonpostErrorOptions = {}) {
    super(code, message, { side: 'remote', ...options });
  }
}
