/**
 * Flag-set operations shared by every backend, on flags already validated by
 * `normalizeFlag` (names.ts).
 *
 * Flags compare case-insensitively (RFC 9051 §2.3.2: "flag names are not
 * case-sensitive"), and a mailbox keeps the case a keyword had the first
 * time it was used in that mailbox, as Dovecot does. `MailboxKeywords` is that
 * per-mailbox memory and also enforces `maxKeywordsPerMailbox`; its order
 * (first use first) is the order Maildir maps keywords to the letters a–z.
 */
import { StoreError } from './errors.js';
import type { StoreLimits } from './limits.js';
import { normalizeFlag } from './names.js';
import type { FlagChange, FlagChangeMode } from './types.js';

/** The comparison key of a flag: flags are case-insensitive. */
export function flagKey(flag: string): string {
  return flag.toLowerCase();
}

/** True when `flags` holds `flag` (case-insensitive). */
export function hasFlag(flags: readonly string[], flag: string): boolean {
  const key = flagKey(flag);
  return flags.some((f) => flagKey(f) === key);
}

export function isSeen(flags: readonly string[]): boolean {
  return hasFlag(flags, '\\Seen');
}

export function isDeleted(flags: readonly string[]): boolean {
  return hasFlag(flags, '\\Deleted');
}

/** True when `a` and `b` hold the same flags, ignoring case and order. */
export function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  const ka = new Set(a.map(flagKey));
  const kb = new Set(b.map(flagKey));
  if (ka.size !== kb.size) return false;
  for (const k of ka) if (!kb.has(k)) return false;
  return true;
}

/** True for a keyword, false for a system flag (`\Seen` …). */
export function isKeyword(flag: string): boolean {
  return !flag.startsWith('\\');
}

/**
 * Validate every flag (`ERR_STORE_INVALID_FLAG`) and drop duplicates, keeping
 * the first spelling of each. System flags come back in canonical case.
 */
export function normalizeFlags(flags: readonly string[], limits: Pick<StoreLimits, 'maxKeywordBytes'>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const flag of flags) {
    const normal = normalizeFlag(flag, limits);
    const key = flagKey(normal);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(normal);
  }
  return out;
}

/**
 * Apply one change to a message's flags. Returns the new flags, or undefined
 * when the message is already in the requested state (then it must not get a
 * new MODSEQ: RFC 7162 §3.1.3 counts only real changes). Flags already
 * present keep their position and spelling; added ones go at the end.
 */
export function applyFlagChange(current: readonly string[], mode: FlagChangeMode, flags: readonly string[]): readonly string[] | undefined {
  let next: string[];
  if (mode === 'replace') {
    next = dedupe(flags);
  } else if (mode === 'add') {
    next = [...current];
    for (const flag of flags) if (!hasFlag(next, flag)) next.push(flag);
  } else {
    const remove = new Set(flags.map(flagKey));
    next = current.filter((f) => !remove.has(flagKey(f)));
  }
  return sameFlags(current, next) ? undefined : next;
}

