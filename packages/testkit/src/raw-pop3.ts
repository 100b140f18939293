/**
 * A raw POP3 client for tests: exact bytes of each reply, and for multi-line
 * replies also the dot-unstuffed body.
 */
import { LineFramer } from '@pigeonpost/wire';
import { FramedSocket, RawLineClient } from './framed-socket.js';
import type { ConnectOptions } from './framed-socket.js';

const CRLF = Buffer.from('\r\n', 'latin1');
const LF = Buffer.from('\n', 'latin1');

/** One POP3 reply. */
export interface Pop3Result {
  /** `+OK` (true) or `-ERR` (false). */
  readonly ok: boolean;
  /** The status line without its CRLF, e.g. `+OK 33 octets`. */
  readonly status: string;
  /** Exactly the bytes the server sent: status line, body lines still dot-stuffed, and the final `.\r\n`. */
  readonly raw: Buffer;
  /**
   * Multi-line replies only: the body after dot-unstuffing (a leading `.` removed from each line),
   * without the terminating `.\r\n`, every line ending as sent. Empty for single-line replies.
   */
  readonly body: Buffer;
}

/** Options of `connectPop3`. */
export type RawPop3Options = ConnectOptions;

/** See the module comment. Make one with `connectPop3`. */
export class RawPop3 extends RawLineClient<Buffer, string> implements AsyncDisposable {
  // `greeting`: the greeting line, e.g. `+OK Dovecot (Debian) ready.`

  /** @internal Use `connectPop3`. */
  static async open(options: RawPop3Options): Promise<RawPop3> {
    const framer = new LineFramer({ maxLineLength: 64 * 1024 * 1024 });
    const conn = await FramedSocket.connect<Buffer>(options, (chunk, emit) => {
      framer.push(chunk);
      for (let ev = framer.next(); ev !== undefined; ev = framer.next()) {
        if (ev.type === 'error') throw ev.error;
        if (ev.type === 'line') emit(Buffer.concat([ev.line, ev.ending === 'crlf' ? CRLF : LF]));
      }
    });
    try {
      const greeting = (await conn.next()).toString('latin1').replace(/\r?\n$/, '');
      return new RawPop3(conn, greeting);
    } catch (error) {
      conn.close();
      throw error;
    }
  }

  /**
   * Send `text\r\n` and read the reply. With `multiline: true` a `+OK` reply
   * goes on to the `.` line (LIST, RETR, TOP, UIDL, CAPA); a `-ERR` is always one line.
   */
  command(text: string, options: { readonly multiline?: boolean } = {}): Promise<Pop3Result> {
    return this.serial(async () => {
      await this.conn.write(`${text}\r\n`);
      const first = await this.conn.next();
      const status = first.toString('latin1').replace(/\r?\n$/, '');
      const ok = status.startsWith('+OK');
      if (!ok || options.multiline !== true) return { ok, status, raw: first, body: Buffer.alloc(0) };
      const raw = [first];
      const body: Buffer[] = [];
      for (;;) {
        const line = await this.conn.next();
        raw.push(line);
        if (line.length === 3 && line.toString('latin1') === '.\r\n') break;
        body.push(line[0] === 0x2e ? line.subarray(1) : line);
      }
      return { ok, status, raw: Buffer.concat(raw), body: Buffer.concat(body) };
    });
  }

  /** `USER` + `PASS`; rejects unless both answer `+OK`. */
  async login(user: string, password: string): Promise<Pop3Result> {
    const u = await this.command(`USER ${user}`);
    if (!u.ok) throw new Error(`POP3 USER failed: ${u.status}`);
    const p = await this.command(`PASS ${password}`);
    if (!p.ok) throw new Error(`POP3 PASS failed: ${p.status}`);
    return p;
  }

  /** `QUIT` (commits deletions, and Dovecot's \Seen from RETR), then close. */
  async quit(): Promise<Pop3Result> {
    try {
      return await this.command('QUIT');
    } finally {
      this.close();
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.conn.closedPromise();
  }
}

/** Connect and read the greeting. */
export function connectPop3(options: RawPop3Options): Promise<RawPop3> {
  return RawPop3.open(options);
}
