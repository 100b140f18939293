/**
 * The public types of the POP3 server session: the backend it reads mail
 * through (this package's own interface: it never imports a store), options,
 * what the session tells its transport.
 */
import type { Clock, Logger, SaslBackend, SaslMechanismName, SaslServer, Secret } from '@pigeonpost/wire';
import type { Pop3ServerLimits } from '../limits.js';
import type { LoginDelayTracker } from './login-delay.js';

/** One message of a maildrop snapshot. */
export interface Pop3MessageInfo {
  /**
   * RFC 1939 §7 unique-id: 1–70 characters in 0x21–0x7E, the same for this
   * message in every session and after a server restart, never reused.
   */
  readonly uidl: string;
  /** Exact size in octets as sent: lines end in CRLF, before dot-stuffing (RFC 1939 §5). */
  readonly size: number;
}

/**
 * A user's maildrop, opened with its exclusive lock held (RFC 1939 §8). The
 * session numbers `messages` from 1 and keeps deletion marks itself; the
 * backend only applies them, atomically, in `commit` (the UPDATE state).
 */
export interface Pop3ServerMaildrop {
  /** The snapshot taken when the maildrop was opened; it never changes during the session. */
  readonly messages: readonly Pop3MessageInfo[];
  /**
   * The message's bytes (bare LFs are sent as CRLF). With `lines`, only the
   * header, the blank line and that many body lines (TOP). Message `number` is
   * 1-based. A message removed meanwhile (expunged over IMAP) must reject —
   * before its first chunk — with an error; throw `pop3Reply(…)` to choose
   * the reply.
   */
  read(number: number, options?: { readonly lines?: number }): AsyncIterable<Uint8Array>;
  /**
   * Optional, for speed: message `number`'s whole bytes (as `read` would
   * give them) when the backend has them in memory now, else `undefined`
   * (then `read` is used, which also reports a vanished message). Must not
   * throw or wait. The session then answers pipelined RETRs of such
   * messages in one synchronous run, encoding straight into its output
   * buffer. The bytes are encoded before the session calls the maildrop
   * again, never modified nor kept: the backend may reuse their memory for
   * the next `readNow`.
   */
  readNow?(number: number): Uint8Array | undefined;
  /**
   * QUIT from TRANSACTION (RFC 1939 §6): remove `deleted` and mark `seen` as
   * `\Seen` (RETR'd), atomically, then release the lock. Numbers are 1-based;
   * messages already gone are skipped.
   */
  commit(changes: { readonly deleted: readonly number[]; readonly seen: readonly number[] }): Promise<unknown>;
  /** Release the lock without applying anything (the connection dropped). Idempotent. */
  release(): Promise<void>;
}

/**
 * Where the server reads mail and checks passwords. Throw `pop3Reply(code,
 * text)` to refuse with a response code (`IN-USE`, `LOGIN-DELAY`, `SYS/PERM`
 * …); anything else thrown is answered `-ERR [SYS/TEMP]`.
 */
export interface Pop3Backend {
  /** USER/PASS (and SASL PLAIN/LOGIN when `auth` is not given). Without it USER/PASS is not offered. */
  verifyPassword?(request: { readonly user: string; readonly password: Secret<string>; readonly session: Pop3SessionInfo }): Promise<boolean>;
  /**
   * APOP (RFC 1939 §7): the shared secret of `user` in clear, or `undefined`
   * for an unknown user. Without this method the greeting carries no
   * timestamp and APOP is refused.
   */
  getApopSecret?(request: { readonly user: string; readonly session: Pop3SessionInfo }): Promise<Secret<string> | undefined>;
  /** Open the authenticated user's maildrop with its lock. A maildrop already locked: throw `pop3Reply('IN-USE', …)`. */
  openMaildrop(user: string, session: Pop3SessionInfo): Promise<Pop3ServerMaildrop>;
}

/** The connection as the session sees it. */
export interface Pop3ConnectionInfo {
  readonly id?: string;
  readonly remoteAddress: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  /** The connection is already TLS (implicit TLS, port 995). */
  readonly secure?: boolean;
  /** STLS can be offered (the adapter has TLS options). */
  readonly startTlsAvailable?: boolean;
}

/** RFC 1939 §3 states. */
export type Pop3State = 'authorization' | 'transaction' | 'update';

