/**
 * One message of a Maildir folder, as the folder, its index and every open
 * handle see it: one object per message version (a flag change makes a new
 * one), shared by the folder's view and by every handle's view, never copied
 * per handle. It is the `MessageMeta` handed out, so it holds only what a
 * 100k-message folder must keep per message:
 *
 * - the public fields (UID, MODSEQ, flags as a frozen array shared by every
 *   message with the same info letters, RFC822.SIZE), and the EMAILID
 *   computed on first use (a SHA-256 of the base name);
 * - the base name and the sorted info letters (flags as in the file name);
 * - state the folder fills in later, not part of the version: the exact file
 *   name when it is not `cur/<base>:2,<info>`, INTERNALDATE once a `stat`
 *   found it (NaN until then), and where the MIME structure is (in memory, or
 *   its place in the index log).
 */
import { createHash } from 'node:crypto';
import type { MessageStructure } from '../structure.js';
import type { MessageMeta } from '../types.js';

export function emailIdOf(base: string): string {
  // RFC 8474 objectid: stable for a stored file; MOVE and hard-link COPY keep the base, so they keep it too.
  return 'M' + createHash('sha256').update(base).digest('base64url').slice(0, 23);
}

export class MaildirMessage implements MessageMeta {
  readonly uid: number;
  readonly modSeq: number;
  readonly flags: readonly string[];
  readonly size: number;
  /** The unique part of the file name (what dovecot-uidlist records). */
  readonly base: string;
  /** Info letters of the file name (flags), sorted. */
  readonly info: string;
  /** `cur/<name>` or `new/<name>` when the file is not `cur/<base>:2,<info>`; undefined otherwise (nearly always). */
  file: string | undefined;
  /** INTERNALDATE (the file's mtime) in ms; NaN until known. */
  date: number;
  /** The structure held in memory (delivered or computed before the log held it), if any. */
  structure: MessageStructure | undefined;
  /** Where the structure's JSON is in the index log: -1 when it is not there. */
  structureOffset: number;
  structureLength: number;
  #emailId: string | undefined;

  constructor(uid: number, modSeq: number, flags: readonly string[], size: number, base: string, info: string, date: number) {
    this.uid = uid;
    this.modSeq = modSeq;
    this.flags = flags;
    this.size = size;
    this.base = base;
    this.info = info;
    this.file = undefined;
    this.date = date;
    this.structure = undefined;
    this.structureOffset = -1;
    this.structureLength = 0;
  }

  get emailId(): string {
    return (this.#emailId ??= emailIdOf(this.base));
  }

  /** The same message with other flags (a new version); the later state (file, date, structure, EMAILID) comes along. */
  withFlags(modSeq: number, info: string, flags: readonly string[]): MaildirMessage {
    const next = new MaildirMessage(this.uid, modSeq, flags, this.size, this.base, info, this.date);
    next.file = this.file;
    next.structure = this.structure;
    next.structureOffset = this.structureOffset;
    next.structureLength = this.structureLength;
    next.#emailId = this.#emailId;
    return next;
  }

  /**
   * Take the later state (file, date, structure, EMAILID) from `previous`, the version this one
   * replaces: for a version made ahead of time, while `previous` could still change.
   */
  takeStateOf(previous: MaildirMessage): void {
    this.file = previous.file;
    this.date = previous.date;
    this.structure = previous.structure;
    this.structureOffset = previous.structureOffset;
    this.structureLength = previous.structureLength;
    this.#emailId = previous.#emailId;
  }

  /** `[offset, length]` of the structure in the index log, or undefined. */
  get structureAt(): readonly [number, number] | undefined {
    return this.structureOffset < 0 ? undefined : [this.structureOffset, this.structureLength];
  }

  set structureAt(at: readonly [number, number] | undefined) {
    this.structureOffset = at === undefined ? -1 : at[0];
    this.structureLength = at === undefined ? 0 : at[1];
  }

  toJSON(): MessageMeta {
    return { uid: this.uid, modSeq: this.modSeq, flags: this.flags, size: this.size, emailId: this.emailId };
  }
}
