/**
 * Where accepted mail goes: local recipients into the mailbox store
 * (`deliver()`, the MDA), remote ones into the relay queue; and the relay's
 * own deliveries (retries, bounces to local senders) back into the store.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { finished } from 'node:stream/promises';
import type { MailStore } from '@pigeonpost/mailbox-store';
import type { Deliverer, DeliveryRequest, QueueEnvelope, QueueRecipient, RecipientOutcome, Relay } from '@pigeonpost/relay';
import { rfc5322Date } from '@pigeonpost/relay';
import type { SmtpEnvelope, SmtpError, SmtpSessionInfo } from '@pigeonpost/smtp-core';
import { smtpReply } from '@pigeonpost/smtp-core';
import type { Logger } from '@pigeonpost/wire';
import { PigeonpostError } from '@pigeonpost/wire';
import type { UserDirectory } from './users.js';

/** The SMTP reply an error carries (store, relay, wire errors), or undefined. */
export function smtpReplyOf(error: unknown): { code: number; enhanced: string; text: string } | undefined {
  if (!PigeonpostError.isInstance(error)) return undefined;
  const smtp = error.reply?.smtp;
  if (smtp === undefined) return undefined;
  return { code: smtp.code, enhanced: smtp.enhanced ?? `${Math.floor(smtp.code / 100)}.0.0`, text: error.reply?.text ?? error.message };
}

/** An SmtpError to throw from a hook for `error`: its own reply, or 451 4.3.0 for anything unexpected. */
export function toSmtpError(error: unknown): SmtpError {
  const r = smtpReplyOf(error);
  return r === undefined ? smtpReply(451, '4.3.0', 'Local error in processing, try again later') : smtpReply(r.code, r.enhanced, oneLine(r.text));
}

function oneLine(text: string): string {
  return text.replace(/[^\x20-\x7e]+/g, ' ').slice(0, 400);
}

/** Text a client chose (EHLO name), made safe for a header comment. */
function safeToken(text: string | undefined): string {
  const t = (text ?? 'unknown').replace(/[^\x21-\x7e]/g, '?').replace(/[()\\]/g, '?');
  return t.slice(0, 255) || 'unknown';
}

/** A queue id for logs and the Received header: 16 upper-case hex digits. */
export function newMessageId(): string {
  return randomBytes(8).toString('hex').toUpperCase();
}

/**
 * The RFC 5321 §4.4 trace header: who sent it (EHLO name and address), who
 * took it, with which protocol (RFC 3848: ESMTP, ESMTPS, ESMTPA, ESMTPSA),
 * the id and, for one recipient, for whom.
 */
export function receivedHeader(session: SmtpSessionInfo, envelope: SmtpEnvelope, hostname: string, id: string, now: number): string {
  const base = session.protocol === 'SMTP' ? 'SMTP' : 'ESMTP';
  const withProtocol = base === 'SMTP' ? base : `${base}${session.secure ? 'S' : ''}${session.user ? 'A' : ''}`;
  const rcpt = envelope.rcptTo.length === 1 ? `\r\n\tfor <${envelope.rcptTo[0]!.address.address}>` : '';
  const address = session.remoteAddress.includes(':') ? `IPv6:${session.remoteAddress}` : session.remoteAddress;
  return `Received: from ${safeToken(session.helo)} ([${address}])\r\n\tby ${hostname} (Pigeonpost) with ${withProtocol} id ${id}${rcpt};\r\n\t${rfc5322Date(now)}\r\n`;
}

/** RFC 5321 §4.4: the final delivery records the reverse path. */
export function returnPathHeader(from: string): string {
  return `Return-Path: <${from}>\r\n`;
}

async function* prepend(header: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield Buffer.from(header, 'utf8');
  yield* body;
}

/** A recipient of an accepted transaction, sorted into the store or the queue. */
interface Split {
  /** Store user → the addresses that led there (aliases fold into one delivery). */
  readonly local: Map<string, QueueRecipient[]>;
  readonly remote: QueueRecipient[];
}

function queueRecipient(r: SmtpEnvelope['rcptTo'][number]): QueueRecipient {
  return {
    address: r.address.address,
    ...(r.params.orcpt ? { orcpt: r.params.orcpt.address } : {}),
    ...(r.params.notify ? { notify: r.params.notify } : {}),
  };
}

/** The canonical form we look addresses up by: the local part as sent, the domain in A-labels. */
export function lookupAddress(mailbox: { readonly localPart: string; readonly asciiDomain: string }): string {
  return `${mailbox.localPart}@${mailbox.asciiDomain}`.toLowerCase();
}

export interface AcceptContext {
  readonly directory: UserDirectory;
  readonly store: MailStore;
  readonly relay: Relay;
  readonly hostname: string;
  /** Where a body is spooled while it goes to several places. */
  readonly tmpDir: string;
  readonly logger: Logger;
  readonly now: () => number;
}

function queueEnvelope(envelope: SmtpEnvelope, to: readonly QueueRecipient[]): QueueEnvelope {
  const p = envelope.mailParams;
  return {
    from: envelope.mailFrom?.address ?? '',
    to,
    ...(p.ret || p.envid ? { dsn: { ...(p.ret ? { ret: p.ret } : {}), ...(p.envid ? { envid: p.envid } : {}) } } : {}),
    ...(p.smtputf8 ? { smtputf8: true } : {}),
    ...(p.body === '8BITMIME' ? { bodyType: '8BITMIME' as const } : {}),
  };
}

