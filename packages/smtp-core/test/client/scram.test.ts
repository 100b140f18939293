/**
 * SCRAM needs a server that computes its answers, so this test runs the
 * client against a tiny SMTP responder built on wire's SASL server, through
 * an in-memory ClientTransport (no sockets).
 */
import { describe, expect, it } from 'vitest';
import { createSaslServer, deriveScramCredentials, Secret } from '@pigeonpost/wire';
import type { ChannelBinding, SaslServerSession, ScramCredentials } from '@pigeonpost/wire';
import { VirtualClock } from '@pigeonpost/wire/testing';
import type { SmtpClientError } from '../../src/errors.js';
import { SmtpClientConnection } from '../../src/client/connection.js';
import type { ClientTransport } from '../../src/client/connection.js';

const binding: ChannelBinding = { type: 'tls-exporter', data: new Uint8Array(32).fill(7) };

class SaslResponder implements ClientTransport {
  readonly secure = true;
  readonly lines: string[] = [];
  #out = '220 srv ESMTP\r\n';
  #in = '';
  #work: Promise<void> = Promise.resolve();
  #session: SaslServerSession | undefined;
  #wake: (() => void) | undefined;

  constructor(
    readonly stored: ScramCredentials,
    readonly mechanisms: string,
    readonly offerBinding: boolean,
  ) {}

  channelBinding(): ChannelBinding | undefined {
    return this.offerBinding ? binding : undefined;
  }

  #send(text: string): void {
    this.#out += text;
    this.#wake?.();
  }

  async #line(line: string): Promise<void> {
    this.lines.push(line);
    const sasl = createSaslServer({
      mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'],
      backend: { getScramCredentials: ({ authcid }) => Promise.resolve(authcid === 'tim' ? this.stored : undefined) },
    });
    const reply = (step: Awaited<ReturnType<SaslServerSession['step']>>): void => {
      if (step.type === 'challenge') this.#send(`334 ${step.encoded}\r\n`);
      else if (step.type === 'success') {
        this.#session = undefined;
        this.#send('235 2.7.0 ok\r\n');
      } else {
        this.#session = undefined;
        this.#send(`${step.error.reply?.smtp?.code ?? 535} ${step.error.reply?.smtp?.enhanced ?? '5.7.8'} failed\r\n`);
      }
    };
    if (this.#session !== undefined) return reply(await this.#session.stepEncoded(line));
    const [verb = '', mech = '', ir] = line.split(' ');
    if (verb === 'EHLO') return this.#send(`250-srv\r\n250 AUTH ${this.mechanisms}\r\n`);
    if (verb === 'QUIT') return this.#send('221 bye\r\n');
    if (verb === 'AUTH') {
      this.#session = sasl.createSession(mech, { tls: true, ...(this.offerBinding ? { channelBindings: [binding] } : {}) });
      return reply(await this.#session.startEncoded(ir));
    }
    this.#send('500 what\r\n');
  }

  write(chunk: Uint8Array): Promise<void> {
    this.#in += Buffer.from(chunk).toString('latin1');
    for (let i = this.#in.indexOf('\r\n'); i >= 0; i = this.#in.indexOf('\r\n')) {
      const line = this.#in.slice(0, i);
      this.#in = this.#in.slice(i + 2);
      this.#work = this.#work.then(() => this.#line(line));
    }
    return Promise.resolve();
  }

  async read(): Promise<Uint8Array | null> {
    for (;;) {
      await this.#work;
      if (this.#out !== '') {
        const out = Buffer.from(this.#out, 'latin1');
        this.#out = '';
        return out;
      }
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  end(): Promise<void> {
    return Promise.resolve();
  }
  destroy(): void {}
}

describe('AUTH SCRAM against wire’s SASL server', () => {
  const password = new Secret('pencil');

  it('picks SCRAM-SHA-256-PLUS with tls-exporter channel binding when the transport has it', async () => {
    const stored = await deriveScramCredentials(password, { hash: 'SHA-256', iterations: 4096 });
    const transport = new SaslResponder(stored, 'PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS', true);
    const client = await SmtpClientConnection.open(transport, { clock: new VirtualClock(), auth: { username: 'tim', password } });
    expect(client.authenticated).toBe('SCRAM-SHA-256-PLUS');
    expect(transport.lines[1]).toMatch(/^AUTH SCRAM-SHA-256-PLUS [A-Za-z0-9+/=]+$/);
    await client.quit();
  });

  it('picks SCRAM-SHA-256 without channel binding, over PLAIN', async () => {
    const stored = await deriveScramCredentials(password, { hash: 'SHA-256', iterations: 4096 });
    const transport = new SaslResponder(stored, 'PLAIN SCRAM-SHA-256', false);
    const client = await SmtpClientConnection.open(transport, { clock: new VirtualClock(), auth: { username: 'tim', password } });
    expect(client.authenticated).toBe('SCRAM-SHA-256');
    await client.quit();
  });

  it('a wrong password is ERR_SMTP_CLIENT_AUTH_FAILED with the server’s 535', async () => {
    const stored = await deriveScramCredentials(new Secret('other'), { hash: 'SHA-256', iterations: 4096 });
    const transport = new SaslResponder(stored, 'SCRAM-SHA-256', false);
    const err = (await SmtpClientConnection.open(transport, { clock: new VirtualClock(), auth: { username: 'tim', password } }).catch((e: unknown) => e)) as SmtpClientError;
    expect(err.code).toBe('ERR_SMTP_CLIENT_AUTH_FAILED');
    expect(err.replyCode).toBe(535);
  });
});
