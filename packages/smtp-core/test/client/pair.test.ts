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
): Promise<{ client: SmtpClientConnection; delivered: Delivered[] }> {
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
  return { client: await SmtpClientConnection.open(transport, { clock, name: 'client.example', ...client }), delivered };
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
});