/** What the backend and hooks are told about the session. Read-only snapshot. */
export interface Pop3SessionInfo extends Pop3ConnectionInfo {
  readonly id: string;
  readonly secure: boolean;
  readonly state: Pop3State;
  /** The authenticated user, once logged in. */
  readonly user: string | undefined;
  /** How the user logged in. */
  readonly authMethod: 'USER' | 'APOP' | SaslMechanismName | undefined;
  /** The client sent UTF8 (RFC 6856). */
  readonly utf8: boolean;
}

/** SASL set-up: mechanisms and backend (a `SaslServer` of wire), or a ready `SaslServer`. */
export type Pop3AuthOptions = { readonly mechanisms: readonly SaslMechanismName[]; readonly backend: SaslBackend } | { readonly server: SaslServer };

export interface Pop3ServerSessionOptions extends Partial<Pop3ServerLimits> {
  readonly backend: Pop3Backend;
  /** Our host name, in the greeting and the APOP timestamp. Default `'localhost'`. */
  readonly hostname?: string;
  /** The greeting text after `+OK`. Default `'POP3 server ready'`. */
  readonly banner?: string;
  /**
   * SASL (RFC 5034). Default: PLAIN and LOGIN over `backend.verifyPassword`,
   * when the backend has it.
   */
  readonly auth?: Pop3AuthOptions;
  /**
   * Allow USER/PASS and plaintext SASL mechanisms before TLS. Default false:
   * `-ERR [AUTH]` until STLS (RFC 2595 §2, "TLS first"). For loopback tests.
   */
  readonly allowInsecureAuth?: boolean;
  /** CAPA `IMPLEMENTATION` text (RFC 2449 §6.9). Default `'Pigeonpost'`; `false` leaves it out. */
  readonly implementation?: string | false;
  /** CAPA `EXPIRE` (RFC 2449 §6.7): days the server keeps messages, or `'NEVER'` (the default: this server never deletes on its own). */
  readonly expire?: number | 'NEVER';
  /**
   * RFC 2449 §6.8 LOGIN-DELAY: the least time between two logins of one
   * user, in seconds, advertised in CAPA and enforced with
   * `-ERR [LOGIN-DELAY]`. Default 0 (off). Needs `loginTracker` shared by all
   * sessions (the Node adapter makes one).
   */
  readonly loginDelaySeconds?: number;
  readonly loginTracker?: LoginDelayTracker;
  /** Languages for LANG (RFC 6856 §3), as `[tag, description]`. Default `[['en', 'English']]`. */
  readonly languages?: readonly (readonly [string, string])[];
  /**
   * The APOP timestamp of the greeting (RFC 1939 §7, `<…@host>`). Default: a
   * new random one per session, as the RFC requires. Set it only in tests
   * that replay RFC 1939's own example.
   */
  readonly apopTimestamp?: string;
  /** The session ended; errors thrown here are logged. */
  readonly onClose?: (session: Pop3SessionInfo) => Promise<void>;
  /** Time source for the failed-login delay and LOGIN-DELAY. Required. */
  readonly clock: Clock;
  readonly logger?: Logger;
}

/** What the session asks its transport to do. The Node adapter maps these to a socket; tests record them. */
export interface Pop3ServerTransport {
  /**
   * Send these bytes. Responses to a pipelined group of commands come in one
   * call (RFC 2449 §6.6). Returns false when the peer is behind: the session
   * then awaits `drain()` before writing more of a message.
   */
  write(bytes: Uint8Array): boolean;
  /** Resolves when written bytes have been taken by the peer (or the connection closed). */
  drain(): Promise<void>;
  /**
   * Optional: true when every byte given to `write` so far has been handed
   * on (to the kernel) and none is referenced any more, so the session may
   * build its next output in the same memory. Without it, memory once
   * written is never reused. The Node adapter has it.
   */
  written?(): boolean;
  /**
   * Start the TLS handshake now (the `+OK` went out in the previous write).
   * Drop any plaintext still buffered, and call `session.tlsEstablished()`
   * when the handshake is done, or `session.end()` if it failed.
   */
  startTls(): void;
  /** Close the connection once written bytes are flushed. */
  close(): void;
  /** Stop reading (the backend is working). */
  pause(): void;
  /** Read again. */
  resume(): void;
}
