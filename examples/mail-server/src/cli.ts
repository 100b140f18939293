import type { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import type { Logger, LogFn } from '@pigeonpost/wire';
import { hashPassword, Secret } from '@pigeonpost/wire';
import { ConfigError, loadConfig } from './config.js';
import type { RunningMailServer } from './server.js';
import { startMailServer } from './server.js';

/** A small logger in pino's shape writing JSON lines; pass a real pino logger in production. */
export function jsonLineLogger(write: (line: string) => void, bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: string): LogFn =>
    (objOrMsg: object | string, msg?: string) => {
      const fields = typeof objOrMsg === 'string' ? {} : objOrMsg;
      const text = typeof objOrMsg === 'string' ? objOrMsg : (msg ?? '');
      const err = 'err' in fields && fields.err instanceof Error ? { err: { code: (fields.err as { code?: unknown }).code, message: fields.err.message } } : {};
      write(`${JSON.stringify({ time: new Date().toISOString(), level, ...bindings, ...fields, ...err, msg: text })}\n`);
    };
  return {
    trace: () => {},
    debug: () => {},
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
    child: (more) => jsonLineLogger(write, { ...bindings, ...more }),
  };
}

/** What the command line runs with: the process in `main.ts`, fakes in tests. */
export interface CliIo {
  readonly env: NodeJS.ProcessEnv;
  readonly stdin: NodeJS.ReadableStream & { readonly isTTY?: boolean };
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Emits `SIGINT` / `SIGTERM`. */
  readonly signals: EventEmitter;
  readonly exit: (code: number) => void;
}

/** `pigeonpost-server hash-password`: read a password from stdin, print its hash for `users[].passwordHash`. */
async function hashPasswordCommand(io: CliIo): Promise<number> {
  const lines = createInterface({ input: io.stdin, terminal: false });
  if (io.stdin.isTTY === true) io.stderr('password: ');
  for await (const line of lines) {
    io.stdout(`${await hashPassword(new Secret(line))}\n`);
    lines.close();
    return 0;
  }
  io.stderr('pigeonpost: hash-password: no password on stdin\n');
  return 2;
}

/**
 * Run the server until SIGINT/SIGTERM, then close gracefully (listeners,
 * relay, store) and `exit(0)`; a second signal exits at once with 1. Resolves
 * with the running server once it is ready.
 */
export async function serve(io: CliIo): Promise<RunningMailServer> {
  const logger = jsonLineLogger(io.stdout, { app: 'pigeonpost' });
  const { config, file } = loadConfig(io.env);
  logger.info({ file: file ?? '(none: embedded defaults)', dataDir: config.dataDir, domains: config.domains }, 'configuration');

  // Signals are handled from the start: one during start-up closes what was started.
  let stopping = false;
  const starting = startMailServer(config, logger);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    io.signals.on(signal, () => {
      if (stopping) return io.exit(1);
      stopping = true;
      logger.info({ signal }, 'closing gracefully (listeners, relay queue, mail store); a second signal exits at once');
      starting
        .then((server) => server.close())
        .then(
          () => {
            logger.info('closed');
            io.exit(0);
          },
          (error: unknown) => {
            logger.error({ err: error }, 'close failed');
            io.exit(1);
          },
        );
    });
  }
  const server = await starting;
  for (const u of server.devUsers ?? []) {
    logger.info({ user: u.address, password: u.password }, 'development user (for development only: set "users" in the config file for real use)');
  }
  const ports = Object.fromEntries(server.services.map((s) => [s.config.name, s.addresses[0]?.port]));
  logger.info({ ports, ca: server.caCertPath }, 'ready — trust this CA to reach the TLS ports; Ctrl-C stops');
  return server;
}

/** The command line: `pigeonpost-server [serve]` or `pigeonpost-server hash-password`. Resolves with an exit code when it has one. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number | undefined> {
  const command = argv[0];
  try {
    if (command === 'hash-password') return await hashPasswordCommand(io);
    if (command === undefined || command === 'serve') {
      await serve(io);
      return undefined; // runs until a signal
    }
    io.stderr('usage: pigeonpost-server [serve] | hash-password   (a password on stdin)\n');
    return 2;
  } catch (error) {
    if (error instanceof ConfigError) {
      io.stderr(`pigeonpost: ${error.message}\n`);
      return 78; // EX_CONFIG
    }
    // Start-up failures with a code (port in use, spool owned by another server, …): one clear line.
    const code = (error as { code?: unknown } | undefined)?.code;
    if (error instanceof Error && typeof code === 'string') {
      io.stderr(`pigeonpost: cannot start: ${code}: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
