// Curated public surface of @pigeonpost/wire/node (filled in as parts land).
export { systemClock } from './clock.js';
export { createListener } from './listener.js';
export type {
  Listener,
  ListenerOptions,
  ListenOptions,
  CloseOptions,
  ListenerStats,
  Connection,
  ConnectionCloseReason,
  IdleHandler,
  RejectReason,
  RejectInfo,
  ProxyProtocolOptions,
} from './listener.js';
export {
  acceptTls,
  connectTls,
  createServerTlsOptions,
  createClientTlsOptions,
  createSniCallback,
  loadKeyCertFiles,
  DEFAULT_TLS_CIPHERS,
  DEFAULT_TLS_MIN_VERSION,
} from './tls.js';
export type { TlsHandshakeOptions, ServerTlsConfig, ClientTlsConfig, ConnectTlsOptions, KeyCertPair, KeyCertFiles, LoadedKeyCert, PemInput } from './tls.js';
export { upgradeServerSocket, upgradeClientSocket, discardBufferedPlaintext } from './starttls.js';
export type { StartTlsOptions, StartTlsResult } from './starttls.js';
export { createDevCertificates, ensureDevCertificates, devCertificatePaths, devCertificateDefaults } from './dev-certs.js';
export type {
  DevCertificateOptions,
  DevCertificates,
  DevCa,
  EnsureDevCertificatesOptions,
  DevCertificateFiles,
  DevCertificatePaths,
} from './dev-certs.js';
export { SocketTransport, connectClientSocket, openSocketTransport, socketTransportDefaults } from './client-transport.js';
export type {
  SocketTransportOptions,
  SocketTransportStartTlsResult,
  ConnectClientSocketOptions,
  OpenSocketTransportOptions,
  ClientSocketErrorReason,
  ClientSocketErrorFactory,
} from './client-transport.js';
export { bindSessionSocket, createSessionServer, sessionSocketDefaults } from './session-socket.js';
export type { SocketSession, SessionTransport, SessionSocketTransport, SessionSocketOptions, BoundSession, SessionServer, SessionServerOptions } from './session-socket.js';
