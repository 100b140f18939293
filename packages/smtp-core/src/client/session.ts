/**
 * The SMTP client protocol state machine, sans I/O (after h11): commands
 * out as bytes, server bytes in, replies out paired with the command they
 * answer. It keeps the queue of replies still owed, which is what makes
 * PIPELINING (RFC 2920) safe: the Nth reply is the answer to the Nth command
 * sent, whatever the grouping of the bytes.
 *
 * It starts no timer and touches no socket: `SmtpClientConnection` drives
 * it over a `ClientTransport`, and tests drive it with bytes.
 */
import { DataEncoder } from '@pigeonpost/wire';
import { SmtpClientError } from '../errors.js';
import type { ClientCommand, EncodeCommandOptions } from '../codec/command-encoder.js';
import { encodeCommand, encodeSaslLine } from '../codec/command-encoder.js';
import type { ReplyParserOptions } from '../codec/reply-parser.js';
import type { SmtpReply } from '../codec/reply.js';
import { ReplyParser, SmtpCapabilities } from '../codec/reply-parser.js';

/** What a reply answers: a command name, the greeting, a SASL step, or the end of the message data. */
export type ClientReplyTo = ClientCommand['name'] | 'greeting' | 'sasl' | 'data-end';

/**
 * Where the session stands, as far as the commands sent so far go:
 * `greeting` (waiting for 220), `connected` (no EHLO yet), `ready`,
 * `mail` (MAIL sent), `body` (354 received, body going out), `closed` (QUIT sent).
 */
export type ClientPhase = 'greeting' | 'connected' | 'ready' | 'mail' | 'body' | 'closed';

export type ClientSessionEvent =
  | { readonly type: 'reply'; readonly to: ClientReplyTo; readonly reply: SmtpReply }
  | { readonly type: 'error'; readonly error: SmtpClientError };

export interface SmtpClientSessionOptions extends ReplyParserOptions {
  /** LMTP (RFC 2033): LHLO instead of EHLO, and one reply per accepted recipient after the data. */
  readonly lmtp?: boolean;
}

function stateError(message: string): SmtpClientError {
  return new SmtpClientError('ERR_SMTP_CLIENT_STATE', message, { side: 'local' });
}

export class SmtpClientSession {
  readonly lmtp: boolean;
  readonly #parser: ReplyParser;
  /** What each reply still owed answers, oldest first. */
  readonly #owed: ClientReplyTo[] = ['greeting'];
  #phase: ClientPhase = 'greeting';
  #capabilities: SmtpCapabilities | undefined;
  #acceptedRecipients = 0;
  #encoder: DataEncoder | undefined;
  #secure = false;

  constructor(options: SmtpClientSessionOptions = {}) {
    this.lmtp = options.lmtp === true;
    this.#parser = new ReplyParser(options);
  }

  get phase(): ClientPhase {
    return this.#phase;
  }
  /** The server's extensions, from the last EHLO/LHLO (or HELO) reply. */
  get capabilities(): SmtpCapabilities | undefined {
    return this.#capabilities;
  }
  /** Replies still owed by the server. */
  get owed(): readonly ClientReplyTo[] {
    return this.#owed;
  }
  /** Recipients accepted in the current transaction (each owes a reply after the data in LMTP). */
  get acceptedRecipients(): number {
    return this.#acceptedRecipients;
  }
  get secure(): boolean {
    return this.#secure;
  }

  /** Bytes received from the server. */
  receive(chunk: Uint8Array): void {
    this.#parser.push(chunk);
  }

  /** The next reply, paired with what it answers; `undefined` when more bytes are needed. */
  nextEvent(): ClientSessionEvent | undefined {
    const ev = this.#parser.next();
    if (ev === undefined) return undefined;
    if (ev.type === 'error') return ev;
    const to = this.#owed.shift();
    if (to === undefined) {
      // RFC 5321 §4.5.3.2: a server may send 421 at any time before closing; anything else unasked is a protocol error.
      if (ev.reply.code === 421) return { type: 'reply', to: 'NOOP', reply: ev.reply };
      return {
        type: 'error',
        error: new SmtpClientError('ERR_SMTP_CLIENT_MALFORMED_REPLY', `unexpected reply ${ev.reply.code} with no command pending`, {
          side: 'remote',
          serverReply: ev.reply,
        }),
      };
    }
    this.#update(to, ev.reply);
    return { type: 'reply', to, reply: ev.reply };
  }

