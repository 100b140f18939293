// Curated public surface of @pigeonpost/mime.
export { MimeError } from './errors.js';
export type { MimeErrorCode } from './errors.js';
export { defaultMimeLimits, resolveMimeLimits } from './limits.js';
export type { MimeLimits } from './limits.js';
export { MimeParser, parseMessage, parseMessageStream } from './codec/parser.js';
export type { MimeParserOptions } from './codec/parser.js';
export { STRUCTURE_VERSION } from './codec/structure.js';
export type { MessageStructure, MimePart, PartKind, EnvelopeFields } from './codec/structure.js';
export type { MimeParam } from './codec/params.js';
export { parseAddressList } from './codec/address.js';
export type { MailAddress, ParseAddressOptions } from './codec/address.js';
export { decodeHeaderValue, decodeParams, partFilename } from './codec/header-decode.js';
export { imapEnvelope, imapBody, imapBodyStructure, imapRfc822Size } from './codec/imap-values.js';
export { imapString, imapStringNoLf, imapStringForHumans } from './codec/imap-quote.js';
export { parseSection, resolveSection, findPart, streamSection, sectionBytes, filterHeader, SectionOutput } from './codec/section.js';
export type { SectionSpec, Partial, ResolvedSection, ByteRangeReader, SectionOutputOptions } from './codec/section.js';
export { binarySection, decodeBase64, decodeQuotedPrintable } from './codec/transfer-decode.js';
export type { UnknownCte } from './codec/transfer-decode.js';
