import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { connectImap, connectPop3, dovecotAvailable, imapQuote } from '../src/index.js';

/** A scripted server: answers each received line with `reply(line)`, written one byte at a time when `drip`. */
async function scriptedServer(greeting: string, reply: (line: string) => string | undefined, drip = false): Promise<{ port: number; received: Buffer[]; close: () => Promise<void> }> {
  const received: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const send = (text: string): void => {
      const bytes = Buffer.from(text, 'latin1');
      if (!drip) socket.write(bytes);
      else for (let i = 0; i < bytes.length; i++) socket.write(bytes.subarray(i, i + 1));
    };
    send(greeting);
    let pending = '';
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      pending += chunk.toString('latin1');
      for (let i = pending.indexOf('\r\n'); i !== -1; i = pending.indexOf('\r\n')) {
        const line = pending.slice(0, i);
        pending = pending.slice(i + 2);
        const answer = reply(line);
        if (answer !== undefined) send(answer);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

describe('RawImap', () => {
  const fetchResponse = '* 1 FETCH (BODY[HEADER] {10}\r\nA: {3}\r\n\r\n BODY[TEXT] {0}\r\n UID 7)\r\n';

  for (const drip of [false, true]) {
    it(`keeps literals byte for byte (${drip ? 'one byte per packet' : 'one packet'})`, async () => {
      const server = await scriptedServer(
        '* OK ready\r\n',
        (line) => (line.startsWith('A1 ') ? `* 3 EXISTS\r\n${fetchResponse}A1 OK done\r\n` : undefined),
        drip,
      );
      cleanups.push(server.close);
      await using imap = await connectImap({ port: server.port });
      expect(imap.greeting.text).toBe('* OK ready');
      const result = await imap.command('FETCH 1 (BODY[HEADER] BODY[TEXT] UID)');
      expect(result).toMatchObject({ tag: 'A1', status: 'OK', text: 'done' });
      expect(result.untagged.map((r) => r.bytes.toString('latin1'))).toEqual(['* 3 EXISTS\r\n', fetchResponse]);
      expect(result.untagged[1]!.literals.map((l) => l.toString('latin1'))).toEqual(['A: {3}\r\n\r\n', '']);
      expect(result.tagged.bytes.toString('latin1')).toBe('A1 OK done\r\n');
    });
  }

  it('waits for the continuation before sending a literal, and stops on a tagged NO', async () => {
    const server = await scriptedServer('* OK ready\r\n', (line) => {
      if (line === 'A1 APPEND "INBOX" (\\Seen) {5}') return '+ go\r\n';
      if (line === 'hello') return 'A1 OK [APPENDUID 1 1] appended\r\n';
      if (line === 'A2 APPEND "Big" () {5}') return 'A2 NO [TOOBIG] no\r\n';
      return undefined;
    });
    cleanups.push(server.close);
    await using imap = await connectImap({ port: server.port });
    const ok = await imap.append('INBOX', ['\\Seen'], Buffer.from('hello'));
    expect(ok.text).toBe('[APPENDUID 1 1] appended');
    await expect(imap.append('Big', [], Buffer.from('never'))).rejects.toThrow(/APPEND failed: NO \[TOOBIG\]/);
    expect(Buffer.concat(server.received).toString('latin1')).toBe('A1 APPEND "INBOX" (\\Seen) {5}\r\nhello\r\nA2 APPEND "Big" () {5}\r\n');
  });

  it('quotes strings', () => {
    expect(imapQuote('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(() => imapQuote('a\r\n')).toThrow();
  });

  it('rejects a pending command when the server hangs up', async () => {
    const server = await scriptedServer('* OK ready\r\n', () => '* BYE bye\r\n');
    cleanups.push(server.close);
    const imap = await connectImap({ port: server.port, timeoutMs: 2000 });
    const pending = imap.command('NOOP');
    await new Promise((r) => setTimeout(r, 50));
    await server.close();
    await expect(pending).rejects.toThrow(/closed/);
  });
});

describe('RawPop3', () => {
  it('returns raw (dot-stuffed) and unstuffed bodies', async () => {
    const server = await scriptedServer(
      '+OK hi\r\n',
      (line) => (line === 'RETR 1' ? '+OK 9 octets\r\n..x\r\ny\r\n\r\n.\r\n' : line === 'NOPE' ? '-ERR no\r\n' : undefined),
      true,
    );
    cleanups.push(server.close);
    await using pop = await connectPop3({ port: server.port });
    expect(pop.greeting).toBe('+OK hi');
    const retr = await pop.command('RETR 1', { multiline: true });
    expect(retr.status).toBe('+OK 9 octets');
    expect(retr.raw.toString('latin1')).toBe('+OK 9 octets\r\n..x\r\ny\r\n\r\n.\r\n');
    expect(retr.body.toString('latin1')).toBe('.x\r\ny\r\n\r\n');
    const err = await pop.command('NOPE', { multiline: true });
    expect(err).toMatchObject({ ok: false, status: '-ERR no' });
  });
});

describe('dovecotAvailable', () => {
  it('skips with the Debian packages outside CI, and throws under CI=true', () => {
    const missing = dovecotAvailable({ binary: '/nonexistent/dovecot', env: {} });
    expect(missing.available).toBe(false);
    if (!missing.available) expect(missing.reason).toMatch(/apt-get install dovecot-imapd dovecot-pop3d dovecot-lmtpd/);
    expect(() => dovecotAvailable({ binary: '/nonexistent/dovecot', env: { CI: 'true' } })).toThrow(/CI=true/);
  });
});
