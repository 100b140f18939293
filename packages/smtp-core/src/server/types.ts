/**
 * The public types of the server session: options, hooks, what hooks are told
 * (`SmtpSessionInfo`, `SmtpEnvelope`) and what they answer.
 */
import type { ChannelBinding, Clock, Logger, SaslBackend, SaslIdentity, SaslMechanismName, SaslServer } from '@pigeonpost/wire';
import type { Mailbox } from '../codec/address.js';
import type { MailParams, RcptParams } from '../codec/params.js';
import type { SmtpError } from '../errors.js';
import type { SmtpServerLimits } from '../limits.js';

/** ESMTP extensions; each is advertised only when enabled (and, for some, only when usable on this connection). */
export interface SmtpExtensions {
  /** RFC 2920. Default true. */
  readonly pipelining?: boolean;
  /** RFC 1870, with `maxMessageBytes`. Default true. */
  readonly size?: boolean;
  /** RFC 6152. Default true. */
  readonly eightBitMime?: boolean;
  /** RFC 6531. Default true. */
  readonly smtputf8?: boolean;
  /** RFC 2034. Default true. */
  readonly enhancedStatusCodes?: boolean;
  /** RFC 3461: RET, ENVID, NOTIFY, ORCPT are parsed and handed to `onData`. Default false (your delivery must send DSNs). */
  readonly dsn?: boolean;
  /** RFC 3030 CHUNKING (BDAT). Default true. */
  readonly chunking?: boolean;
  /** RFC 3030 BINARYMIME (needs CHUNKING). Default false. */
  readonly binaryMime?: boolean;
  /** RFC 8689 REQUIRETLS, advertised over TLS only. Default false. */
  readonly requireTls?: boolean;
  /** RFC 9422 LIMITS (RCPTMAX). Default false. */
  readonly limits?: boolean;
}

/** The connection as the session sees it (the proxied client with PROXY or XCLIENT). */
export interface SmtpConnectionInfo {
  readonly id?: string;
  readonly remoteAddress: string;
  readonly remotePort?: number;
  readonly localAddress?: string;
  readonly localPort?: number;
  /** The connection is already TLS (implicit TLS, port 465). */
  readonly secure?: boolean;
  /** STARTTLS can be offered (the adapter has TLS options). */
  readonly startTlsAvailable?: boolean;
  /** XCLIENT is allowed from this client (it is in the trusted networks). */
  readonly xclientAllowed?: boolean;
  /** The remote host name, when known (XCLIENT NAME=). */
  readonly remoteName?: string;
}

/** What hooks are told about the session. Read-only snapshots. */
export interface SmtpSessionInfo extends SmtpConnectionInfo {
  readonly id: string;
  readonly secure: boolean;
  /** The EHLO/HELO/LHLO argument, once sent. */
  readonly helo: string | undefined;
  /** How the client greeted: `'SMTP'` (HELO), `'ESMTP'` (EHLO), `'LMTP'` (LHLO). */
  readonly protocol: 'SMTP' | 'ESMTP' | 'LMTP' | undefined;
  /** The authenticated identity (AUTH or XCLIENT LOGIN=). */
  readonly user: SaslIdentity | undefined;
}

/** A recipient accepted in the transaction. */
export interface SmtpRecipient {
  readonly address: Mailbox;
  readonly params: RcptParams;
}

/** The transaction handed to `onData`. */
export interface SmtpEnvelope {
  /** `null` for the null reverse-path `<>` (bounces). */
  readonly mailFrom: Mailbox | null;
  readonly mailParams: MailParams;
  readonly rcptTo: readonly SmtpRecipient[];
  /** `'DATA'` or `'BDAT'`. */
  readonly transfer: 'DATA' | 'BDAT';
}

/** A positive reply a hook may choose (the code defaults to the command's). */
export interface SmtpHookReply {
  readonly code?: number;
  readonly enhanced?: string;
  readonly text?: string;
}

/** What `onData` may return. */
export interface SmtpDataResult {
  /** Text of the final 250, e.g. `'Queued as 4F2A'`. */
  readonly text?: string;
  /** LMTP: one entry per accepted recipient, in order; `undefined` means delivered, an `SmtpError` refuses that recipient. */
  readonly recipients?: ReadonlyArray<SmtpError | undefined>;
}

/**
 * Hooks. Each is async; return normally to accept, throw an `SmtpError`
 * (`smtpReply(550, '5.1.1', '…')`) to refuse with that reply. Anything else
 * thrown is a temporary failure (451 4.3.0).
 */
