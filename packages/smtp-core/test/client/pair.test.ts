/**
 * The client and this package's own server session, wired together in
 * memory (no sockets, virtual clock): both sides of smtp-core agree.
 * STARTTLS is simulated (the server is told the handshake is done).
 */
import { describe, expect, it } from 'vitest';
import { Secret } from '@pigeonpost/wire';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { smtpReply } from '../../src/errors.js';
import type { SmtpClientError } from '../../src/errors.js';
import { createSmtpServerSession } from '../../src/server/session.js';
import type { SmtpServerSession } from '../../src/server/session.js';
import type { SmtpServerSessionOptions } from '../../src/server/types.js';
import { SmtpClientConnection } from '../../src/client/connection.js';
import type { ClientTransport, SmtpClientConnectionOptions } from '../../src/client/connection.js';

interface Delivered {
  from: string | undefined;
  to: string[];
  body: string;
}

/** A client transport whose other end is a server session. */
class PairTransport implements ClientTransport {
  secure = false;
  readonly server: SmtpServerSession;
  #toClient: Buffer[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #tlsWanted = false;
  /** Every write of the client, as it was made. */
  readonly writes: Buffer[] = [];

  constructor(options: Omit<SmtpServerSessionOptions, 'clock'>, clock: VirtualClock) {
    this.server = createSmtpServerSession(
      { ...options, clock },
      {
        write: (bytes) => {
          this.#toClient.push(Buffer.from(bytes));
          this.#wake?.();
        },
        startTls: () => {
          this.#tlsWanted = true;
        },
        close: () => {
          this.#closed = true;
          this.#wake?.();
        },
        pause: () => undefined,
        resume: () => undefined,
      },
      { remoteAddress: '127.0.0.1', startTlsAvailable: true },
    );
    void this.server.start();
  }

