import * as net from 'node:net';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Connection, Listener, ListenerOptions } from '../../src/node/listener.js';
import { createListener } from '../../src/node/listener.js';
import type { Logger } from '../../src/logger.js';

/** Everything a test opens, closed in afterEach whatever happened. */
export class Opened {
  readonly #sockets = new Set<net.Socket>();
  readonly #listeners = new Set<Listener>();
  readonly #unsubscribe: (() => void)[] = [];

  socket<T extends net.Socket>(socket: T): T {
    this.#sockets.add(socket);
    socket.on('error', () => {});
    return socket;
  }

  /** A listener on an ephemeral 127.0.0.1 port. */
  async listener(options: ListenerOptions): Promise<{ listener: Listener; port: number }> {
    const listener = createListener(options);
    this.#listeners.add(listener);
    const { port } = await listener.listen({ host: '127.0.0.1', port: 0 });
    return { listener, port };
  }

  /** Subscribe to a diagnostics channel until the end of the test. */
  channel(name: string): unknown[] {
    const messages: unknown[] = [];
    const handler = (message: unknown): void => {
      messages.push(message);
    };
    subscribe(name, handler);
    this.#unsubscribe.push(() => unsubscribe(name, handler));
    return messages;
  }

  async close(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.clear();
    // A virtual clock never fires close's timeout: the sockets are gone already, so this only waits for the servers.
    await Promise.all([...this.#listeners].map((l) => l.close({ timeoutMs: 0 })));
    this.#listeners.clear();
  }
}

export interface Client {
  readonly socket: net.Socket;
  /** Everything received so far. */
  text(): string;
  /** Resolves when the received text contains `needle`. */
  waitFor(needle: string): Promise<string>;
  /** Resolves with everything received once the socket has closed. */
  readonly closed: Promise<string>;
  readonly isClosed: () => boolean;
}

/** Connect to 127.0.0.1:`port`, optionally from another loopback address (127.0.0.2 …) to be another client IP. */
export function connect(opened: Opened, port: number, localAddress?: string): Promise<Client> {
  return new Promise((resolve, reject) => {
    const socket = opened.socket(net.connect(localAddress === undefined ? { port, host: '127.0.0.1' } : { port, host: '127.0.0.1', localAddress }));
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(watch(socket));
    });
  });
}

/** Collect what `socket` receives. */
export function watch(socket: net.Socket): Client {
  let received = '';
  let closed = false;
  const waiters = new Set<() => void>();
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
    for (const w of [...waiters]) w();
  });
  const closedPromise = new Promise<string>((resolve) => {
    socket.once('close', () => {
      closed = true;
      for (const w of [...waiters]) w();
      resolve(received);
    });
  });
  return {
    socket,
    text: () => received,
    closed: closedPromise,
    isClosed: () => closed,
    waitFor(needle) {
      return new Promise<string>((resolve, reject) => {
        const check = (): void => {
          if (received.includes(needle)) {
            waiters.delete(check);
            resolve(received);
          } else if (closed) {
            waiters.delete(check);
            reject(new Error(`closed before ${JSON.stringify(needle)}; got ${JSON.stringify(received)}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

/** Poll `condition` on real time (the listener may run on a virtual clock; the sockets do not). */
export async function until(condition: () => boolean, what = 'condition', timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Let pending I/O callbacks run. */
export function settle(ms = 20): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Read CRLF lines from a connection's socket, as a session would. */
export function lines(connection: Connection, onLine: (line: string) => void): void {
  let buffer = '';
  connection.socket.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('latin1');
    for (let i = buffer.indexOf('\r\n'); i !== -1; i = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 2);
      onLine(line);
    }
  });
}

export interface LogRecord {
  readonly level: string;
  readonly obj: unknown;
  readonly msg: string | undefined;
}

/** A Logger that remembers every record. */
export function recordingLogger(records: LogRecord[] = [], bindings: Record<string, unknown> = {}): Logger & { records: LogRecord[] } {
  const log =
    (level: string) =>
    (objOrMsg: object | string, msg?: string): void => {
      if (typeof objOrMsg === 'string') records.push({ level, obj: bindings, msg: objOrMsg });
      else records.push({ level, obj: { ...bindings, ...objOrMsg }, msg });
    };
  return {
    records,
    trace: log('trace'),
    debug: log('debug'),
    info: log('info'),
    warn: log('warn'),
    error: log('error'),
    fatal: log('fatal'),
    child: (more) => recordingLogger(records, { ...bindings, ...more }),
  };
}