export interface SmtpServerHooks {
  /** Before the greeting. Throwing refuses the connection (the reply is sent, then 'close'). */
  readonly onConnect?: (session: SmtpSessionInfo) => Promise<void>;
  /** EHLO/HELO/LHLO. */
  readonly onEhlo?: (hostname: string, session: SmtpSessionInfo) => Promise<void>;
  /** After a SASL exchange succeeded; throw to refuse this identity anyway. */
  readonly onAuth?: (identity: SaslIdentity, session: SmtpSessionInfo) => Promise<void>;
  /** MAIL FROM. */
  readonly onMailFrom?: (from: Mailbox | null, params: MailParams, session: SmtpSessionInfo) => Promise<void | SmtpHookReply>;
  /**
   * RCPT TO. Without this hook **every recipient is refused** (550 5.7.1): a
   * server accepts mail for nobody until you say for whom (no open relay).
   */
  readonly onRcptTo?: (to: Mailbox, params: RcptParams, envelope: { readonly mailFrom: Mailbox | null; readonly mailParams: MailParams; readonly rcptTo: readonly SmtpRecipient[] }, session: SmtpSessionInfo) => Promise<void | SmtpHookReply>;
  /**
   * The message. Read `body` to its end and make the message durable before
   * resolving: the final 250 is sent only after this resolves. Without the
   * hook the body is read and dropped, and the message is refused (554 5.3.0).
   */
  readonly onData?: (envelope: SmtpEnvelope, body: AsyncIterable<Uint8Array>, session: SmtpSessionInfo) => Promise<void | SmtpDataResult>;
  /**
   * VRFY (RFC 5321 §3.5.1). Without it (the default) VRFY answers
   * `252 2.5.2` and verifies nothing, as most servers do: answering lets
   * anyone harvest addresses. One mailbox found: `250 2.1.5`; none:
   * `550 5.1.1`; several: `553 5.1.4` with each (ambiguous, §3.5.3).
   */
  readonly onVrfy?: (query: string, session: SmtpSessionInfo) => Promise<SmtpVerifyResult>;
  /** EXPN (RFC 5321 §3.5.2): the members of a mailing list, one `250` line each; none: `550 5.1.1`. Without it: `252 2.5.2`. */
  readonly onExpn?: (list: string, session: SmtpSessionInfo) => Promise<SmtpVerifyResult>;
  /** The session ended (QUIT, error, peer hung up, shutdown). Errors thrown here are logged. */
  readonly onClose?: (session: SmtpSessionInfo) => Promise<void>;
}

/**
 * What `onVrfy` / `onExpn` found: one entry per mailbox, as RFC 5321 §3.5
 * shows them — `Full Name <local@domain>` or `<local@domain>`. Throw an
 * `SmtpError` (`smtpReply`) instead for any other answer.
 */
export interface SmtpVerifyResult {
  readonly mailboxes: readonly string[];
}

/** SASL set-up: mechanisms and backend (a `SaslServer` of wire), or a ready `SaslServer`. */
export type SmtpAuthOptions =
  | { readonly mechanisms: readonly SaslMechanismName[]; readonly backend: SaslBackend }
  | { readonly server: SaslServer };

export interface SmtpServerSessionOptions extends SmtpServerHooks, Partial<SmtpServerLimits> {
  /** Our host name, in the greeting and EHLO reply. Default `'localhost'`. */
  readonly hostname?: string;
  /** Text after the host name in the greeting. Default `'ESMTP'` (`'LMTP'` in LMTP mode). */
  readonly banner?: string;
  /** LMTP (RFC 2033): LHLO, and one reply per recipient after the body. Default false. */
  readonly lmtp?: boolean;
  /** A submission server (RFC 6409): `requireAuth` defaults to true. */
  readonly submission?: boolean;
  /** MAIL needs a successful AUTH (530 5.7.0). Default: `submission`. */
  readonly requireAuth?: boolean;
  /** Allow AUTH before TLS. Default false: 538 5.7.11 (RFC 4954 §4), and AUTH is not advertised. */
  readonly allowInsecureAuth?: boolean;
  /** Enable AUTH (RFC 4954). */
  readonly auth?: SmtpAuthOptions;
  readonly extensions?: SmtpExtensions;
  /**
   * What to do with a bare CR or bare LF in a DATA body (RFC 5321 §2.3.8):
   * `'reject'` (default) answers 550 5.5.2 and drops the rest of the body;
   * `'normalize'` turns each into CRLF. Command lines with them are always refused.
   */
  readonly bareLineEndings?: 'reject' | 'normalize';
  /** Accept common address mistakes (see `AddressParseOptions.lenient`). Default false. */
  readonly lenientAddresses?: boolean;
  /** Wait this long before the greeting; a client that talks first is refused (554 5.5.0). Default 0. */
  readonly greetingDelayMs?: number;
  /** Time source for the DATA timeout, the AUTH failure delay and the greeting delay. Required. */
  readonly clock: Clock;
  readonly logger?: Logger;
}

/** What the session asks its transport to do. The Node adapter maps these to a socket; tests record them. */
export interface SmtpServerTransport {
  /** Send these bytes. Replies of one pipelined group come in one call (RFC 2920). */
  write(bytes: Uint8Array): void;
  /**
   * Start the TLS handshake now (the 220 went out in the previous `write`).
   * Drop any plaintext still buffered, and call `session.tlsEstablished()`
   * when the handshake is done, or `session.end()` if it failed.
   */
  startTls(): void;
  /** Close the connection once written bytes are flushed. */
  close(): void;
  /** Stop reading (a hook or the body consumer is behind). */
  pause(): void;
  /** Read again. */
  resume(): void;
  /**
   * Optional: a hook or the body consumer is being awaited — stop the idle
   * timer, but keep reading. With `hold`/`release` the session pauses the
   * transport only when bytes actually arrive while it waits (at most one
   * more chunk is buffered), so a hook that resolves at once costs no
   * pause/resume of the socket. Without them, `pause()` is called at once.
   */
  hold?(): void;
  /** Optional: the wait that `hold` announced is over (idle timer on again). */
  release?(): void;
  /**
   * TLS channel-binding data of the connection (RFC 9266 `tls-exporter` on
   * TLS 1.3, RFC 5929 `tls-server-end-point`), asked for only while it is
   * TLS. With some, SCRAM-SHA-*-PLUS is offered and checked (RFC 5802 §6).
   */
  channelBindings?(): readonly ChannelBinding[];
}
