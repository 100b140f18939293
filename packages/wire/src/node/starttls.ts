/**
 * STARTTLS (SMTP RFC 3207, IMAP RFC 9051 §6.2.1, POP3 STLS RFC 2595 §4):
 * turn a plaintext connection into a TLS one, and throw away every byte of
 * plaintext that arrived before the handshake.
 *
 * Why throw it away: a man in the middle can append commands to the client's
 * STARTTLS in the same TCP segment ("STARTTLS\r\nRCPT TO:…"). A server that
 * keeps them buffered and runs them after the handshake executes the
 * attacker's commands inside the client's authenticated TLS session
 * (CVE-2011-0411, Postfix; RFC 3207 §4.2 and RFC 2595 §3.1 say the buffer must
 * be discarded). The mirror attack hits clients: the attacker appends fake
 * responses after the server's "ready to start TLS", and a client that keeps
 * them reads them as answers from inside the TLS session.
 *
 * Where plaintext can hide in Node, and how each place is emptied:
 *  1. the protocol's own framer buffer — only the caller can empty it; it
 *     passes what it dropped as `bufferedPlaintext`, to be counted;
 *  2. the net.Socket's readable buffer (bytes read from the kernel but not yet
 *     emitted) — drained here with `socket.read()` and dropped. Left there,
 *     Node would feed them to OpenSSL as handshake bytes (TLSSocket's
 *     `initRead`), and a 'data' listener would get them as plaintext;
 *  3. the kernel — bytes not yet read when the socket is wrapped go to OpenSSL,
 *     which is right: after the "ready" reply the next bytes must be the
 *     handshake, and injected plaintext there just fails the handshake.
 * The drain and the wrap happen synchronously, in one tick, so no I/O callback
 * can run between them.
 */
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { TlsError } from '../errors.js';
import type { Logger } from '../logger.js';
import { silentLogger } from '../logger.js';
import type { TlsHandshakeOptions } from './tls.js';
import { acceptTls, startClientHandshake } from './tls.js';

export interface StartTlsOptions extends TlsHandshakeOptions {
  /**
   * Plaintext the caller had read but not processed when it decided to
   * upgrade — what its framer held after the STARTTLS line (the framer's
   * `discard()` result), as bytes or as a byte count. Counted in
   * `discardedBytes`; never processed.
   */
  readonly bufferedPlaintext?: Uint8Array | readonly Uint8Array[] | number;
  /**
   * Fail the upgrade (destroy the socket, reject with
   * `ERR_STARTTLS_PLAINTEXT_INJECTION`) when any plaintext had to be
   * discarded. Default false: the bytes are dropped, logged and counted, and
   * the protocol layer decides. A client has every reason to set it: a
   * server never sends anything after its "ready" reply.
   */
  readonly failOnDiscard?: boolean;
  /** Discarded plaintext is reported here as a warning. Default silent. */
  readonly logger?: Logger;
}

export interface StartTlsResult {
  /** The TLS socket, handshake done (and, on the client, the certificate verified). Read and write only this from now on. */
  readonly socket: tls.TLSSocket;
  /** Plaintext bytes that arrived before the handshake and were dropped unprocessed (framer leftovers included). */
  readonly discardedBytes: number;
}

/**
 * Take the socket away from its plaintext readers and empty its readable
 * buffer. Returns the number of bytes dropped. Called by the upgrade functions;
 * exported for protocol layers that must stop reading before they know whether
 * the upgrade happens.
 *
 * Every 'data' and 'readable' listener is removed: `socket.read()` would hand
 * the drained bytes to a 'data' listener, and the plaintext reader has no
 * business on this socket once TLS is requested.
 */
export function discardBufferedPlaintext(socket: net.Socket): number {
  socket.pause();
  socket.removeAllListeners('data');
  socket.removeAllListeners('readable');
  let dropped = 0;
  const encoding = socket.readableEncoding ?? undefined;
  for (let chunk = socket.read() as Buffer | string | null; chunk !== null; chunk = socket.read() as Buffer | string | null) {
    dropped += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length;
  }
  return dropped;
}

