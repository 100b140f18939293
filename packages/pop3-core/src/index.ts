// @pigeonpost/pop3-core — the pure parts: codec, errors, limits, the server session, the client.
// (No sockets here; those are in @pigeonpost/pop3-core/node.)

// Errors and limits
export { Pop3Error, Pop3ClientError, pop3Reply } from './errors.js';
export type { Pop3ErrorCode, Pop3ErrorOptions, Pop3ResponseCode, Pop3ServerReply, Pop3ClientErrorOptions } from './errors.js';
export { defaultPop3Limits, resolvePop3Limits, defaultPop3ClientLimits, resolvePop3ClientLimits } from './limits.js';
export type { Pop3Limits, Pop3ServerLimits, Pop3ListenerLimits, Pop3ClientLimits } from './limits.js';

// Codec
export { parseCommand, splitCommand, isPop3Verb, pop3Verbs, encodeCommand } from './codec/command.js';
export type { Pop3Verb, Pop3Command, Pop3ClientCommand, CommandError, CommandErrorKind, CommandParseResult } from './codec/command.js';
export { formatStatus, formatMultiline, parseStatusLine, Pop3ResponseParser } from './codec/response.js';
export type { Pop3Status, Pop3StatusLine, Pop3ResponseEvent, Pop3ResponseParserOptions } from './codec/response.js';

// Server session (sans I/O) and its backend
export { createPop3ServerSession, Pop3ServerSession, pop3Channels } from './server/session.js';
export { commandTable } from './server/commands.js';
export type { CommandSpec } from './server/commands.js';
export { LoginDelayTracker } from './server/login-delay.js';
export { mailStoreBackend, storeMaildrop } from './server/mail-store.js';
export type { MailStoreBackendOptions, Pop3MailStore, StorePop3Maildrop } from './server/mail-store.js';
export type {
  Pop3Backend,
  Pop3ServerMaildrop,
  Pop3MessageInfo,
  Pop3ConnectionInfo,
  Pop3SessionInfo,
  Pop3State,
  Pop3AuthOptions,
  Pop3ServerSessionOptions,
  Pop3ServerTransport,
} from './server/types.js';

// Client (sans I/O)
export { Pop3ClientConnection } from './client/connection.js';
export type {
  ClientTransport,
  Pop3SecureMode,
  Pop3LoginMethod,
  Pop3ClientAuthOptions,
  Pop3ClientConnectionOptions,
  Pop3Capabilities,
  Pop3ListEntry,
  Pop3UidlEntry,
  Pop3MessageStream,
} from './client/connection.js';
