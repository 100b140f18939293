/**
 * A raw IMAP client for tests: it sends exactly the command text it is given
 * and returns exactly the bytes the server answered, literals included, so a
 * test can compare our server's responses with Dovecot's byte for byte.
 */
import { LineFramer } from '@pigeonpost/wire';
import { FramedSocket } from './framed-socket.js';
import type { ConnectOptions } from './framed-socket.js';

const CRLF = Buffer.from('\r\n', 'latin1');
const LF = Buffer.from('\n', 'latin1');

/** One complete server response (untagged, continuation or tagged). */
export interface RawResponse {
  /** Exactly the bytes the server sent: every line ending, and each literal's `{n}\r\n` and n bytes. */
  readonly bytes: Buffer;
  /** The contents of its literals, in order. */
  readonly literals: readonly Buffer[];
  /** `bytes` as latin1, without the final CRLF (handy for `toMatch`). */
  readonly text: string;
}

/** The outcome of one tagged command. */
export interface ImapResult {
  readonly tag: string;
  readonly status: 'OK' | 'NO' | 'BAD';
  /** The tagged response after the status, e.g. `[APPENDUID 1 1] Append completed.` */
  readonly text: string;
  /** Untagged (`*`) and unexpected continuation responses, in arrival order, including unsolicited ones received before the command. */
  readonly untagged: readonly RawResponse[];
  readonly tagged: RawResponse;
}

/** Options of `connectImap`. */
export interface RawImapOptions extends ConnectOptions {
  /** Largest literal accepted from the server. Default 64 MiB. */
  readonly maxLiteralBytes?: number;
}

function makeResponse(parts: Buffer[], literals: Buffer[]): RawResponse {
  const bytes = Buffer.concat(parts);
  const text = bytes.toString('latin1');
  return { bytes, literals, text: text.endsWith('\r\n') ? text.slice(0, -2) : text };
}

