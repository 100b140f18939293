// @pigeonpost/smtp-core/node — the Node adapters (sockets, TLS, timers).
export { createSmtpServer } from './server.js';
export type { SmtpServer, SmtpServerOptions } from './server.js';

// Client adapter exports (./client.js) go below (owned by the client engineer).
export { SmtpClient } from './client.js';
export type { SmtpClientConnectOptions } from './client.js';
