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
  SmtpVerifyResult,
  SmtpRecipient,
  SmtpServerHooks,
  SmtpServerSessionOptions,
  SmtpServerTransport,
  SmtpSessionInfo,
} from './server/types.js';

// Client: exports of src/client/** go below (owned by the client engineer).
export { SmtpClientError } from './errors.js';
export type { SmtpClientErrorOptions, SmtpServerReply } from './errors.js';
export { defaultSmtpClientLimits, resolveSmtpClientLimits } from './limits.js';
export type { SmtpClientLimits } from './limits.js';
export { ReplyParser, parseReplies, splitEnhancedCode, SmtpCapabilities } from './codec/reply-parser.js';
export type { ReplyParserEvent, ReplyParserOptions } from './codec/reply-parser.js';
export { encodeCommand, encodeSaslLine, encodeOrcpt, checkMailbox } from './codec/command-encoder.js';
export type { ClientCommand, EsmtpParams, EncodeCommandOptions } from './codec/command-encoder.js';
export { SmtpClientSession } from './client/session.js';
export type { ClientReplyTo, ClientPhase, ClientSessionEvent, SmtpClientSessionOptions } from './client/session.js';
export { SmtpClientConnection } from './client/connection.js';
export type {
  ClientTransport,
  SmtpSecureMode,
  SmtpClientAuthOptions,
  SmtpClientConnectionOptions,
  SendEnvelope,
  DsnOptions,
  RecipientOptions,
  RecipientResult,
  SendResult,
} from './client/connection.js';
export type { MessageBody } from './client/body.js';
