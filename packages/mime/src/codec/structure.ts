import type { MimeParam } from './params.js';

/** The version of the `MessageStructure` JSON shape. A cache holding another version must re-parse. */
export const STRUCTURE_VERSION = 1;

/**
 * What kind of part this is, which decides how IMAP shows it:
 * - `multipart`: has `children` (RFC 2046 §5.1); none when the boundary is missing.
 * - `message`: message/rfc822 or message/global, has the encapsulated `message` (RFC 2046 §5.2.1, RFC 6532 §3.5).
 * - `text`: text/* or no Content-Type (RFC 2045 §5.2 default text/plain), counts lines.
 * - `other`: any other leaf.
 */
export type PartKind = 'multipart' | 'message' | 'text' | 'other';

/**
 * The raw header fields IMAP ENVELOPE is built from (RFC 3501 §7.4.2), as byte
 * strings (one char per byte), folding kept as LF. Address fields collect
 * every occurrence (they are merged, as if comma-separated); the others keep
 * the last one, as Dovecot does.
 */
export interface EnvelopeFields {
  readonly date?: string;
  readonly subject?: string;
  readonly from?: readonly string[];
  readonly sender?: readonly string[];
  readonly replyTo?: readonly string[];
  readonly to?: readonly string[];
  readonly cc?: readonly string[];
  readonly bcc?: readonly string[];
  readonly inReplyTo?: string;
  readonly messageId?: string;
}

/**
 * One part of a message. Offsets are byte positions in the stored message
 * (`headerStart` ≤ `bodyStart` ≤ `bodyEnd`); sizes and line counts that IMAP
 * reports are *virtual*: as if every bare LF were CRLF (RFC 3501 §2.3.1
 * requires CRLF on the wire), which equals the physical size when the message
 * already uses CRLF. Text values are byte strings (one char per byte), as
 * they stand in the header; optional fields are left out when absent, to
 * keep the cached JSON small.
 */
export interface MimePart {
  readonly kind: PartKind;
  /** Offset of the first header byte. */
  readonly headerStart: number;
  /** Offset of the first body byte (just after the empty line ending the header, when there is one). */
  readonly bodyStart: number;
  /** Offset just past the last body byte: the CRLF before a boundary belongs to the boundary (RFC 2046 §5.1.1). */
  readonly bodyEnd: number;
  /** Header size with bare LFs counted as CRLF. */
  readonly headerVirtualSize: number;
  /** Lines (LFs) in the header, the empty line included. */
  readonly headerLines: number;
  /** Body size with bare LFs counted as CRLF: BODYSTRUCTURE's body-fld-octets. */
  readonly bodyVirtualSize: number;
  /** Lines (LFs) in the body: BODYSTRUCTURE's body-fld-lines for text and message parts. */
  readonly bodyLines: number;
  /** True when the header said Mime-Version or Content-Type (or the part is inside a multipart): only then do Content-* fields count. */
  readonly mime?: true;
  /** Set when a limit stopped the parser inside this part: the rest of it is opaque (see `MimeLimits`). */
  readonly overflow?: 'depth' | 'parts' | 'header';
  /** A multipart or message part that a limit turned into an opaque leaf (IMAP shows application/octet-stream, as Dovecot does). */
  readonly truncated?: true;
  /** Content-Type type and subtype as written (case kept); absent without a Content-Type. Empty strings when it did not parse. */
  readonly type?: string;
  readonly subtype?: string;
  /** Content-Type parameters, RFC 2231 continuations merged but not decoded (see `decodeParams`). */
  readonly params?: readonly MimeParam[];
  readonly id?: string;
  readonly description?: string;
  /** Content-Transfer-Encoding token as written. */
  readonly encoding?: string;
  readonly md5?: string;
  readonly disposition?: string;
  readonly dispositionParams?: readonly MimeParam[];
  readonly language?: readonly string[];
  readonly location?: string;
  /** Header fields for ENVELOPE: on the root part and on the root of each encapsulated message. */
  readonly envelope?: EnvelopeFields;
  /** The parts of a multipart, in order. */
  readonly children?: readonly MimePart[];
  /** The encapsulated message of a message/rfc822 or message/global part. */
  readonly message?: MimePart;
}

/** The structure of one message: compact, JSON-serialisable, versioned, for a store to cache. */
export interface MessageStructure {
  readonly version: typeof STRUCTURE_VERSION;
  /** Stored size in bytes. */
  readonly size: number;
  /** Size with bare LFs counted as CRLF: IMAP RFC822.SIZE. */
  readonly virtualSize: number;
  readonly root: MimePart;
}