  async read(): Promise<Uint8Array | null> {
    for (;;) {
      const chunk = this.#toClient.shift();
      if (chunk !== undefined) return chunk;
      if (this.#closed) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  write(chunk: Uint8Array): Promise<void> {
    this.writes.push(Buffer.from(chunk));
    this.server.receive(Buffer.from(chunk));
    return Promise.resolve();
  }

  startTls(discardedBytes: number): Promise<{ discardedBytes: number }> {
    if (!this.#tlsWanted) throw new Error('server did not start TLS');
    const dropped = discardedBytes + this.#toClient.reduce((n, c) => n + c.length, 0);
    this.#toClient = [];
    this.secure = true;
    this.server.tlsEstablished();
    return Promise.resolve({ discardedBytes: dropped });
  }

  end(): Promise<void> {
    this.server.end();
    return Promise.resolve();
  }

  destroy(): void {
    this.#closed = true;
    this.#wake?.();
  }
}

async function pair(
  server: Omit<SmtpServerSessionOptions, 'clock'>,
  client: Omit<SmtpClientConnectionOptions, 'clock'> = {},
): Promise<{ client: SmtpClientConnection; delivered: Delivered[]; transport: PairTransport }> {
  const delivered: Delivered[] = [];
  const clock = new VirtualClock();
  const transport = new PairTransport(
    {
      onRcptTo: (to) => (to.address.startsWith('nobody') ? Promise.reject(smtpReply(550, '5.1.1', 'No such user')) : Promise.resolve()),
      onData: async (envelope, body) => {
        const chunks: Buffer[] = [];
        for await (const chunk of body) chunks.push(Buffer.from(chunk));
        const e = envelope as unknown as { mailFrom: { address: string } | null; rcptTo: { mailbox?: { address: string }; address?: string }[] };
        delivered.push({
          from: e.mailFrom?.address,
          to: e.rcptTo.map((r) => r.mailbox?.address ?? r.address ?? ''),
          body: Buffer.concat(chunks).toString('utf8'),
        });
      },
      ...server,
    },
    clock,
  );
  return { client: await SmtpClientConnection.open(transport, { clock, name: 'client.example', ...client }), delivered, transport };
}

describe('client ↔ smtp-core server session, in memory', () => {
  it('pipelined DATA by default; BDAT (CHUNKING) is used because this server offers it', async () => {
    const { client, delivered } = await pair({});
    expect(client.capabilities?.chunking).toBe(true);
    const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'nobody@example.net'] }, 'Subject: x\n\n.dot\nend');
    expect(result.transfer).toBe('BDAT');
    expect(result.accepted).toEqual(['b@example.net']);
    expect(result.recipients[1]?.rcptReply).toMatchObject({ code: 550, enhanced: '5.1.1' });
    expect(delivered[0]?.body).toBe('Subject: x\r\n\r\n.dot\r\nend\r\n');
    await client.quit();
  });

  it('DATA with dot-stuffing when chunking is off, and reuse with RSET', async () => {
    const { client, delivered } = await pair({}, { chunking: false });
    for (let i = 0; i < 5; i++) await client.send({ from: 'a@example.org', to: ['b@example.net'] }, `.line ${i}\r\n.\r\n`);
    expect(delivered.map((d) => d.body)).toEqual([0, 1, 2, 3, 4].map((i) => `.line ${i}\r\n.\r\n`));
    await client.quit();
  });

  it('STARTTLS then AUTH (SCRAM-SHA-256, the strongest offered) on a submission server', async () => {
    const { client } = await pair(
      {
        submission: true,
        auth: {
          mechanisms: ['PLAIN', 'SCRAM-SHA-256'],
          backend: {
            verifyPassword: ({ password }) => Promise.resolve(password.expose() === 'pw'),
            getScramCredentials: async ({ authcid }) => {
              const { deriveScramCredentials } = await import('@pigeonpost/wire');
              return authcid === 'tim' ? deriveScramCredentials(new Secret('pw'), { hash: 'SHA-256', iterations: 4096 }) : undefined;
            },
          },
        },
      },
      { secure: 'starttls', auth: { username: 'tim', password: new Secret('pw') } },
    );
    expect(client.secure).toBe(true);
    expect(client.authenticated).toBe('SCRAM-SHA-256');
    await client.send({ from: 'tim@example.org', to: ['b@example.net'] }, 'x');
    await client.quit();
  });

  it('LMTP: per-recipient replies from the server session', async () => {
    const { client } = await pair({
      lmtp: true,
      onData: async (_envelope, body) => {
        for await (const _ of body) void _;
        return { recipients: [undefined, smtpReply(452, '4.2.2', 'Mailbox full')] };
      },
    }, { lmtp: true, chunking: false });
    const result = await client.send({ from: 'a@example.org', to: ['b@example.net', 'c@example.net'] }, 'x');
    expect(result.accepted).toEqual(['b@example.net']);
    expect(result.recipients[1]?.dataReply).toMatchObject({ code: 452, enhanced: '4.2.2' });
    const err = await client.send({ from: 'a@example.org', to: ['nobody@example.net'] }, 'x').catch((e: unknown) => e);
    expect((err as SmtpClientError).code).toBe('ERR_SMTP_CLIENT_RECIPIENTS_REJECTED');
    await client.quit();
  });

  describe('pipelineDepth: several messages in flight (RFC 2920, RFC 3030 §4.2)', () => {
    /** onData that holds the first message until `release()`, so what the client writes meanwhile shows. */
    function gated(): { release: () => void; onData: SmtpServerSessionOptions['onData']; bodies: string[] } {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const bodies: string[] = [];
      return {
        release,
        bodies,
        onData: async (_envelope, body) => {
          const chunks: Buffer[] = [];
          for await (const chunk of body) chunks.push(Buffer.from(chunk));
          const text = Buffer.concat(chunks).toString('utf8');
          if (bodies.push(text) === 1) await gate;
          if (text.startsWith('refuse')) throw smtpReply(554, '5.7.1', 'Refused by policy');
        },
      };
    }
    const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    const mails = (writes: readonly Buffer[]): number => writes.reduce((n, w) => n + (w.toString('latin1').match(/MAIL FROM:/g)?.length ?? 0), 0);

    it('DATA: the next envelope leaves in the same write as the end of the previous body, before its final reply', async () => {
      const g = gated();
      const { client, transport } = await pair({ onData: g.onData }, { chunking: false, pipelineDepth: 4 });
      transport.writes.length = 0;
      const sends = [0, 1, 2].map((i) => client.send({ from: 'a@example.org', to: ['b@example.net'] }, `.m${i}\r\n`));
      await settle();
      // Message 0 is held by the server; message 1's MAIL, RCPT and DATA went out in one write with message 0's
      // (small, in-memory) body and its ".", and nothing of message 1's body yet.
      const wire = transport.writes.map((w) => w.toString('latin1'));
      expect(wire).toContain('..m0\r\n.\r\nMAIL FROM:<a@example.org> SIZE=5\r\nRCPT TO:<b@example.net>\r\nDATA\r\n');
      expect(wire.join('')).not.toContain('..m1');
      g.release();
      const results = await Promise.all(sends);
      expect(results.map((r) => [r.reply.code, r.pipelined, r.transfer])).toEqual([[250, true, 'DATA'], [250, true, 'DATA'], [250, true, 'DATA']]);
      expect(g.bodies).toEqual(['.m0\r\n', '.m1\r\n', '.m2\r\n']);
      // No RSET between messages that ended with a reply to their data (RFC 5321 §4.1.1.4).
      expect(transport.writes.join('')).not.toContain('RSET');
      await client.quit();
    });

    it('DATA: per-message errors stay with their message, and the session goes on (RSET after a refused envelope)', async () => {
      const g = gated();
      const { client, transport } = await pair({ onData: g.onData }, { chunking: false, pipelineDepth: 3 });
      g.release();
      const outcomes = await Promise.allSettled([
        client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'one'),
        client.send({ from: 'a@example.org', to: ['nobody@example.net'] }, 'two'),
        client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'refuse three'),
        client.send({ from: 'a@example.org', to: ['b@example.net', 'nobody@x.example'] }, 'four'),
      ]);
      expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value.reply.code : (o.reason as SmtpClientError).code))).toEqual([
        250,
        'ERR_SMTP_CLIENT_RECIPIENTS_REJECTED',
        'ERR_SMTP_CLIENT_DATA_REJECTED',
        250,
      ]);
      expect(outcomes[3]?.status === 'fulfilled' && outcomes[3].value.rejected).toEqual(['nobody@x.example']);
      expect(g.bodies).toEqual(['one\r\n', 'refuse three\r\n', 'four\r\n']);
      expect(transport.writes.join('').match(/RSET/g)).toHaveLength(1);
      expect((await client.noop()).code).toBe(250);
      await client.quit();
    });

    it('BDAT: whole messages are written ahead of their replies, at most pipelineDepth of them', async () => {
      const g = gated();
      const { client, transport } = await pair({ onData: g.onData }, { pipelineDepth: 3 });
      transport.writes.length = 0;
      const sends = [0, 1, 2, 3, 4].map((i) => client.send({ from: 'a@example.org', to: ['b@example.net'] }, `m${i}\n`));
      await settle();
      expect(mails(transport.writes)).toBe(3); // message 0 is held; 1 and 2 are written, 3 waits for room
      // Messages queued together leave together: 0, 1 and 2 in one write, each a whole transaction.
      expect(transport.writes.map((w) => w.toString('latin1'))).toEqual([
        'MAIL FROM:<a@example.org> SIZE=3\r\nRCPT TO:<b@example.net>\r\nBDAT 4 LAST\r\nm0\r\n' +
          'RSET\r\nMAIL FROM:<a@example.org> SIZE=3\r\nRCPT TO:<b@example.net>\r\nBDAT 4 LAST\r\nm1\r\n' +
          'RSET\r\nMAIL FROM:<a@example.org> SIZE=3\r\nRCPT TO:<b@example.net>\r\nBDAT 4 LAST\r\nm2\r\n',
      ]);
      g.release();
      const results = await Promise.all(sends);
      expect(results.map((r) => [r.reply.code, r.transfer, r.pipelined])).toEqual(Array.from({ length: 5 }, () => [250, 'BDAT', true]));
      expect(g.bodies).toEqual(['m0\r\n', 'm1\r\n', 'm2\r\n', 'm3\r\n', 'm4\r\n']);
      await client.quit();
    });

    it('BDAT: a message whose recipients are all refused fails alone; the ones behind it are delivered', async () => {
      const g = gated();
      const { client } = await pair({ onData: g.onData }, { pipelineDepth: 8 });
      g.release();
      const outcomes = await Promise.allSettled([
        client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'one'),
        client.send({ from: 'a@example.org', to: ['nobody@example.net'] }, 'RSET\r\nMAIL FROM:<x@y.example>\r\n'),
        client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'refuse three'),
        client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'four'),
      ]);
      expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value.reply.code : (o.reason as SmtpClientError).code))).toEqual([
        250,
        'ERR_SMTP_CLIENT_RECIPIENTS_REJECTED',
        'ERR_SMTP_CLIENT_DATA_REJECTED',
        250,
      ]);
      expect(g.bodies).toEqual(['one\r\n', 'refuse three\r\n', 'four\r\n']);
      await client.quit();
    });

    it('BDAT: a body past the batch size goes out as it is, in chunks of maxBdatChunkBytes', async () => {
      const { client, delivered, transport } = await pair({}, { pipelineDepth: 4, limits: { maxBdatChunkBytes: 50_000 } });
      const body = `${'y'.repeat(98)}\r\n`.repeat(1200); // 120,000 bytes
      const results = await Promise.all([0, 1].map(() => client.send({ from: 'a@example.org', to: ['b@example.net'] }, body)));
      expect(results.map((r) => r.reply.code)).toEqual([250, 250]);
      expect(delivered.map((d) => d.body.length)).toEqual([120_000, 120_000]);
      expect(delivered[1]?.body).toBe(body);
      const wire = transport.writes.map((w) => w.toString('latin1')).join('');
      expect(wire.match(/BDAT 50000\r\n/g)).toHaveLength(4);
      expect(wire.match(/BDAT 20000 LAST\r\n/g)).toHaveLength(2);
      await client.quit();
    });

    it('a connection lost with messages in flight fails each of them, and nothing is left unhandled', async () => {
      for (const chunking of [false, true]) {
        const g = gated();
        const { client, transport } = await pair({ onData: g.onData }, { chunking, pipelineDepth: 4 });
        const sends = [0, 1, 2, 3, 4].map((i) => client.send({ from: 'a@example.org', to: ['b@example.net'] }, `m${i}`).catch((e: unknown) => (e as SmtpClientError).code));
        await settle();
        transport.destroy();
        const codes = await Promise.all(sends);
        expect(codes.every((c) => c === 'ERR_SMTP_CLIENT_CONNECTION' || c === 'ERR_SMTP_CLIENT_STATE')).toBe(true);
        expect(client.closed).toBe(true);
        g.release();
      }
    });

    it('a stream body or LMTP falls back to one message at a time; pipelineDepth is checked', async () => {
      const { client, transport } = await pair({}, { pipelineDepth: 4 });
      transport.writes.length = 0;
      async function* stream(): AsyncGenerator<Buffer> {
        yield await Promise.resolve(Buffer.from('streamed\r\n'));
      }
      const [a, b] = await Promise.all([
        client.send({ from: 'a@example.org', to: ['b@example.net'] }, 'x'),
        client.send({ from: 'a@example.org', to: ['b@example.net'] }, stream()),
      ]);
      expect([a.pipelined, b.transfer]).toEqual([true, 'BDAT']);
      await client.quit();
      await expect(pair({}, { pipelineDepth: 0 })).rejects.toThrow(RangeError);
    });
  });
});
