/**
 * The Node adapter of the POP3 client: TCP or implicit TLS (995), STLS
 * through wire's `upgradeClientSocket` (plaintext after the +OK is dropped,
 * never read), timers from `systemClock`. The protocol itself is
 * `Pop3ClientConnection` (src/client), which never touches a socket.
 */
import * as net from 'node:net';
import type * as tls from 'node:tls';
import { silentLogger } from '@pigeonpost/wire';
import type { ChannelBinding, Clock, Logger } from '@pigeonpost/wire';
import { connectTls, createClientTlsOptions, systemClock, upgradeClientSocket } from '@pigeonpost/wire/node';
import type { ClientTlsConfig } from '@pigeonpost/wire/node';
import { Pop3ClientError } from '../errors.js';
import { defaultPop3ClientLimits } from '../limits.js';
import { Pop3ClientConnection } from '../client/connection.js';
import type { ClientTransport, Pop3ClientConnectionOptions, Pop3SecureMode } from '../client/connection.js';

export interface Pop3ClientConnectOptions extends Omit<Pop3ClientConnectionOptions, 'clock' | 'host' | 'port' | 'secure'> {
  readonly host: string;
  /** Default 995 for `secure: 'implicit'`, else 110. */
  readonly port?: number;
  /**
   * Default `'starttls'`: STLS is required (no silent downgrade) and the
   * certificate is verified. `'implicit'` is TLS from the first byte (port
   * 995, RFC 8314); `'none'` never uses TLS.
   */
  readonly secure?: Pop3SecureMode;
  /** TLS settings; `servername` defaults to `host`. Verification is on unless `rejectUnauthorized: false`. */
  readonly tls?: Partial<ClientTlsConfig>;
  readonly localAddress?: string;
  /** Default `systemClock`. */
  readonly clock?: Clock;
}

/** A socket as a `ClientTransport`: pull-based reads (paused mode), writes with back-pressure. */
class SocketTransport implements ClientTransport {
  #socket: net.Socket;
  #secure: boolean;
  #error: Error | undefined;
  #ended = false;
  #wake: (() => void) | undefined;
  readonly #onReadable = (): void => this.#notify();
  readonly #onEnd = (): void => {
    this.#ended = true;
    this.#notify();
  };
  readonly #onError = (err: Error): void => {
    this.#error ??= err;
    this.#notify();
  };
  readonly #onClose = (): void => {
    this.#ended = true;
    this.#notify();
  };

  constructor(
    socket: net.Socket,
    secure: boolean,
    readonly startTlsConfig: tls.ConnectionOptions,
    readonly logger: Logger,
    readonly clock: Clock,
    readonly signal: AbortSignal | undefined,
    readonly handshakeTimeoutMs: number,
  ) {
    this.#socket = socket;
    this.#secure = secure;
    this.#attach(socket);
  }

  get secure(): boolean {
    return this.#secure;
  }

  #attach(socket: net.Socket): void {
    socket.on('readable', this.#onReadable);
    socket.on('end', this.#onEnd);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
  }

  #detach(socket: net.Socket): void {
    socket.off('readable', this.#onReadable);
    socket.off('end', this.#onEnd);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
    // The plain socket stays under the TLS one; its errors surface there.
    socket.on('error', () => undefined);
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const chunk = this.#socket.read() as Buffer | null;
      if (chunk !== null) return chunk;
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended || this.#socket.destroyed) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  write(chunk: Uint8Array): Promise<void> {
    const socket = this.#socket;
    if (this.#error !== undefined) return Promise.reject(this.#error);
    if (socket.destroyed || socket.writableEnded) return Promise.reject(new Error('socket closed'));
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

  async startTls(discardedBytes: number): Promise<{ discardedBytes: number; channelBinding?: ChannelBinding }> {
    const plain = this.#socket;
    this.#detach(plain);
    // RFC 3207 §4.2: upgradeClientSocket drains and drops whatever plaintext the socket still holds.
    const { socket, discardedBytes: dropped } = await upgradeClientSocket(plain, this.startTlsConfig, {
      bufferedPlaintext: discardedBytes,
      logger: this.logger,
      clock: this.clock,
      timeoutMs: this.handshakeTimeoutMs,
      ...(this.signal === undefined ? {} : { signal: this.signal }),
    });
    this.#socket = socket;
    this.#secure = true;
    this.#attach(socket);
    const binding = this.channelBinding();
    return binding === undefined ? { discardedBytes: dropped } : { discardedBytes: dropped, channelBinding: binding };
  }

  channelBinding(): ChannelBinding | undefined {
    const socket = this.#socket as Partial<tls.TLSSocket>;
    // RFC 9266: tls-exporter is defined for TLS 1.3 only.
    if (typeof socket.getProtocol !== 'function' || socket.getProtocol() !== 'TLSv1.3' || typeof socket.exportKeyingMaterial !== 'function') return undefined;
    return { type: 'tls-exporter', data: new Uint8Array(socket.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0))) };
  }

  end(): Promise<void> {
    const socket = this.#socket;
    if (socket.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(() => {
        socket.destroy();
        resolve();
      }, 5_000);
      socket.once('close', () => {
        this.clock.clearTimeout(timer);
        resolve();
      });
      socket.end();
    });
  }

  destroy(error?: Error): void {
    if (error !== undefined) this.#error ??= error;
    this.#socket.destroy();
    this.#notify();
  }
}