  #update(to: ClientReplyTo, reply: SmtpReply): void {
    const ok = reply.code >= 200 && reply.code < 300;
    switch (to) {
      case 'greeting':
        this.#phase = 'connected';
        break;
      case 'EHLO':
      case 'LHLO':
        if (ok) this.#capabilities = SmtpCapabilities.fromEhloReply(reply);
        break;
      case 'HELO':
        if (ok) this.#capabilities = SmtpCapabilities.fromHeloReply(reply);
        break;
      case 'MAIL':
        if (!ok && this.#phase === 'mail') this.#phase = 'ready';
        break;
      case 'RCPT':
        if (ok) this.#acceptedRecipients++;
        break;
      case 'DATA':
        if (reply.code === 354 && this.#phase === 'mail') {
          this.#phase = 'body';
          this.#encoder = new DataEncoder();
        }
        break;
      case 'BDAT':
        // RFC 3030 §2: a failed BDAT leaves the transaction to be reset by the client.
        break;
      default:
        break;
    }
  }

  /** Encode a command and owe its reply. Throws `ERR_SMTP_CLIENT_STATE` for a command the phase does not allow. */
  send(command: ClientCommand, options: EncodeCommandOptions = {}): Buffer {
    const phase = this.#phase;
    if (phase === 'closed') throw stateError(`${command.name} after QUIT`);
    if (phase === 'body') throw stateError(`${command.name} while the message body is being sent`);
    if (phase === 'greeting' && command.name !== 'QUIT') throw stateError(`${command.name} before the greeting`);
    const bytes = encodeCommand(command, options);
    switch (command.name) {
      case 'EHLO':
      case 'HELO':
      case 'LHLO':
        if (this.lmtp !== (command.name === 'LHLO')) throw stateError(`${command.name} in ${this.lmtp ? 'LMTP' : 'SMTP'} mode`);
        this.#phase = 'ready';
        this.#acceptedRecipients = 0;
        break;
      case 'STARTTLS':
        if (this.#secure) throw stateError('STARTTLS on a connection that already uses TLS');
        if (phase === 'mail') throw stateError('STARTTLS inside a mail transaction');
        break;
      case 'AUTH':
        if (phase !== 'ready') throw stateError('AUTH outside the ready state');
        break;
      case 'MAIL':
        if (phase !== 'ready') throw stateError(phase === 'mail' ? 'MAIL inside a transaction (RSET first)' : 'MAIL before EHLO/HELO');
        this.#phase = 'mail';
        this.#acceptedRecipients = 0;
        break;
      case 'RCPT':
      case 'DATA':
      case 'BDAT':
        if (phase !== 'mail') throw stateError(`${command.name} without MAIL`);
        break;
      case 'RSET':
        if (phase === 'mail') this.#phase = 'ready';
        this.#acceptedRecipients = 0;
        break;
      case 'QUIT':
        this.#phase = 'closed';
        break;
      default:
        break;
    }
    this.#owed.push(command.name);
    if (command.name === 'BDAT' && command.last) this.#owedAfterData('BDAT');
    return bytes;
  }

  /** In LMTP, BDAT LAST and the final "." owe one reply per accepted recipient (RFC 2033 §4.2). */
  #owedAfterData(first: ClientReplyTo): void {
    if (!this.lmtp) return;
    // The first reply is already owed (as `first`); the others follow it.
    for (let i = 1; i < this.#acceptedRecipients; i++) this.#owed.push(first);
  }

  /** A SASL response line (base64, `=` or `*`); owes the next step's reply. */
  saslResponse(text: string): Buffer {
    const bytes = encodeSaslLine(text);
    this.#owed.push('sasl');
    return bytes;
  }

  /** Encode a piece of the message body after 354: dot-stuffed, bare CR/LF made CRLF (wire's `DataEncoder`). */
  bodyChunk(chunk: Uint8Array): Buffer {
    if (this.#phase !== 'body' || this.#encoder === undefined) throw stateError('message data before the 354 reply');
    return this.#encoder.push(chunk);
  }

  /** The end of the body ("." CRLF); owes the final reply (one per accepted recipient in LMTP). */
  bodyEnd(): Buffer {
    if (this.#phase !== 'body' || this.#encoder === undefined) throw stateError('end of data before the 354 reply');
    const end = this.#encoder.end();
    this.#encoder = undefined;
    this.#phase = 'ready';
    const replies = this.lmtp ? Math.max(1, this.#acceptedRecipients) : 1;
    for (let i = 0; i < replies; i++) this.#owed.push('data-end');
    this.#acceptedRecipients = 0;
    return end;
  }

  /** After the final BDAT reply(s): the transaction is over (RFC 3030 §2). */
  bdatDone(): void {
    if (this.#phase === 'mail') this.#phase = 'ready';
    this.#acceptedRecipients = 0;
  }

  /**
   * STARTTLS succeeded (220): drop every byte the server sent after that
   * reply (RFC 3207 §4.2) and forget what was learnt in plaintext (the
   * capabilities); the client must send EHLO again. Returns the number of
   * bytes dropped.
   */
  startTls(): number {
    const dropped = this.#parser.discardBuffered();
    this.#owed.length = 0;
    this.#capabilities = undefined;
    this.#phase = 'connected';
    this.#secure = true;
    return dropped;
  }

  /** The connection started with implicit TLS. */
  markSecure(): void {
    this.#secure = true;
  }
}
