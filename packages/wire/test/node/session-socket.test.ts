import * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDevCertificates } from '../../src/node/dev-certs.js';
import type { DevCertificates } from '../../src/node/dev-certs.js';
import { bindSessionSocket, createSessionServer } from '../../src/node/session-socket.js';
import type { SessionServer, SessionSocketTransport, SocketSession } from '../../src/node/session-socket.js';
import { upgradeClientSocket } from '../../src/node/starttls.js';
import { createClientTlsOptions, createServerTlsOptions } from '../../src/node/tls.js';
import { createSessionHarness, runTranscript } from '../../src/testing/session-harness.js';
import { collectLines, connect, Resources, until } from '../tls/helpers.js';

/**
 * A toy line protocol: `STARTTLS` → `220 go` and upgrade; `QUIT` → `221 bye`
 * and close; anything else → `250 <plain|tls> <line>`. Idle → `421 idle`,
 * shutdown → `421 shutdown`.
 */
class EchoSession implements SocketSession {
  readonly lines: string[] = [];
  #buffer = '';
  #secure = false;
  #done!: () => void;
  readonly closed = new Promise<void>((resolve) => (this.#done = resolve));
  constructor(readonly transport: Pick<SessionSocketTransport, 'write' | 'startTls' | 'close'>) {}
  #say(text: string): void {
    this.transport.write(Buffer.from(`${text}\r\n`));
  }
  receive(chunk: Uint8Array): void {
    this.#buffer += Buffer.from(chunk).toString('latin1');
    for (let i = this.#buffer.indexOf('\r\n'); i !== -1; i = this.#buffer.indexOf('\r\n')) {
      const line = this.#buffer.slice(0, i);
      this.#buffer = this.#buffer.slice(i + 2);
      this.lines.push(line);
      if (line === 'STARTTLS') {
        // The framer's leftover is dropped with the socket's buffer (RFC 3207 §4.2).
        this.#buffer = '';
        this.#say('220 go');
        this.transport.startTls();
        return;
      }
      if (line === 'QUIT') {
        this.#say('221 bye');
        this.transport.close();
        return;
      }
      this.#say(`250 ${this.#secure ? 'tls' : 'plain'} ${line}`);
    }
  }
  tlsEstablished(): void {
    this.#secure = true;
  }
  // For createSessionHarness: this session answers synchronously.
  readonly busy = false;
  readonly waitingForClock = false;
  whenIdle(): Promise<void> {
    return Promise.resolve();
  }
  end(): void {
    this.#done();
  }
  idleTimeout(): void {
    this.#say('421 idle');
    this.transport.close();
  }
  shutdown(): void {
    this.#say('421 shutdown');
    this.transport.close();
  }
}

const res = new Resources();
let dev: DevCertificates;
let server: SessionServer | undefined;
const sessions: EchoSession[] = [];
afterEach(async () => {
  await server?.close({ timeoutMs: 1000 });
  server = undefined;
  sessions.length = 0;
  await res.close();
});
beforeAll(async () => {
  dev = await createDevCertificates();
});

async function start(): Promise<number> {
  server = createSessionServer({
    name: 'echo',
    tls: createServerTlsOptions({ key: dev.key, cert: dev.cert }),
    idleTimeoutMs: 60_000,
    onConnection: (connection) => {
      const { session, closed } = bindSessionSocket(connection, { tls: createServerTlsOptions({ key: dev.key, cert: dev.cert }), idleTimeoutMs: 60_000 }, (transport) => new EchoSession(transport));
      sessions.push(session);
      return closed;
    },
  });
  return (await server.listen({ host: '127.0.0.1', port: 0 })).port;
}

describe('bindSessionSocket', () => {
  it('feeds bytes to the session and writes its replies', async () => {
    const port = await start();
    const socket = res.socket(await connect(port));
    const lines = collectLines(socket);
    socket.write('HELLO\r\nWOR');
    socket.write('LD\r\n');
    await until(() => lines.length === 2);
    expect(lines).toEqual(['250 plain HELLO', '250 plain WORLD']);
    expect(server?.listener.stats().sessions).toBe(1);
  });

  it('STARTTLS: commands pipelined behind it are dropped, never run; after the handshake the session is told', async () => {
    const port = await start();
    const socket = res.socket(await connect(port));
    const lines = collectLines(socket);
    // A man in the middle appends a command to the client's STARTTLS.
    socket.write('STARTTLS\r\nINJECTED\r\n');
    await until(() => lines.length === 1);
    expect(lines).toEqual(['220 go']);
    socket.removeAllListeners('data');
    const { socket: secure } = await upgradeClientSocket(socket, createClientTlsOptions({ servername: 'localhost', ca: dev.caCert }));
    res.socket(secure);
    const secureLines = collectLines(secure);
    secure.write('AFTER\r\n');
    await until(() => secureLines.length === 1);
    expect(secureLines).toEqual(['250 tls AFTER']);
    expect(sessions[0]?.lines).toEqual(['STARTTLS', 'AFTER']);
    expect(secure).toBeInstanceOf(tls.TLSSocket);
  });

  it('close() ends the socket after the last reply, and the connection ends', async () => {
    const port = await start();
    const socket = res.socket(await connect(port));
    const lines = collectLines(socket);
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.write('QUIT\r\n');
    await ended;
    expect(lines).toEqual(['221 bye']);
    socket.end();
    await until(() => server?.listener.stats().total === 0);
  });

  it('a graceful close of the server asks each session to shut down', async () => {
    const port = await start();
    const socket = res.socket(await connect(port));
    const lines = collectLines(socket);
    socket.write('PING\r\n');
    await until(() => lines.length === 1);
    socket.on('end', () => socket.end());
    await server?.close({ timeoutMs: 5000 });
    expect(lines).toEqual(['250 plain PING', '421 shutdown']);
  });
});

describe('createSessionHarness and runTranscript', () => {
  function harnessed(autoTls = true) {
    const harness = createSessionHarness({ autoTls });
    const session = new EchoSession(harness.transport);
    harness.attach(session);
    return { harness, session };
  }

  it('records writes and transport events; simulated TLS completes at once', async () => {
    const { harness } = harnessed();
    expect(await harness.send('A\r\nSTARTTLS\r\n')).toBe('250 plain A\r\n220 go\r\n');
    expect(await harness.send('B\r\n', { byteByByte: true })).toBe('250 tls B\r\n');
    expect(await harness.send('QUIT\r\n')).toBe('221 bye\r\n');
    expect(harness.events).toEqual(['startTls', 'close']);
    expect(harness.isClosed()).toBe(true);
    expect(harness.writes).toEqual(['250 plain A\r\n', '220 go\r\n', '250 tls B\r\n', '221 bye\r\n']);
  });

  it('without autoTls the session is never told the handshake is done', async () => {
    const { harness } = harnessed(false);
    await harness.send('STARTTLS\r\n');
    expect(await harness.send('B\r\n')).toBe('250 plain B\r\n');
  });

  it('runTranscript: pipelined C: groups, S: expectations with * wildcards, extra lines reported', async () => {
    const { harness } = harnessed();
    const result = await runTranscript(harness, 'C: ONE\nC: TWO\nS: 250 plain ONE\nS: 250 * TWO\nignored line\nC: THREE\n');
    expect(result.expected).toEqual(['250 plain ONE', '250 plain TWO']);
    expect(result.actual).toEqual(['250 plain ONE', '250 plain TWO', '250 plain THREE']);
    const mismatch = await runTranscript(harnessed().harness, 'C: X\nS: 500 *');
    expect(mismatch.expected).toEqual(['500 *']);
    expect(mismatch.actual).toEqual(['250 plain X']);
  });

  it('runTranscript: * spans a bare LF only with wildcardMatchesLineFeed', async () => {
    const lf = { take: () => '', send: () => Promise.resolve('+OK a\nb\r\n') };
    expect((await runTranscript(lf, 'C: X\nS: +OK *')).expected).toEqual(['+OK *']);
    expect((await runTranscript(lf, 'C: X\nS: +OK *', { wildcardMatchesLineFeed: true })).expected).toEqual(['+OK a\nb']);
  });
});