/**
 * Take an accepted message: each local user gets it in INBOX (Return-Path
 * and Received prepended), remote recipients go to the relay (Received
 * prepended). Resolves once every copy is durable, so the caller's 250 keeps
 * the "nothing lost" contract. With one destination the body streams
 * straight there; with several it is spooled to a temporary file first.
 *
 * If nothing could be delivered, the first failure's reply is thrown (the
 * client keeps responsibility). Once one copy is durable, local failures
 * are handed to the relay instead, which retries them or bounces with a DSN:
 * a partial failure never makes the client send the message twice.
 */
export async function acceptMessage(ctx: AcceptContext, envelope: SmtpEnvelope, body: AsyncIterable<Uint8Array>, session: SmtpSessionInfo): Promise<{ text: string }> {
  const id = newMessageId();
  const received = receivedHeader(session, envelope, ctx.hostname, id, ctx.now());
  const from = envelope.mailFrom?.address ?? '';
  const split: Split = { local: new Map(), remote: [] };
  for (const r of envelope.rcptTo) {
    const user = ctx.directory.isLocalDomain(r.address.asciiDomain) ? ctx.directory.storeUserFor(lookupAddress(r.address)) : undefined;
    if (user === undefined) split.remote.push(queueRecipient(r));
    else split.local.set(user, [...(split.local.get(user) ?? []), queueRecipient(r)]);
  }
  const log = ctx.logger.child({ id, session: session.id });
  const destinations = split.local.size + (split.remote.length > 0 ? 1 : 0);

  if (destinations === 1) {
    try {
      const [user] = [...split.local.keys()];
      if (user !== undefined) {
        const { uid } = await ctx.store.deliver({ user, body: prepend(returnPathHeader(from) + received, body) });
        log.info({ from, user, uid }, 'delivered');
        return { text: `${id} delivered` };
      }
      const queued = await ctx.relay.enqueue(queueEnvelope(envelope, split.remote), prepend(received, body));
      log.info({ from, to: split.remote.map((r) => r.address), queueId: queued.id }, 'queued for relay');
      return { text: `${id} queued as ${queued.id}` };
    } catch (error) {
      log.warn({ err: error, from }, 'not accepted');
      throw toSmtpError(error);
    }
  }

  await mkdir(ctx.tmpDir, { recursive: true, mode: 0o700 });
  const file = join(ctx.tmpDir, `${id}.eml`);
  try {
    const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
    out.write(received);
    for await (const chunk of body) if (!out.write(chunk)) await once(out, 'drain');
    out.end();
    await finished(out);

    let delivered = 0;
    let firstFailure: unknown;
    const retry: QueueRecipient[] = [];
    for (const [user, rcpts] of split.local) {
      try {
        const { uid } = await ctx.store.deliver({ user, body: prepend(returnPathHeader(from), createReadStream(file)) });
        delivered++;
        log.info({ from, user, uid }, 'delivered');
      } catch (error) {
        log.warn({ err: error, user }, 'local delivery failed');
        firstFailure ??= error;
        retry.push(...rcpts);
      }
    }
    const toQueue = delivered > 0 ? [...split.remote, ...retry] : split.remote;
    if (toQueue.length > 0) {
      try {
        // The relay delivers local recipients back into the store (LocalFirstDeliverer).
        const queued = await ctx.relay.enqueue(queueEnvelope(envelope, toQueue), createReadStream(file));
        log.info({ from, to: toQueue.map((r) => r.address), queueId: queued.id }, 'queued for relay');
        return { text: `${id} ${delivered} delivered, queued as ${queued.id}` };
      } catch (error) {
        // Copies already delivered would be delivered again on the client's retry:
        // at-least-once beats losing the remote copies.
        log.error({ err: error, delivered }, 'enqueue failed');
        throw toSmtpError(error);
      }
    }
    if (delivered === 0) throw toSmtpError(firstFailure);
    return { text: `${id} delivered` };
  } finally {
    await rm(file, { force: true });
  }
}

/**
 * The relay's way out: recipients in the local domains go into the store (so
 * retries and bounces to local senders land in INBOX), the rest to the next
 * deliverer (`SmtpDeliverer`: MX lookup, opportunistic STARTTLS).
 */
export class LocalFirstDeliverer implements Deliverer {
  readonly #directory: UserDirectory;
  readonly #store: MailStore;
  readonly #remote: Deliverer;

  constructor(directory: UserDirectory, store: MailStore, remote: Deliverer) {
    this.#directory = directory;
    this.#store = store;
    this.#remote = remote;
  }

  destinationOf(domain: string): string {
    return this.#directory.isLocalDomain(domain) ? 'local:' : this.#remote.destinationOf(domain);
  }

  async deliver(request: DeliveryRequest): Promise<readonly RecipientOutcome[]> {
    if (!this.#directory.isLocalDomain(request.domain)) return this.#remote.deliver(request);
    const outcomes: RecipientOutcome[] = [];
    for (const r of request.recipients) {
      const user = this.#directory.storeUserFor(r.address);
      if (user === undefined) {
        outcomes.push({ address: r.address, status: 'bounced', reply: { code: 550, enhanced: '5.1.1', text: 'No such user here' } });
        continue;
      }
      try {
        await this.#store.deliver({ user, body: prepend(returnPathHeader(request.from), request.body()) });
        outcomes.push({ address: r.address, status: 'delivered', reply: { code: 250, enhanced: '2.0.0', text: 'Delivered to the mailbox' } });
      } catch (error) {
        const reply = smtpReplyOf(error) ?? { code: 451, enhanced: '4.3.0', text: 'Local delivery failed' };
        outcomes.push({ address: r.address, status: reply.code >= 500 ? 'bounced' : 'deferred', reply: { ...reply, text: oneLine(reply.text) } });
      }
    }
    return outcomes;
  }

  close(): Promise<void> {
    return this.#remote.close();
  }
}
