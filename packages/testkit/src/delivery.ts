/**
 * Make Dovecot itself write messages into its Maildirs: over LMTP on its
 * loopback port, or by running `dovecot-lda` against its config.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { LineFramer, encodeData } from '@pigeonpost/wire';
import type { RunningDovecot } from './dovecot.js';
import { FramedSocket } from './framed-socket.js';

/** One SMTP/LMTP reply: the code and every line's text joined with `\n`. */
export interface LmtpReply {
  readonly code: number;
  readonly text: string;
}

export interface DeliverLmtpOptions {
  /** Envelope sender. Default `sender@example.test`. */
  readonly from?: string;
  /** Per-reply timeout. Default 10000 ms. */
  readonly timeoutMs?: number;
}

async function readReply(conn: FramedSocket<string>): Promise<LmtpReply> {
  const lines: string[] = [];
  for (;;) {
    const line = await conn.next();
    const m = /^(\d{3})([ -])(.*)$/s.exec(line);
    if (m === null) throw new Error(`malformed LMTP reply line: ${JSON.stringify(line)}`);
    lines.push(m[3] ?? '');
    if (m[2] === ' ') return { code: Number(m[1]), text: lines.join('\n') };
  }
}

/**
 * Deliver `message` to `recipients` (user names of the instance) over LMTP
 * (LHLO, MAIL, RCPT…, DATA with dot-stuffing; bare LF becomes CRLF).
 * Resolves with the per-recipient replies after DATA; rejects if any step or
 * any recipient is refused.
 */
export async function deliverLmtp(
  dovecot: Pick<RunningDovecot, 'host' | 'ports'>,
  recipients: string | readonly string[],
  message: Uint8Array,
  options: DeliverLmtpOptions = {},
): Promise<LmtpReply[]> {
  const rcpts = typeof recipients === 'string' ? [recipients] : recipients;
  if (dovecot.ports.lmtp === 0) throw new Error('deliverLmtp: this Dovecot does not serve lmtp');
  const framer = new LineFramer({ maxLineLength: 64 * 1024 });
  const conn = await FramedSocket.connect<string>({ host: dovecot.host, port: dovecot.ports.lmtp, timeoutMs: options.timeoutMs ?? 10_000 }, (chunk, emit) => {
    framer.push(chunk);
    for (let ev = framer.next(); ev !== undefined; ev = framer.next()) {
      if (ev.type === 'error') throw ev.error;
      if (ev.type === 'line') emit(ev.line.toString('latin1'));
    }
  });
  const expect = async (step: string, ok: (code: number) => boolean): Promise<LmtpReply> => {
    const reply = await readReply(conn);
    if (!ok(reply.code)) throw new Error(`LMTP ${step} refused: ${reply.code} ${reply.text}`);
    return reply;
  };
  const is2xx = (code: number): boolean => code >= 200 && code < 300;
  try {
    await expect('greeting', is2xx);
    await conn.write('LHLO localhost\r\n');
    await expect('LHLO', is2xx);
    await conn.write(`MAIL FROM:<${options.from ?? 'sender@example.test'}>\r\n`);
    await expect('MAIL', is2xx);
    for (const rcpt of rcpts) {
      await conn.write(`RCPT TO:<${rcpt}>\r\n`);
      await expect(`RCPT ${rcpt}`, is2xx);
    }
    await conn.write('DATA\r\n');
    await expect('DATA', (code) => code === 354);
    await conn.write(encodeData(message));
    // LMTP (RFC 2033 §4.2): one reply per accepted recipient.
    const replies: LmtpReply[] = [];
    for (const rcpt of rcpts) replies.push(await expect(`delivery to ${rcpt}`, is2xx));
    await conn.write('QUIT\r\n');
    await readReply(conn).catch(() => undefined);
    return replies;
  } finally {
    conn.close();
  }
}

export interface DeliverWithLdaOptions {
  /** `-m`: the mailbox to save into (created if missing). Default INBOX. */
  readonly mailbox?: string;
  /** `-f`: envelope sender. */
  readonly from?: string;
  /** The LDA binary. Default `/usr/lib/dovecot/dovecot-lda` (Debian), else `/usr/libexec/dovecot/dovecot-lda`. */
  readonly binary?: string;
}

function ldaBinary(options: DeliverWithLdaOptions): string {
  if (options.binary !== undefined) return options.binary;
  return ['/usr/lib/dovecot/dovecot-lda', '/usr/libexec/dovecot/dovecot-lda'].find((p) => existsSync(p)) ?? 'dovecot-lda';
}

/**
 * Deliver `message` to `user` by running `dovecot-lda -c CONF -d user` as
 * the instance's user (through `setpriv` when root), with the message on
 * stdin. Rejects with LDA's stderr and exit code (75 = temporary failure).
 */
export function deliverWithLda(
  dovecot: Pick<RunningDovecot, 'configPath' | 'runAs'>,
  user: string,
  message: Uint8Array,
  options: DeliverWithLdaOptions = {},
): Promise<void> {
  const binary = ldaBinary(options);
  const ldaArgs = ['-c', dovecot.configPath, '-d', user];
  if (options.mailbox !== undefined) ldaArgs.push('-m', options.mailbox);
  if (options.from !== undefined) ldaArgs.push('-f', options.from);
  const asRoot = process.getuid?.() === 0;
  const [command, args] = asRoot
    ? ['setpriv', [`--reuid=${dovecot.runAs.uid}`, `--regid=${dovecot.runAs.gid}`, '--clear-groups', '--', binary, ...ldaArgs]]
    : [binary, ldaArgs];
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`dovecot-lda -d ${user} failed (${code ?? signal}): ${stderr.trim()}`));
    });
    // An EPIPE when LDA exits early is reported through its exit code.
    child.stdin.on('error', () => undefined);
    child.stdin.end(message);
  });
}