/** Quote a string as an IMAP quoted string (for names and passwords without CR/LF). */
export function imapQuote(value: string): string {
  if (/[\r\n\0]/.test(value)) throw new Error('imapQuote: CR, LF and NUL need a literal');
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/** See the module comment. Make one with `connectImap`. */
export class RawImap implements AsyncDisposable {
  /** The server's greeting (`* OK …`). */
  readonly greeting: RawResponse;
  readonly #conn: FramedSocket<RawResponse>;
  #tagCounter = 0;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(conn: FramedSocket<RawResponse>, greeting: RawResponse) {
    this.#conn = conn;
    this.greeting = greeting;
  }

  /** @internal Use `connectImap`. */
  static async open(options: RawImapOptions): Promise<RawImap> {
    const framer = new LineFramer({ literals: 'client', maxLineLength: 64 * 1024 * 1024, maxLiteralBytes: options.maxLiteralBytes ?? 64 * 1024 * 1024 });
    let parts: Buffer[] = [];
    let literals: Buffer[] = [];
    let literal: Buffer[] = [];
    const conn = await FramedSocket.connect<RawResponse>(options, (chunk, emit) => {
      framer.push(chunk);
      for (let ev = framer.next(); ev !== undefined; ev = framer.next()) {
        switch (ev.type) {
          case 'line':
          case 'literal':
            // Copies: the framer hands out views of the pushed chunks.
            parts.push(Buffer.from(ev.line), ev.ending === 'crlf' ? CRLF : LF);
            if (ev.type === 'literal') {
              if (ev.decision !== 'accepted') throw new Error(`literal of ${ev.size} bytes refused: ${ev.error?.message ?? ev.decision}`);
              literal = [];
            } else {
              emit(makeResponse(parts, literals));
              parts = [];
              literals = [];
            }
            break;
          case 'literal-data':
            parts.push(Buffer.from(ev.chunk));
            literal.push(Buffer.from(ev.chunk));
            break;
          case 'literal-end':
            literals.push(Buffer.concat(literal));
            literal = [];
            break;
          case 'error':
            throw ev.error;
        }
      }
    });
    try {
      const greeting = await conn.next();
      return new RawImap(conn, greeting);
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /** The next response from the server, outside any command (e.g. after `IDLE`'s continuation). */
  nextResponse(): Promise<RawResponse> {
    return this.#conn.next();
  }

  /** Send raw bytes (e.g. `DONE\r\n` to end IDLE). */
  write(data: string | Uint8Array): Promise<void> {
    return this.#conn.write(data);
  }

  /**
   * Send one tagged command and collect responses up to its tagged answer.
   * A string is sent as `<tag> <text>\r\n`. An array mixes text and literals:
   * each `Uint8Array` goes as a synchronizing literal (`{n}\r\n`, wait for
   * `+`, the bytes), e.g. `['APPEND INBOX () ', bytes]`. Resolves for OK, NO
   * and BAD alike; rejects on timeout or disconnect.
   */
  command(command: string | readonly (string | Uint8Array)[]): Promise<ImapResult> {
    const run = this.#queue.then(() => this.#run(typeof command === 'string' ? [command] : command));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #run(pieces: readonly (string | Uint8Array)[]): Promise<ImapResult> {
    this.#tagCounter += 1;
    const tag = `A${this.#tagCounter}`;
    const untagged: RawResponse[] = [];
    const finish = (response: RawResponse): ImapResult | undefined => {
      if (!response.text.startsWith(`${tag} `)) {
        untagged.push(response);
        return undefined;
      }
      const m = /^\S+ (OK|NO|BAD)(?: (.*))?$/s.exec(response.text);
      if (m === null) throw new Error(`malformed tagged response: ${response.text}`);
      return { tag, status: m[1] as ImapResult['status'], text: m[2] ?? '', untagged, tagged: response };
    };

    let pending: string[] = [`${tag} `];
    for (const piece of pieces) {
      if (typeof piece === 'string') {
        pending.push(piece);
        continue;
      }
      await this.#conn.write(`${pending.join('')}{${piece.length}}\r\n`);
      pending = [];
      // Wait for the continuation request; a tagged NO/BAD here ends the command.
      for (;;) {
        const response = await this.#conn.next();
        if (response.text.startsWith('+')) break;
        const done = finish(response);
        if (done !== undefined) return done;
      }
      await this.#conn.write(piece);
    }
    await this.#conn.write(`${pending.join('')}\r\n`);
    for (;;) {
      const done = finish(await this.#conn.next());
      if (done !== undefined) return done;
    }
  }

  async #ok(command: string | readonly (string | Uint8Array)[]): Promise<ImapResult> {
    const result = await this.command(command);
    if (result.status !== 'OK') {
      const shown = typeof command === 'string' ? command : command.map((p) => (typeof p === 'string' ? p : `{${p.length}}`)).join('');
      throw new Error(`IMAP ${shown.split(' ')[0] ?? ''} failed: ${result.status} ${result.text}`);
    }
    return result;
  }

  /** `LOGIN` with quoted strings; rejects unless OK. */
  login(user: string, password: string): Promise<ImapResult> {
    return this.#ok(`LOGIN ${imapQuote(user)} ${imapQuote(password)}`);
  }

  /** `SELECT`; rejects unless OK. */
  select(mailbox: string): Promise<ImapResult> {
    return this.#ok(`SELECT ${imapQuote(mailbox)}`);
  }

  /** `APPEND mailbox (flags) {n}` with a synchronizing literal; rejects unless OK. `date` is an IMAP date-time, e.g. `01-Jan-2024 10:00:00 +0000`. */
  append(mailbox: string, flags: readonly string[], bytes: Uint8Array, date?: string): Promise<ImapResult> {
    return this.#ok([`APPEND ${imapQuote(mailbox)} (${flags.join(' ')}) ${date === undefined ? '' : `${imapQuote(date)} `}`, bytes]);
  }

  /** `LOGOUT`, then close. */
  async logout(): Promise<ImapResult> {
    try {
      return await this.command('LOGOUT');
    } finally {
      this.close();
    }
  }

  /** Close the socket at once. */
  close(): void {
    this.#conn.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#conn.closedPromise();
  }
}

/** Connect and read the greeting. */
export function connectImap(options: RawImapOptions): Promise<RawImap> {
  return RawImap.open(options);
}
