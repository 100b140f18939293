#!/usr/bin/env node
import type { Logger, LogFn } from '@pigeonpost/wire';
import { configFromEnv } from './config.js';
import { startMailServer } from './server.js';

/** A small console logger in pino's shape; pass a real pino logger in production. */
function consoleLogger(bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string): LogFn =>
    (objOrMsg: object | string, msg?: string) => {
      const fields = typeof objOrMsg === 'string' ? {} : objOrMsg;
      const text = typeof objOrMsg === 'string' ? objOrMsg : (msg ?? '');
      console.log(JSON.stringify({ time: new Date().toISOString(), level, ...bindings, ...fields, msg: text }));
    };
  return {
    trace: () => {},
    debug: () => {},
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (more) => consoleLogger({ ...bindings, ...more }),
  };
}

const logger = consoleLogger({ app: 'pigeonpost' });
const server = await startMailServer(configFromEnv(), logger);
logger.info({ ca: server.caCertPath }, 'ready — trust this CA to reach the TLS ports; Ctrl-C stops');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    logger.info({ signal }, 'closing gracefully');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'close failed');
        process.exit(1);
      },
    );
  });
}
