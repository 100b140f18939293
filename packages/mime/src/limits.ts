/**
 * Every limit of @pigeonpost/mime, in one place (STYLE habit 4). Each is a
 * named option with a safe default and the reason for the number. Options
 * left `undefined` take the default; an explicit 0 stays 0 (it is never
 * replaced by the default). Exceeding a limit never throws: the parser stops
 * looking for structure and treats the rest as opaque text, as Dovecot's
 * message-parser does, and records what happened in `MimePart.overflow`.
 */

export interface MimeLimits {
  /**
   * Largest header block of one part, in bytes. Default 1 MiB. Bytes after
   * the limit are treated as the part's body. Dovecot has no such limit (it
   * streams headers); Postfix's `header_size_limit` is 100 KiB and discards
   * the excess. Memory does not grow with this number: only the fields that
   * ENVELOPE and BODYSTRUCTURE need are kept, each capped by `maxFieldBytes`.
   */
  readonly maxHeaderBytes: number;
  /**
   * Most header fields in one part's header. Default 10000 (Postfix's
   * `header_count` is unlimited but `hopcount_limit` stops a loop at 50
   * Received lines; real messages have tens). Further lines are body.
   */
  readonly maxHeaderCount: number;
  /**
   * Longest single header field that is kept (the ones ENVELOPE and
   * BODYSTRUCTURE read), in bytes. Default 64 KiB; a longer field is cut at
   * the limit. RFC 5322 §2.1.1 limits a line to 998 bytes, but folding makes
   * fields longer: 64 KiB is Dovecot's `imap_max_line_length` for a whole
   * command line.
   */
  readonly maxFieldBytes: number;
  /**
   * Most bytes of kept header fields per part. Default 256 KiB: bounds the
   * size of the cached structure when a hostile message repeats `From:`
   * (Dovecot merges repeated address headers) thousands of times.
   */
  readonly maxKeptHeaderBytes: number;
  /**
   * Deepest nesting of multipart and message/rfc822 parts. Default 100 —
   * Dovecot's `MESSAGE_PARSER_DEFAULT_MAX_NESTED_MIME_PARTS`. A part that
   * would go deeper becomes an opaque leaf (BODYSTRUCTURE writes it as
   * application/octet-stream, as Dovecot does).
   */
  readonly maxDepth: number;
  /**
   * Most parts in one message, the root included. Default 10000 — Dovecot's
   * `MESSAGE_PARSER_DEFAULT_MAX_TOTAL_MIME_PARTS`. After it, boundary lines
   * are no longer recognised.
   */
  readonly maxParts: number;
  /**
   * Longest boundary parameter used, in bytes; longer ones are truncated.
   * Default 80: RFC 2046 §5.1.1 allows 70, and Dovecot's
   * `BOUNDARY_STRING_MAX_LEN` adds 10 "just in case". Truncating (not
   * refusing) keeps the same result as Dovecot.
   */
  readonly maxBoundaryLength: number;
}

export const defaultMimeLimits: Readonly<MimeLimits> = Object.freeze({
  maxHeaderBytes: 1024 * 1024,
  maxHeaderCount: 10_000,
  maxFieldBytes: 64 * 1024,
  maxKeptHeaderBytes: 256 * 1024,
  maxDepth: 100,
  maxParts: 10_000,
  maxBoundaryLength: 80,
});

const limitKeys = Object.keys(defaultMimeLimits) as (keyof MimeLimits)[];

/**
 * Fill in the defaults for the limits the caller left `undefined`. An explicit
 * 0 stays 0. Negative numbers and NaN are refused with a `RangeError`: a
 * nonsense limit is a configuration bug worth failing loudly for.
 */
export function resolveMimeLimits(given: Partial<MimeLimits> = {}): MimeLimits {
  const out = { ...defaultMimeLimits } as { -readonly [K in keyof MimeLimits]: number };
  for (const key of limitKeys) {
    const value = given[key];
    if (value === undefined) continue;
    if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
      throw new RangeError(`limit ${key} must be a number >= 0, got ${String(value)}`);
    }
    out[key] = value;
  }
  return out;
}
