/**
 * A socket read as a queue of framed units (an IMAP response, a POP3 line),
 * pulled one at a time by the raw test clients.
 */
import * as net from 'node:net';

export interface ConnectOptions {
  /** Default `127.0.0.1`. */
  readonly host?: string;
  readonly port: number;
  /** How long to wait for each response. Default 10000 ms. */
  readonly timeoutMs?: number;
}

/** Feeds received bytes to a framer and hands out complete units. */
export class FramedSocket<T> {
  readonly #socket: net.Socket;
  readonly #units: T[] = [];
  readonly #timeoutMs: number;
  #waiter: { resolve: (unit: T) => void; reject: (error: Error) => void } | undefined;
  #failure: Error | undefined;

  private constructor(socket: net.Socket, feed: (chunk: Buffer, emit: (unit: T) => void) => void, timeoutMs: number) {
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    const emit = (unit: T): void => {
      const waiter = this.#waiter;
      if (waiter !== undefined) {
        this.#waiter = undefined;
        waiter.resolve(unit);
      } else {
        this.#units.push(unit);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      if (this.#failure !== undefined) return;
      try {
        feed(chunk, emit);
      } catch (error) {
        this.#fail(error instanceof Error ? error : new Error(String(error)));
        socket.destroy();
      }
    });
    socket.on('error', (error) => this.#fail(error));
    socket.on('close', () => this.#fail(new Error('connection closed by the server')));
  }

  static connect<T>(options: ConnectOptions, feed: (chunk: Buffer, emit: (unit: T) => void) => void): Promise<FramedSocket<T>> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host: options.host ?? '127.0.0.1', port: options.port });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        resolve(new FramedSocket(socket, feed, options.timeoutMs ?? 10_000));
      });
    });
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
  }

  /** The next unit; rejects on timeout (and closes), or when the connection failed or closed with nothing queued. */
  next(): Promise<T> {
    const queued = this.#units.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#waiter !== undefined) return Promise.reject(new Error('FramedSocket.next() called twice at once'));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        this.#socket.destroy();
        reject(new Error(`no response within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
      this.#waiter = {
        resolve: (unit) => {
          clearTimeout(timer);
          resolve(unit);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
    });
  }

  write(data: string | Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** Whether the server closed the connection (or it failed). */
  get closed(): boolean {
    return this.#failure !== undefined;
  }

  close(): void {
    this.#socket.destroy();
  }

  /** Resolves once the socket is closed (after `close()` or the server hung up). */
  closedPromise(): Promise<void> {
    if (this.#socket.closed) return Promise.resolve();
    return new Promise((resolve) => this.#socket.once('close', () => resolve()));
  }
}

/**
 * What the raw line clients (POP3, SMTP) share: the greeting read at connect,
 * exchanges run one after another, and closing.
 */
export abstract class RawLineClient<Unit, Greeting> {
  readonly greeting: Greeting;
  protected readonly conn: FramedSocket<Unit>;
  #queue: Promise<unknown> = Promise.resolve();

  protected constructor(conn: FramedSocket<Unit>, greeting: Greeting) {
    this.conn = conn;
    this.greeting = greeting;
  }

  /** Run `exchange` after the ones before it (each sees only its own replies). */
  protected serial<R>(exchange: () => Promise<R>): Promise<R> {
    const run = this.#queue.then(exchange);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Close the connection (nothing sent). */
  close(): void {
    this.conn.close();
  }
}
