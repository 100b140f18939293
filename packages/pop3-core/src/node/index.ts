// @pigeonpost/pop3-core/node — the Node adapters (sockets, TLS, timers).
export { createPop3Server } from './server.js';
export type { Pop3Server, Pop3ServerOptions } from './server.js';
export { Pop3Client } from './client.js';
export type { Pop3ClientConnectOptions } from './client.js';
