// SASL for @pigeonpost/wire: the server and client sides of each mechanism, strict base64, credential storage.
export { createSaslServer } from './server.js';
export type { SaslServer, SaslServerOptions, SaslServerSession } from './server.js';
export { createSaslClient } from './client.js';
export type { SaslClientSession, SaslClientCredentials, SaslClientOptions, OAuthErrorDetails } from './client.js';
export { saslMechanismNames } from './types.js';
export type {
  SaslMechanismName,
  ScramHash,
  ChannelBinding,
  ScramCredentials,
  SaslIdentity,
  SaslServerStep,
  SaslConnectionInfo,
  ExternalIdentity,
  OAuthVerification,
  SaslBackend,
} from './types.js';
export { encodeBase64, decodeBase64Strict, decodeSaslResponse, encodeSaslMessage } from './base64.js';
export type { SaslResponseLine, DecodeSaslResponseOptions } from './base64.js';
export { saslprep } from './saslprep.js';
export type { SaslprepResult } from './saslprep.js';
export { hashPassword, verifyPassword, deriveScramCredentials, formatScramCredentials, parseScramCredentials } from './password.js';
export type { HashPasswordOptions, VerifyPasswordOptions, DeriveScramCredentialsOptions } from './password.js';
export { saslReplies } from './errors.js';
export type { SaslErrorCode } from './errors.js';
export type { RandomBytes } from './bytes.js';
