/**
 * The client side of a mail protocol on a real socket, shared by the SMTP and
 * POP3 clients (and any other request/response client): a TCP connection
 * with a timeout and an abort signal (`connectClientSocket`), and the socket
 * as a pull-based byte transport (`SocketTransport`) with back-pressure,
 * STARTTLS that drops buffered plaintext, and TLS channel binding.
 * `openSocketTransport` does both, with implicit TLS when asked.
 *
 * The protocol engines read with `await transport.read()` and never see a
 * socket, so they can be driven by a scripted transport in tests.
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import type { ChannelBinding } from '../sasl/index.js';
import { systemClock } from './clock.js';
import { upgradeClientSocket } from './starttls.js';
import { connectTls, createClientTlsOptions } from './tls.js';
import type { ClientTlsConfig } from './tls.js';

/** Why `connectClientSocket` failed: the signal aborted, the TCP connect failed, or it took longer than `timeoutMs`. */
export type ClientSocketErrorReason = 'aborted' | 'connection' | 'timeout';

/**
 * Builds the error a failed connect rejects with, so each protocol reports it
 * in its own error class and codes. `cause` is Node's error (`connection`) or
 * the signal's reason (`aborted`).
 */
export type ClientSocketErrorFactory = (reason: ClientSocketErrorReason, message: string, cause: unknown) => Error;

export interface ConnectClientSocketOptions {
  readonly host: string;
  readonly port: number;
  readonly localAddress?: string;
  /** Give up after this many ms. 0 waits as long as the operating system does. */
  readonly timeoutMs: number;
  /** Default `systemClock`. */
  readonly clock?: Clock;
  /** Aborting it destroys the socket and rejects (`'aborted'`). */
  readonly signal?: AbortSignal;
  /** The error to reject with. */
  readonly createError: ClientSocketErrorFactory;
}

/**
 * Open a TCP connection. Resolves with the connected socket (Nagle off);
 * rejects with `createError(reason, …)` when the signal aborts (also when it
 * already had), the connect fails, or `timeoutMs` passes — the socket is
 * destroyed then.
 */
