/**
 * A raw SMTP client for tests: one command, one reply, the reply's exact
 * text (multi-line replies whole). Nothing is added or checked: the test
 * writes the DATA body, dot-stuffing and final `.` included, as it wants
 * them on the wire.
 */
import { LineFramer } from '@pigeonpost/wire';
import { FramedSocket, RawLineClient } from './framed-socket.js';
import type { ConnectOptions } from './framed-socket.js';

/** One SMTP reply. */
export interface SmtpReply {
  /** The reply code, e.g. 250. */
  readonly code: number;
  /** The text of each line after the code and its separator (`-` or space). */
  readonly lines: readonly string[];
  /** Exactly what the server sent, every line with its line end. */
  readonly raw: string;
}

/** Options of `connectSmtp`. */
export type RawSmtpOptions = ConnectOptions;

/** See the module comment. Make one with `connectSmtp`. */
export class RawSmtp extends RawLineClient<SmtpReply, SmtpReply> implements AsyncDisposable {
  // `greeting`: the `220 …` reply.

  /** @internal Use `connectSmtp`. */
  static async open(options: RawSmtpOptions): Promise<RawSmtp> {
    const framer = new LineFramer({ maxLineLength: 64 * 1024 });
    let lines: string[] = [];
    let raw = '';
    const conn = await FramedSocket.connect<SmtpReply>(options, (chunk, emit) => {
      framer.push(chunk);
      for (let ev = framer.next(); ev !== undefined; ev = framer.next()) {
        if (ev.type === 'error') throw ev.error;
        if (ev.type !== 'line') continue;
        const line = ev.line.toString('latin1');
        const m = /^(\d{3})([ -]?)(.*)$/.exec(line);
        if (m === null) throw new Error(`not an SMTP reply line: ${JSON.stringify(line)}`);
        raw += `${line}${ev.ending === 'crlf' ? '\r\n' : '\n'}`;
        lines.push(m[3]!);
        if (m[2] === '-') continue;
        emit({ code: Number(m[1]), lines, raw });
        lines = [];
        raw = '';
      }
    });
    try {
      return new RawSmtp(conn, await conn.next());
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /** Send `text\r\n` and read the reply. */
  command(text: string): Promise<SmtpReply> {
    return this.send(`${text}\r\n`);
  }

  /** Send `data` as it is (a DATA body with its final `.\r\n`, a pipelined group of commands) and read one reply. */
  send(data: string | Uint8Array): Promise<SmtpReply> {
    return this.serial(async () => {
      await this.conn.write(data);
      return this.conn.next();
    });
  }

  /** The next reply, with nothing sent (the further replies to a pipelined group). */
  reply(): Promise<SmtpReply> {
    return this.serial(() => this.conn.next());
  }

  /** QUIT unless the server has closed the connection, then close. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.conn.closed) await this.command('QUIT').catch(() => undefined);
    this.close();
  }
}

/** Connect and read the greeting. */
export function connectSmtp(options: RawSmtpOptions): Promise<RawSmtp> {
  return RawSmtp.open(options);
}