function connectPlain(host: string, port: number, localAddress: string | undefined, timeoutMs: number, clock: Clock, signal: AbortSignal | undefined): Promise<net.Socket> {
  return new Promise<net.Socket>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(new Pop3ClientError('ERR_POP3_CLIENT_ABORTED', 'connect aborted', { side: 'none', cause: signal.reason }));
      return;
    }
    const socket = net.connect({ host, port, ...(localAddress === undefined ? {} : { localAddress }) });
    const fail = (error: Pop3ClientError): void => {
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onError = (err: Error): void => fail(new Pop3ClientError('ERR_POP3_CLIENT_CONNECTION', `cannot connect to ${host}:${port}: ${err.message}`, { side: 'none', cause: err }));
    const onAbort = (): void => fail(new Pop3ClientError('ERR_POP3_CLIENT_ABORTED', 'connect aborted', { side: 'none', cause: signal?.reason }));
    const timer = timeoutMs > 0 ? clock.setTimeout(() => fail(new Pop3ClientError('ERR_POP3_CLIENT_TIMEOUT', `no connection to ${host}:${port} within ${timeoutMs} ms`, { side: 'none' })), timeoutMs) : undefined;
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

/**
 * A POP3 client on a real connection. `Pop3Client.connect` opens the session
 * (greeting, CAPA, STLS, login); `await using` sends QUIT and closes.
 */
export class Pop3Client extends Pop3ClientConnection {
  /** Connect and open the session. Rejects with `Pop3ClientError` or wire's `TlsError`. */
  static async connect(options: Pop3ClientConnectOptions): Promise<Pop3Client> {
    const secure = options.secure ?? 'starttls';
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger;
    const port = options.port ?? (secure === 'implicit' ? 995 : 110);
    const connectTimeoutMs = options.limits?.connectTimeoutMs ?? defaultPop3ClientLimits.connectTimeoutMs;
    const tlsConfig: ClientTlsConfig = { ...options.tls, servername: options.tls?.servername ?? options.host, ...(options.logger === undefined ? {} : { logger }) };
    let socket: net.Socket;
    if (secure === 'implicit') {
      socket = await connectTls({
        ...tlsConfig,
        host: options.host,
        port,
        timeoutMs: connectTimeoutMs,
        clock,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }),
      });
    } else {
      socket = await connectPlain(options.host, port, options.localAddress, connectTimeoutMs, clock, options.signal);
    }
    const startTlsConfig = secure === 'starttls' ? createClientTlsOptions(tlsConfig) : {};
    const transport = new SocketTransport(socket, secure === 'implicit', startTlsConfig, logger, clock, options.signal, connectTimeoutMs);
    const client = new Pop3Client(transport, { ...options, secure, clock, host: options.host, port });
    await client.start();
    return client;
  }
}