export function connectClientSocket(options: ConnectClientSocketOptions): Promise<net.Socket> {
  const { host, port, localAddress, timeoutMs, signal, createError } = options;
  const clock = options.clock ?? systemClock;
  return new Promise<net.Socket>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(createError('aborted', 'connect aborted', signal.reason));
      return;
    }
    const socket = net.connect({ host, port, ...(localAddress === undefined ? {} : { localAddress }) });
    const fail = (error: Error): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onError = (err: Error): void => fail(createError('connection', `cannot connect to ${host}:${port}: ${err.message}`, err));
    const onAbort = (): void => fail(createError('aborted', 'connect aborted', signal?.reason));
    const timer = timeoutMs > 0 ? clock.setTimeout(() => fail(createError('timeout', `no connection to ${host}:${port} within ${timeoutMs} ms`, undefined)), timeoutMs) : undefined;
    const cleanup = (): void => {
      if (timer !== undefined) clock.clearTimeout(timer);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
    };
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => {
      cleanup();
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** What `SocketTransport.startTls` resolves with. */
export interface SocketTransportStartTlsResult {
  /** Plaintext dropped unprocessed: the caller's count plus what the socket still held. */
  readonly discardedBytes: number;
  /** RFC 9266 `tls-exporter`, on TLS 1.3. */
  readonly channelBinding?: ChannelBinding;
}

export interface SocketTransportOptions {
  /** The socket already speaks TLS (implicit TLS). Default false. */
  readonly secure?: boolean;
  /** Client TLS options for STARTTLS (from `createClientTlsOptions`). Default `{}`. */
  readonly startTlsOptions?: tls.ConnectionOptions;
  /** Discarded plaintext is reported here. Default silent. */
  readonly logger?: Logger;
  /** Default `systemClock`. */
  readonly clock?: Clock;
  /** Aborts a STARTTLS handshake in progress. */
  readonly signal?: AbortSignal;
  /** How long a STARTTLS handshake may take, in ms. Default 30000. */
  readonly handshakeTimeoutMs?: number;
  /** How long `end()` waits for the peer to close its side before destroying the socket, in ms. Default 5000. */
  readonly endTimeoutMs?: number;
}

/** `SocketTransport` defaults. */
export const socketTransportDefaults = { handshakeTimeoutMs: 30_000, endTimeoutMs: 5_000 } as const;

/**
 * A connected socket as a pull-based byte transport: `read()` takes what the
 * socket holds (paused mode: nothing is read from the kernel faster than the
 * protocol asks for it), `write()` resolves when more may be written.
 * Only one `read()` may be pending at a time.
 */
export class SocketTransport {
  #socket: net.Socket;
  #secure: boolean;
  #error: Error | undefined;
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #startTlsOptions: tls.ConnectionOptions;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #signal: AbortSignal | undefined;
  readonly #handshakeTimeoutMs: number;
  readonly #endTimeoutMs: number;
  readonly #onReadable = (): void => this.#notify();
  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#notify();
  };
  readonly #onError = (err: Error): void => {
    this.#error ??= err;
    this.#notify();
  };

  constructor(socket: net.Socket, options: SocketTransportOptions = {}) {
    this.#socket = socket;
    this.#secure = options.secure ?? false;
    this.#startTlsOptions = options.startTlsOptions ?? {};
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#signal = options.signal;
    this.#handshakeTimeoutMs = options.handshakeTimeoutMs ?? socketTransportDefaults.handshakeTimeoutMs;
    this.#endTimeoutMs = options.endTimeoutMs ?? socketTransportDefaults.endTimeoutMs;
    this.#attach(socket);
  }

  /** True once the connection uses TLS (implicit, or after `startTls`). */
  get secure(): boolean {
    return this.#secure;
  }

  /** The socket in use now: the TLS one after `startTls`. */
  get socket(): net.Socket {
    return this.#socket;
  }

  #attach(socket: net.Socket): void {
    socket.on('readable', this.#onReadable);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onEnd);
  }

  #detach(socket: net.Socket): void {
    socket.off('readable', this.#onReadable);
    socket.off('end', this.#onEnd);
    socket.off('error', this.#onError);
    socket.off('close', this.#onEnd);
    // The plain socket stays under the TLS one; its errors surface there.
    socket.on('error', () => undefined);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** The next bytes, as they arrived; `null` at end of stream. Rejects with the socket's error. */
  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const chunk = this.#socket.read() as Buffer | null;
      if (chunk !== null) return chunk;
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended || this.#socket.destroyed) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  /**
   * Send bytes. Resolves at once while the socket's buffer has room, else on
   * `'drain'`; rejects when the socket errs or closes first, or is already closed.
   *
   * Writes made in one turn of the event loop (pipelined commands: a POP3
   * client's RETRs, SMTP's MAIL/RCPT/DATA) leave in one `writev` at the end of
   * that turn: the socket is corked on the first and uncorked on the next
   * tick, which runs after the promise jobs that make the others.
   */
  write(chunk: Uint8Array): Promise<void> {
    const socket = this.#socket;
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (socket.destroyed || socket.writableEnded) return Promise.reject(new Error('socket closed'));
    if (socket.writableCorked === 0) {
      socket.cork();
      process.nextTick(uncork, socket);
    }
    return new Promise<void>((resolve, reject) => {
      const ok = socket.write(chunk, (err) => {
        if (err) reject(err);
      });
      if (ok) {
        resolve();
        return;
      }
      const cleanup = (): void => {
        socket.off('drain', onDrain);
        socket.off('close', onClose);
      };
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const onClose = (): void => {
        cleanup();
        reject(this.#error ?? new Error('socket closed'));
      };
      socket.on('drain', onDrain);
      socket.on('close', onClose);
    });
  }

  /**
   * Upgrade to TLS after the server's go-ahead. `discardedBytes` is what the
   * caller's parser dropped; whatever plaintext the socket still holds is
   * dropped too and never returned by `read()` (RFC 3207 §4.2, RFC 2595 §3.1).
   */
  async startTls(discardedBytes: number): Promise<SocketTransportStartTlsResult> {
    const plain = this.#socket;
    this.#detach(plain);
    const { socket, discardedBytes: dropped } = await upgradeClientSocket(plain, this.#startTlsOptions, {
      bufferedPlaintext: discardedBytes,
      logger: this.#logger,
      clock: this.#clock,
      timeoutMs: this.#handshakeTimeoutMs,
      ...(this.#signal === undefined ? {} : { signal: this.#signal }),
    });
    this.#socket = socket;
    this.#secure = true;
    this.#attach(socket);
    const binding = this.channelBinding();
    return binding === undefined ? { discardedBytes: dropped } : { discardedBytes: dropped, channelBinding: binding };
  }

  /** RFC 9266 `tls-exporter` channel binding (SCRAM -PLUS), on TLS 1.3 only; else `undefined`. */
  channelBinding(): ChannelBinding | undefined {
    const socket = this.#socket as Partial<tls.TLSSocket>;
    if (typeof socket.getProtocol !== 'function' || socket.getProtocol() !== 'TLSv1.3' || typeof socket.exportKeyingMaterial !== 'function') return undefined;
    return { type: 'tls-exporter', data: new Uint8Array(socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0))) };
  }

  /** Close gracefully: FIN after pending writes, then wait for the socket to close (at most `endTimeoutMs`, then destroy). */
  end(): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.#clock.setTimeout(() => {
        socket.destroy();
        resolve();
      }, this.#endTimeoutMs);
      socket.once('close', () => {
        this.#clock.clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }

  /** Close now. A pending or later `read()` rejects with `error` when one is given, else returns `null`. */
  destroy(error?: Error): void {
    if (error !== undefined) this.#error ??= error;
    this.#socket.destroy();
    this.#notify();
  }
}

function uncork(socket: net.Socket): void {
  socket.uncork();
}

export interface OpenSocketTransportOptions extends Omit<ConnectClientSocketOptions, 'clock'> {
  /** `'implicit'`: TLS from the first byte; `'starttls'`: plaintext, ready to upgrade; `'plain'`: plaintext only. */
  readonly tlsMode: 'implicit' | 'starttls' | 'plain';
  /** TLS settings for implicit TLS or STARTTLS; `servername` defaults to `host`. Verification is on unless `rejectUnauthorized: false`. */
  readonly tls?: Partial<ClientTlsConfig>;
  /** Default `systemClock`. */
  readonly clock?: Clock;
  /** Default silent. When given, it is also the TLS layer's logger (unless `tls.logger` is set). */
  readonly logger?: Logger;
  /** See `SocketTransportOptions.endTimeoutMs`. */
  readonly endTimeoutMs?: number;
}

/**
 * Connect and wrap: implicit TLS through `connectTls` (its `TlsError`s), else
 * TCP through `connectClientSocket`. `timeoutMs` bounds the connect and, with
 * STARTTLS, the later handshake.
 */
export async function openSocketTransport(options: OpenSocketTransportOptions): Promise<SocketTransport> {
  const clock = options.clock ?? systemClock;
  const tlsConfig: ClientTlsConfig = { ...options.tls, servername: options.tls?.servername ?? options.host, ...(options.logger === undefined ? {} : { logger: options.logger }) };
  const signal = options.signal === undefined ? {} : { signal: options.signal };
  const socket =
    options.tlsMode === 'implicit'
      ? await connectTls({
          ...tlsConfig,
          host: options.host,
          port: options.port,
          timeoutMs: options.timeoutMs,
          clock,
          ...signal,
          ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
        })
      : await connectClientSocket({ ...options, clock });
  return new SocketTransport(socket, {
    secure: options.tlsMode === 'implicit',
    startTlsOptions: options.tlsMode === 'starttls' ? createClientTlsOptions(tlsConfig) : {},
    logger: options.logger ?? silentLogger,
    clock,
    handshakeTimeoutMs: options.timeoutMs,
    ...signal,
    ...(options.endTimeoutMs === undefined ? {} : { endTimeoutMs: options.endTimeoutMs }),
  });
}
