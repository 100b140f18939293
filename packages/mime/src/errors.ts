import { PigeonpostError } from '@pigeonpost/wire';
import type { PigeonpostErrorOptions } from '@pigeonpost/wire';

/**
 * The codes a `MimeError` carries. Parsing a message never throws (a broken
 * message is still a message); these are for callers that ask for something
 * the message or the protocol does not allow.
 */
export type MimeErrorCode =
  /** An IMAP section specifier (`1.2.HEADER.FIELDS (...)`, `<0.10>`) is not valid syntax. IMAP: BAD. */
  | 'ERR_SECTION_SYNTAX'
  /** A cached `MessageStructure` has a version this code does not read. Re-parse the message. */
  | 'ERR_STRUCTURE_VERSION'
  /** `push()` or `end()` was called on a parser that has already ended. */
  | 'ERR_PARSER_ENDED';

/** Errors of @pigeonpost/mime. */
export class MimeError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/MimeError');
  declare readonly code: MimeErrorCode;

  constructor(code: MimeErrorCode, message: string, options: PigeonpostErrorOptions = {}) {
    super(code, message, options);
  }
}
