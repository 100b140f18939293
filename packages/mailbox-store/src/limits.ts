/**
 * Every limit of @pigeonpost/mailbox-store, with a safe default and where the
 * number comes from. An explicit 0 stays 0; undefined takes the default.
 */
export interface StoreLimits {
  /**
   * Longest mailbox name, in UTF-8 bytes of the full hierarchical name.
   * Default 255: Dovecot's MAILBOX_LIST_NAME_MAX_LENGTH is 4096 but file
   * systems cap one path component at 255 bytes, and a Maildir++ folder is
   * one component (`.A.B.C`) in modified UTF-7, which is longer still.
   */
  readonly maxMailboxNameBytes: number;
  /** Deepest hierarchy, in levels. Default 16 (Dovecot's `mailbox_list_depth_limit` default is 16). */
  readonly maxMailboxDepth: number;
  /** Most mailboxes per user. Default 1000 (Gmail allows 10,000 labels; Dovecot has no limit). */
  readonly maxMailboxesPerUser: number;
  /**
   * Most distinct keywords per mailbox. Default 26: Maildir stores keywords
   * as the letters a–z in file names (dovecot-keywords), so the Maildir
   * backend cannot hold more; the memory backend follows it for parity.
   */
  readonly maxKeywordsPerMailbox: number;
  /** Longest keyword, in bytes. Default 128 (Dovecot has no fixed cap; IMAP servers commonly allow 100–250). */
  readonly maxKeywordBytes: number;
  /** Largest message accepted by deliver() and append(), in bytes. Default 50 MiB (matches @pigeonpost/wire's maxDataBytes). */
  readonly maxMessageBytes: number;
}

export const defaultStoreLimits: Readonly<StoreLimits> = Object.freeze({
  maxMailboxNameBytes: 255,
  maxMailboxDepth: 16,
  maxMailboxesPerUser: 1000,
  maxKeywordsPerMailbox: 26,
  maxKeywordBytes: 128,
  maxMessageBytes: 50 * 1024 * 1024,
});

export function resolveStoreLimits(given: Partial<StoreLimits> = {}): StoreLimits {
  const out = { ...defaultStoreLimits } as { -readonly [K in keyof StoreLimits]: number };
  for (const key of Object.keys(defaultStoreLimits) as (keyof StoreLimits)[]) {
    const value = given[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new RangeError(`limit ${key} must be a number >= 0, got ${String(value)}`);
    out[key] = value;
  }
  return out;
}
