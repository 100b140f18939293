/** Retry and lifetime settings, with Postfix's defaults. */
export interface RetryOptions {
  /** First retry after this long, in ms. Default 300,000 (Postfix `minimal_backoff_time`, 300 s). */
  readonly minBackoffMs?: number;
  /** Never wait longer than this between attempts, in ms. Default 4,000,000 (Postfix `maximal_backoff_time`, 4000 s). */
  readonly maxBackoffMs?: number;
  /** Give up and bounce after this long in the queue, in ms. Default 5 days (Postfix `maximal_queue_lifetime`). */
  readonly maxQueueLifetimeMs?: number;
  /** The same for notifications the queue made (bounces), in ms. Default 5 days (Postfix `bounce_queue_lifetime`). */
  readonly maxNotificationLifetimeMs?: number;
  /** Send a delay warning once a message has waited this long, in ms; 0 turns it off. Default 0 (Postfix `delay_warning_time`, off by default). */
  readonly delayWarningMs?: number;
  /** Spread each wait by up to this fraction either way, so retries of many messages do not arrive together. Default 0.1. */
  readonly jitter?: number;
}

export const retryDefaults = Object.freeze({
  minBackoffMs: 300_000,
  maxBackoffMs: 4_000_000,
  maxQueueLifetimeMs: 5 * 24 * 3600_000,
  maxNotificationLifetimeMs: 5 * 24 * 3600_000,
  delayWarningMs: 0,
  jitter: 0.1,
});

/**
 * The wait before the next attempt after `attempts` failed ones: the
 * minimum, doubled after each failure, capped at the maximum (exponential
 * backoff, as the issue and Postfix's qmgr do), spread by the jitter.
 */
export function backoffDelay(attempts: number, options: Required<RetryOptions>, random: () => number = Math.random): number {
  const exponent = Math.max(0, Math.min(30, attempts - 1));
  const base = Math.min(options.maxBackoffMs, options.minBackoffMs * 2 ** exponent);
  const spread = options.jitter > 0 ? 1 + options.jitter * (random() * 2 - 1) : 1;
  return Math.max(1, Math.round(Math.min(options.maxBackoffMs, base * spread)));
}