function countBuffered(value: StartTlsOptions['bufferedPlaintext']): number {
  if (value === undefined) return 0;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`bufferedPlaintext must be a byte count >= 0, got ${value}`);
    return value;
  }
  if (value instanceof Uint8Array) return value.byteLength;
  return value.reduce((sum, chunk) => sum + chunk.byteLength, 0);
}

type Role = 'server' | 'client';

function upgrade(
  role: Role,
  socket: net.Socket,
  options: StartTlsOptions,
  handshake: () => Promise<tls.TLSSocket>,
): Promise<StartTlsResult> {
  // Checked before draining: the readable buffer of a TLS socket holds decrypted data, not stray plaintext.
  if ((socket as Partial<tls.TLSSocket>).encrypted === true) {
    socket.destroy();
    return Promise.reject(new TlsError('ERR_TLS_ALREADY_SECURE', 'STARTTLS on a socket that already speaks TLS', { side: 'local' }));
  }
  let discardedBytes: number;
  try {
    discardedBytes = countBuffered(options.bufferedPlaintext) + discardBufferedPlaintext(socket);
  } catch (err) {
    socket.destroy();
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  if (discardedBytes > 0) {
    (options.logger ?? silentLogger).warn(
      { role, discardedBytes },
      role === 'server'
        ? 'plaintext sent after STARTTLS was discarded (client pipelined past STARTTLS, or an injection attempt)'
        : 'plaintext received after the STARTTLS go-ahead was discarded (possible response injection)',
    );
    if (options.failOnDiscard === true) {
      socket.destroy();
      return Promise.reject(
        new TlsError('ERR_STARTTLS_PLAINTEXT_INJECTION', `${discardedBytes} bytes of plaintext arrived before the TLS handshake; connection dropped`, {
          side: 'remote',
        }),
      );
    }
  }
  // Synchronously, in the same tick as the drain: the wrap must happen before any new bytes reach JavaScript.
  return handshake().then((tlsSocket) => ({ socket: tlsSocket, discardedBytes }));
}

/**
 * Server side of STARTTLS. Call it synchronously right after writing the
 * "ready to start TLS" reply (SMTP `220`, IMAP `OK`, POP3 `+OK`), in the same
 * tick, and before that: stop feeding your framer and empty it, passing what
 * it held as `bufferedPlaintext`. All 'data'/'readable' listeners of `socket`
 * are removed; attach yours to the returned TLS socket. A command that
 * arrived in plaintext is never seen after the handshake.
 *
 * Rejects like `acceptTls` (ERR_TLS_HANDSHAKE, ERR_TLS_HANDSHAKE_TIMEOUT,
 * ERR_ABORTED, ERR_TLS_ALREADY_SECURE) or with ERR_STARTTLS_PLAINTEXT_INJECTION
 * under `failOnDiscard`; the socket is destroyed on failure.
 */
export function upgradeServerSocket(socket: net.Socket, tlsOptions: tls.TlsOptions, options: StartTlsOptions = {}): Promise<StartTlsResult> {
  return upgrade('server', socket, options, () => acceptTls(socket, tlsOptions, options));
}

/**
 * Client side of STARTTLS. Call it as soon as the server's "ready to start
 * TLS" reply is parsed, in the same tick, after stopping your response parser
 * and passing whatever it held beyond that reply as `bufferedPlaintext`.
 * Anything the server (or a man in the middle) sent after the reply is
 * dropped. `tlsOptions` come from `createClientTlsOptions`: the certificate
 * and the server name are verified before the promise resolves.
 *
 * Rejects with ERR_TLS_CERT_UNTRUSTED, ERR_TLS_CERT_NAME_MISMATCH,
 * ERR_TLS_HANDSHAKE, ERR_TLS_HANDSHAKE_TIMEOUT, ERR_ABORTED,
 * ERR_TLS_ALREADY_SECURE or (with `failOnDiscard`)
 * ERR_STARTTLS_PLAINTEXT_INJECTION; the socket is destroyed on failure.
 */
export function upgradeClientSocket(socket: net.Socket, tlsOptions: tls.ConnectionOptions, options: StartTlsOptions = {}): Promise<StartTlsResult> {
  return upgrade('client', socket, options, () => startClientHandshake(socket, tlsOptions, options));
}
