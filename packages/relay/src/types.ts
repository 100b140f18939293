/** One recipient of a queued message, with the RFC 3461 parameters it came with. */
export interface QueueRecipient {
  readonly address: string;
  /** ORCPT (RFC 3461 §4.2): the original recipient address, as `type;address` would give it (address only). */
  readonly orcpt?: string;
  /**
   * NOTIFY (RFC 3461 §4.1): `'NEVER'` (or `['NEVER']`, as an SMTP server hands it over) or any of
   * SUCCESS, FAILURE, DELAY. Absent: FAILURE (and DELAY, when delay warnings are on).
   */
  readonly notify?: 'NEVER' | readonly ('NEVER' | 'SUCCESS' | 'FAILURE' | 'DELAY')[];
}

/** The envelope of a message handed to the queue. */
export interface QueueEnvelope {
  /** Reverse path; `''` is the null sender (a bounce: never bounced itself). */
  readonly from: string;
  readonly to: readonly (string | QueueRecipient)[];
  /** RFC 3461 RET and ENVID. */
  readonly dsn?: { readonly ret?: 'FULL' | 'HDRS'; readonly envid?: string };
  /** The message needs SMTPUTF8 at the next hop (RFC 6531). */
  readonly smtputf8?: boolean;
  /** BODY= of the message (RFC 6152). */
  readonly bodyType?: '7BIT' | '8BITMIME';
  /** REQUIRETLS (RFC 8689): deliver only over TLS with a verified certificate. */
  readonly requireTls?: boolean;
}

/** A message body to enqueue: bytes, a string (UTF-8), or a stream / (async) iterable of chunks. */
export type QueueBody = Uint8Array | string | AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** A server's reply as the queue keeps it. */
export interface ReplySummary {
  readonly code: number;
  readonly enhanced?: string;
  readonly text: string;
}

/**
 * Where a recipient stands. `queued`: not tried yet; `deferred`: tried,
 * failed temporarily, will be tried again; `delivered`: a server took it
 * (final); `bounced`: failed for good (final).
 */
export type RecipientStatus = 'queued' | 'deferred' | 'delivered' | 'bounced';

export interface RecipientState {
  readonly address: string;
  readonly orcpt?: string;
  readonly notify?: 'NEVER' | readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[];
  readonly status: RecipientStatus;
  readonly attempts: number;
  readonly lastAttemptAt?: number;
  readonly lastReply?: ReplySummary;
  /** The host that gave the last reply (`dns; mx.example.net` in a DSN). */
  readonly remoteMta?: string;
  /** For a delivered recipient: whether the next hop offered DSN (else a NOTIFY=SUCCESS gets a "relayed" notice). */
  readonly dsnPassedOn?: boolean;
}

/** A queued message as `list()` and `show()` report it. */
export interface QueueEntry {
  readonly id: string;
  readonly from: string;
  readonly size: number;
  readonly arrivalTime: number;
  readonly recipients: readonly RecipientState[];
  /** Held messages are never tried until released (Postfix's `postsuper -h`). */
  readonly held: boolean;
  /** When the next attempt is due (ms since the epoch); undefined while held, active or done. */
  readonly nextAttemptAt: number | undefined;
  /** True while a delivery attempt is running. */
  readonly active: boolean;
  readonly attempts: number;
  readonly dsn?: QueueEnvelope['dsn'];
  /** True for a notification the queue generated itself (a bounce or delay warning, from `<>`). */
  readonly isNotification: boolean;
  readonly smtputf8: boolean;
  readonly bodyType?: '7BIT' | '8BITMIME';
  readonly requireTls: boolean;
}
