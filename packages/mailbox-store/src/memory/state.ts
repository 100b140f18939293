/**
 * The memory backend's data: plain objects owned by one `MemoryStore`.
 * Every mutation happens synchronously (after any body has been read), so
 * each operation is atomic with respect to every other one.
 */
import type { MailboxKeywords } from '../flags.js';
import type { MessageStructure } from '../structure.js';
import type { MessageMeta, QuotaLimits, SpecialUse } from '../types.js';

export interface MemMessage {
  /** Replaced (never mutated) on every change, so views may keep references. */
  meta: MessageMeta;
  readonly data: Buffer;
  readonly structure: MessageStructure;
  /** INTERNALDATE (ms). */
  readonly internalDate: number;
}

export interface MemMailbox {
  readonly id: string;
  name: string;
  specialUse: readonly SpecialUse[];
  subscribed: boolean;
  readonly uidValidity: number;
  uidNext: number;
  highestModSeq: number;
  /** By UID; insertion order is ascending UID, because UIDs only grow. */
  readonly messages: Map<number, MemMessage>;
  readonly keywords: MailboxKeywords;
  /** Every expunge of the mailbox's life, for QRESYNC VANISHED. */
  readonly expungeLog: { readonly uid: number; readonly modSeq: number }[];
  /** Set when the mailbox (or its user) is deleted: open handles then fail. */
  deleted: boolean;
}

export interface MemUser {
  readonly name: string;
  /** By normalised name. */
  readonly mailboxes: Map<string, MemMailbox>;
  quota: QuotaLimits;
}