function dedupe(flags: readonly string[]): string[] {
  const seen = new Set<string>();
  return flags.filter((f) => {
    const key = flagKey(f);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** `flags` with `\Seen` added (POP3 RETR, IMAP BODY[] fetch). */
export function withSeen(flags: readonly string[]): readonly string[] {
  return isSeen(flags) ? flags : [...flags, '\\Seen'];
}

/**
 * RFC 7162 §3.1.3 UNCHANGEDSINCE: true when the message may be changed, that
 * is when no `unchangedSince` was given or the message's MODSEQ is not above
 * it. This holds whether or not the change would be a no-op: a refused
 * message is reported in MODIFIED either way.
 */
export function passesUnchangedSince(modSeq: number, unchangedSince: number | undefined): boolean {
  return unchangedSince === undefined || modSeq <= unchangedSince;
}

/** One message's part of a flag change, as planned by `planFlagChange`. */
export interface PlannedFlagUpdate {
  readonly uid: number;
  readonly flags: readonly string[];
}

/**
 * Decide a STORE for a list of messages without touching them: which change
 * (and to what), which conflict with `unchangedSince`, and which are already
 * in the requested state. `change.flags` must already be canonical (through
 * `MailboxKeywords.canonicalize`).
 */
export function planFlagChange(
  messages: Iterable<{ readonly uid: number; readonly modSeq: number; readonly flags: readonly string[] }>,
  change: Pick<FlagChange, 'mode' | 'flags' | 'unchangedSince'>,
): { readonly updates: readonly PlannedFlagUpdate[]; readonly conflicts: readonly number[] } {
  const updates: PlannedFlagUpdate[] = [];
  const conflicts: number[] = [];
  for (const message of messages) {
    if (!passesUnchangedSince(message.modSeq, change.unchangedSince)) {
      conflicts.push(message.uid);
      continue;
    }
    const flags = applyFlagChange(message.flags, change.mode, change.flags);
    if (flags !== undefined) updates.push({ uid: message.uid, flags });
  }
  return { updates, conflicts };
}

/**
 * The keywords a mailbox has ever used, in first-use order, with their
 * first-seen spelling. Keywords are never forgotten while the mailbox exists
 * (like Dovecot's `dovecot-keywords`), so the limit counts distinct keywords
 * ever used, and Maildir letters stay stable.
 */
export class MailboxKeywords {
  readonly #max: number;
  readonly #byKey = new Map<string, string>();

  constructor(limits: Pick<StoreLimits, 'maxKeywordsPerMailbox'>, initial: Iterable<string> = []) {
    this.#max = limits.maxKeywordsPerMailbox;
    for (const keyword of initial) if (!this.#byKey.has(flagKey(keyword))) this.#byKey.set(flagKey(keyword), keyword);
  }

  /** The keywords in first-use order (index = Maildir letter a–z). */
  list(): readonly string[] {
    return [...this.#byKey.values()];
  }

  get size(): number {
    return this.#byKey.size;
  }

  /**
   * The canonical spelling of each flag, without registering anything (for
   * a `remove`, which must not use up keyword slots).
   */
  canonicalize(flags: readonly string[]): string[] {
    return flags.map((f) => (isKeyword(f) ? (this.#byKey.get(flagKey(f)) ?? f) : f));
  }

  /**
   * Register the keywords among `flags` and return `flags` in canonical
   * spelling. Throws `ERR_STORE_LIMIT` — registering nothing — when the
   * mailbox would exceed `maxKeywordsPerMailbox` distinct keywords.
   */
  register(flags: readonly string[]): string[] {
    const fresh = new Map<string, string>();
    for (const f of flags) {
      const key = flagKey(f);
      if (isKeyword(f) && !this.#byKey.has(key) && !fresh.has(key)) fresh.set(key, f);
    }
    if (this.#byKey.size + fresh.size > this.#max) {
      throw new StoreError('ERR_STORE_LIMIT', `a mailbox can hold at most ${this.#max} distinct keywords`);
    }
    for (const [key, f] of fresh) this.#byKey.set(key, f);
    return this.canonicalize(flags);
  }

  /** Would registering `flags` stay within the limit? */
  fits(flags: readonly string[]): boolean {
    const fresh = new Set(flags.filter((f) => isKeyword(f) && !this.#byKey.has(flagKey(f))).map(flagKey));
    return this.#byKey.size + fresh.size <= this.#max;
  }
}

/**
 * A view (ascending by UID) with the messages of `updated` (ascending by UID,
 * new versions of messages it may hold) in place of their old versions: a
 * merge, no map. Messages of `updated` the view does not hold stay out.
 */
export function withVersions<T extends { readonly uid: number }>(view: readonly T[], updated: readonly T[]): T[] {
  if (updated.length * 64 < view.length) {
    // A few (a STORE on some messages of a big mailbox): the view copied whole, each found by halving.
    const out = view.slice();
    let lo = 0;
    for (const u of updated) {
      let hi = out.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (out[mid]!.uid < u.uid) lo = mid + 1;
        else hi = mid;
      }
      if (lo < out.length && out[lo]!.uid === u.uid) out[lo] = u;
    }
    return out;
  }
  const out = new Array<T>(view.length);
  let j = 0;
  for (let i = 0; i < view.length; i++) {
    const m = view[i]!;
    while (j < updated.length && updated[j]!.uid < m.uid) j++;
    out[i] = j < updated.length && updated[j]!.uid === m.uid ? updated[j]! : m;
  }
  return out;
}
