// @pigeonpost/smtp-core — the pure parts: codec, errors, limits, the server session.
// (No sockets here; those are in @pigeonpost/smtp-core/node.)

// Errors and limits
export { SmtpError, smtpReply, serverError } from './errors.js';
export type { SmtpErrorCode, SmtpErrorOptions } from './errors.js';
export { defaultSmtpLimits, resolveSmtpLimits } from './limits.js';
export type { SmtpLimits, SmtpServerLimits, SmtpListenerLimits } from './limits.js';

// Codec: addresses, parameters, commands, replies
export { parseMailbox, parsePath, checkDomain, isIPv4Literal, isIPv6Literal, MAX_LOCAL_PART_OCTETS, MAX_DOMAIN_OCTETS, MAX_PATH_OCTETS } from './codec/address.js';
export type { Mailbox, AddressParseOptions, AddressParseResult } from './codec/address.js';
export { splitParams, parseMailParams, parseRcptParams } from './codec/params.js';
export type { MailParams, RcptParams, ParamSupport, ParamError, BodyType, DsnNotify } from './codec/params.js';
export { parseCommand, splitCommand, isSmtpVerb, smtpVerbs } from './codec/command.js';
export type { SmtpVerb, SmtpCommand, CommandError, CommandErrorKind, CommandParseContext, CommandParseResult } from './codec/command.js';
export { formatReply } from './codec/reply.js';
export type { SmtpReply } from './codec/reply.js';
export { decodeXtext, encodeXtext } from './codec/xtext.js';

// Server session (sans I/O)
export { createSmtpServerSession, SmtpServerSession } from './server/session.js';
export { commandTable } from './server/commands.js';
export type { CommandSpec, TransactionState } from './server/commands.js';
export type {
  SmtpAuthOptions,
  SmtpConnectionInfo,
  SmtpDataResult,
  SmtpEnvelope,
  SmtpExtensions,
  SmtpHookReply,
  SmtpRecipient,
  SmtpServerHooks,
  SmtpServerSessionOptions,
  SmtpServerTransport,
  SmtpSessionInfo,
} from './server/types.js';

// Client: exports of src/client/** go below (owned by the client engineer).
