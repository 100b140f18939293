import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, type Clock, type Logger, type TimerHandle } from '@pigeonpost/wire';
import { systemClock } from '@pigeonpost/wire/node';
import type { Deliverer, RecipientOutcome } from './delivery.js';
import { buildDsn, type DsnKind, type DsnRecipient } from './dsn.js';
import { RelayError } from './errors.js';
import { TimeHeap } from './heap.js';
import { domainOf } from './routing.js';
import { backoffDelay, retryDefaults, type RetryOptions } from './schedule.js';
import { Spool, type EnvelopeRecord, type SpoolRecord } from './spool.js';
import type { QueueBody, QueueEntry, QueueEnvelope, QueueRecipient, RecipientState, RecipientStatus, ReplySummary } from './types.js';

export interface RelayOptions extends RetryOptions {
  /** The spool folder (created when missing). One relay process owns it at a time. */
  readonly spoolDir: string;
  /** How messages leave: an `SmtpDeliverer`, or your own. */
  readonly deliverer: Deliverer;
  /** This MTA's name, for the notices it sends (Reporting-MTA, MAILER-DAEMON@…). */
  readonly hostname: string;
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** fsync queue files and the queue folder. Default true: `enqueue()` resolves only once the message is durable. */
  readonly fsync?: boolean;
  /** Delivery attempts running at once, over all destinations. Default 100 (Postfix `default_process_limit`). */
  readonly maxConcurrency?: number;
  /** Delivery attempts running at once to one destination. Default 20 (Postfix `default_destination_concurrency_limit`). */
  readonly maxPerDestination?: number;
  /** Largest message accepted by `enqueue()`, in bytes. Default 10,240,000 (Postfix `message_size_limit`). */
  readonly maxMessageBytes?: number;
  /** Most recipients of one message. Default 1000 (Postfix `smtpd_recipient_limit`). */
  readonly maxRecipients?: number;
  /** A notice returns the whole original message only up to this size, else its header. Default 50,000 (Postfix `bounce_size_limit`). */
  readonly bounceSizeLimit?: number;
  /** Run the scheduler. Default true; false opens the spool for inspection and control only. */
  readonly start?: boolean;
  /** How often the control folder (requests from `pigeonpost-queue`) is read, in ms. Default 1,000. */
  readonly controlPollMs?: number;
  /** Called for every outcome: for logs, metrics and tests. */
  readonly onEvent?: (event: RelayEvent) => void;
  /** Random source in [0, 1) for backoff jitter. */
  readonly random?: () => number;
}

export const relayDefaults = Object.freeze({
  ...retryDefaults,
  maxConcurrency: 100,
  maxPerDestination: 20,
  maxMessageBytes: 10_240_000,
  maxRecipients: 1000,
  bounceSizeLimit: 50_000,
  controlPollMs: 1_000,
});

/** What the relay reports through `onEvent`. */
export type RelayEvent =
  | { readonly type: 'queued'; readonly id: string; readonly from: string; readonly recipients: readonly string[]; readonly size: number }
  | { readonly type: 'delivered' | 'deferred' | 'bounced'; readonly id: string; readonly recipients: readonly string[]; readonly reply: ReplySummary; readonly remoteMta?: string }
  | { readonly type: 'expired'; readonly id: string; readonly recipients: readonly string[] }
  | { readonly type: 'notified'; readonly id: string; readonly kind: DsnKind; readonly notice: string; readonly recipients: readonly string[] }
  | { readonly type: 'removed'; readonly id: string; readonly reason: 'done' | 'deleted' };

interface MutableRecipient {
  address: string;
  orcpt?: string;
  notify?: Notify;
  status: RecipientStatus;
  attempts: number;
  lastAttemptAt?: number;
  lastReply?: ReplySummary;
  remoteMta?: string;
  dsnPassedOn?: boolean;
  noted: Set<DsnKind>;
}

interface Entry {
  readonly id: string;
  readonly env: EnvelopeRecord;
  readonly headerLength: number;
  readonly rcpts: MutableRecipient[];
  held: boolean;
  nextAttemptAt: number;
  active: boolean;
  attempts: number;
  deleted: boolean;
  /** Bumped whenever nextAttemptAt changes: heap entries with an older stamp are stale. */
  stamp: number;
}

interface Job {
  readonly entry: Entry;
  readonly domain: string;
  readonly indexes: readonly number[];
  readonly done: (outcomes: readonly RecipientOutcome[] | Error) => void;
}

interface Destination {
  active: number;
  readonly waiting: Job[];
}

const FINAL: ReadonlySet<RecipientStatus> = new Set(['delivered', 'bounced']);

function newId(now: number): string {
  // Sortable by arrival: 9 base-36 time digits, then 10 random ones.
  return `${Math.floor(now).toString(36).toUpperCase().padStart(9, '0')}${randomBytes(8).readBigUInt64BE().toString(36).toUpperCase().padStart(13, '0').slice(0, 10)}`;
}

function notifyWants(notify: Notify | undefined, kind: DsnKind, delayDefault: boolean): boolean {
  if (notify === 'NEVER') return false;
  if (notify === undefined) return kind === 'failure' || (kind === 'delay' && delayDefault);
  const want = kind === 'failure' ? 'FAILURE' : kind === 'delay' ? 'DELAY' : 'SUCCESS';
  return notify.includes(want);
}

/** A recipient with a final status and every notice it is owed sent (or not wanted). */
function recipientDone(r: MutableRecipient): boolean {
  if (r.status === 'bounced') return r.noted.has('failure');
  if (r.status === 'delivered') return r.dsnPassedOn === true || r.noted.has('success') || !notifyWants(r.notify, 'success', false);
  return false;
}

type Notify = 'NEVER' | readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[];

function normalizeNotify(notify: QueueRecipient['notify']): Notify | undefined {
  if (notify === undefined || notify === 'NEVER') return notify;
  if (notify.includes('NEVER')) return 'NEVER';
  return notify.filter((n): n is 'SUCCESS' | 'FAILURE' | 'DELAY' => n !== 'NEVER');
}

function toRecipient(r: string | QueueRecipient): { readonly address: string; readonly orcpt?: string; readonly notify?: Notify } {
  if (typeof r === 'string') return { address: r };
  const notify = normalizeNotify(r.notify);
  return { address: r.address, ...(r.orcpt !== undefined ? { orcpt: r.orcpt } : {}), ...(notify !== undefined ? { notify } : {}) };
}

function entryFrom(env: EnvelopeRecord, headerLength: number): Entry {
  return {
    id: env.id,
    env,
    headerLength,
    rcpts: env.rcpt.map((r) => ({
      address: r.a,
      ...(r.o !== undefined ? { orcpt: r.o } : {}),
      ...(r.n !== undefined ? { notify: normalizeNotify(r.n as QueueRecipient['notify']) } : {}),
      status: 'queued',
      attempts: 0,
      noted: new Set(),
    })),
    held: false,
    nextAttemptAt: env.arrival,
    active: false,
    attempts: 0,
    deleted: false,
    stamp: 0,
  };
}
function replay(entry: Entry, record: SpoolRecord): void {
  switch (record.t) {
    case 'res':
      for (const i of record.r) {
        const r = entry.rcpts[i];
        if (r === undefined || FINAL.has(r.status)) continue;
        r.status = record.s;
        r.attempts++;
        r.lastAttemptAt = record.at;
        r.lastReply = record.reply;
        if (record.mta !== undefined) r.remoteMta = record.mta;
        if (record.dsn !== undefined) r.dsnPassedOn = record.dsn;
      }
      break;
    case 'next':
      entry.nextAttemptAt = record.at;
      entry.attempts++;
      break;
    case 'hold':
      entry.held = true;
      break;
    case 'release':
      entry.held = false;
      break;
    case 'note':
      for (const i of record.r) entry.rcpts[i]?.noted.add(record.k);
      break;
  }
}
function view(e: Entry): QueueEntry {
  return {
    id: e.id,
    from: e.env.from,
    size: e.env.size,
    arrivalTime: e.env.arrival,
    recipients: e.rcpts.map(
      (r): RecipientState => ({
        address: r.address,
        ...(r.orcpt !== undefined ? { orcpt: r.orcpt } : {}),
        ...(r.notify !== undefined ? { notify: r.notify } : {}),
        status: r.status,
        attempts: r.attempts,
        ...(r.lastAttemptAt !== undefined ? { lastAttemptAt: r.lastAttemptAt } : {}),
        ...(r.lastReply !== undefined ? { lastReply: r.lastReply } : {}),
        ...(r.remoteMta !== undefined ? { remoteMta: r.remoteMta } : {}),
        ...(r.dsnPassedOn !== undefined ? { dsnPassedOn: r.dsnPassedOn } : {}),
      }),
    ),
    held: e.held,
    nextAttemptAt: e.held || e.active ? undefined : e.nextAttemptAt,
    active: e.active,
    attempts: e.attempts,
    ...(e.env.dsn !== undefined ? { dsn: e.env.dsn } : {}),
    isNotification: e.env.notification === true,
    smtputf8: e.env.smtputf8 === true,
    ...(e.env.bodyType !== undefined ? { bodyType: e.env.bodyType } : {}),
    requireTls: e.env.requireTls === true,
  };
}
/**
 * The outbound queue: messages are kept in a durable spool, tried by
 * destination with bounded concurrency, retried with exponential backoff,
 * and bounced (RFC 3464) when they fail for good or outlive the queue
 * lifetime.
 */
export class Relay {
  readonly #options: RelayOptions;
  readonly #spool: Spool;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #heap = new TimeHeap();
  readonly #destinations = new Map<string, Destination>();
  readonly #retry: Required<RetryOptions>;
  #active = 0;
  #timer: TimerHandle | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #controlTimer: TimerHandle | undefined;
  #closed = false;
  /** Aborts attempts in progress when the relay closes: they end as deferred and are tried again after a restart. */
  readonly #abort = new AbortController();
  readonly #running = new Set<Promise<void>>();
  #idleWaiters: (() => void)[] = [];

  private constructor(options: RelayOptions, spool: Spool) {
    // Every SMTP connection of every attempt listens on this one signal.
    setMaxListeners(0, this.#abort.signal);
    this.#options = options;
    this.#spool = spool;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
    this.#retry = {
      minBackoffMs: options.minBackoffMs ?? retryDefaults.minBackoffMs,
      maxBackoffMs: options.maxBackoffMs ?? retryDefaults.maxBackoffMs,
      maxQueueLifetimeMs: options.maxQueueLifetimeMs ?? retryDefaults.maxQueueLifetimeMs,
      maxNotificationLifetimeMs: options.maxNotificationLifetimeMs ?? retryDefaults.maxNotificationLifetimeMs,
      delayWarningMs: options.delayWarningMs ?? retryDefaults.delayWarningMs,
      jitter: options.jitter ?? retryDefaults.jitter,
    };
  }

  /**
   * Opens (or creates) the spool, takes its lock, reads every queued message
   * back and, unless `start: false`, starts delivering what is due.
   */
  static async open(options: RelayOptions): Promise<Relay> {
    const spool = await Spool.open(options.spoolDir, { fsync: options.fsync ?? true, lock: true });
    const relay = new Relay(options, spool);
    try {
      await spool.cleanTmp();
      await relay.#load();
    } catch (error) {
      await spool.unlock();
      throw error;
    }
    if (options.start !== false) {
      relay.#schedule();
      relay.#pollControl();
    }
    return relay;
  }

  /**
   * Reads a spool without taking it over (a relay may be running on it):
   * what `pigeonpost-queue list` shows. Damaged files are skipped.
   */
  static async inspect(spoolDir: string): Promise<QueueEntry[]> {
    const spool = await Spool.open(spoolDir, { lock: false });
    const out: QueueEntry[] = [];
    for (const id of await spool.ids()) {
      try {
        const loaded = await spool.load(id, { readOnly: true });
        const entry = entryFrom(loaded.envelope, loaded.headerLength);
        for (const record of loaded.records) replay(entry, record);
        out.push(view(entry));
      } catch {
        // Finished and removed while we read, or damaged: the owner deals with it.
      }
    }
    return out;
  }

  async #load(): Promise<void> {
    for (const id of await this.#spool.ids()) {
      try {
        const loaded = await this.#spool.load(id);
        const entry = entryFrom(loaded.envelope, loaded.headerLength);
        for (const record of loaded.records) replay(entry, record);
        this.#entries.set(id, entry);
        if (this.#isDone(entry)) await this.#finish(entry);
      } catch (error) {
        if (RelayError.isInstance(error) && error.code === 'ERR_RELAY_SPOOL_CORRUPT') {
          this.#logger.error({ id, err: error }, 'damaged queue file moved to corrupt/');
          await this.#spool.quarantine(id);
          continue;
        }
        throw error;
      }
    }
  }





  // ---------------------------------------------------------------------------
  // Enqueue

  /**
   * Puts a message in the queue. Resolves with its queue ID once the message
   * and its envelope are on disk (file and folder fsynced): only then may an
   * SMTP server answer 250.
   */
  async enqueue(envelope: QueueEnvelope, body: QueueBody): Promise<{ readonly id: string }> {
    return this.#enqueue(envelope, body, false);
  }

  async #enqueue(envelope: QueueEnvelope, body: QueueBody, notification: boolean): Promise<{ readonly id: string }> {
    if (this.#closed) throw new RelayError('ERR_RELAY_CLOSED', 'the relay is closed');
    const recipients = envelope.to.map(toRecipient);
    const maxRecipients = this.#options.maxRecipients ?? relayDefaults.maxRecipients;
    if (recipients.length === 0) throw new RelayError('ERR_RELAY_INVALID_MESSAGE', 'a message needs at least one recipient');
    if (recipients.length > maxRecipients) throw new RelayError('ERR_RELAY_INVALID_MESSAGE', `more than ${maxRecipients} recipients`);
    for (const r of [...recipients.map((x) => x.address), ...(envelope.from === '' ? [] : [envelope.from])]) {
      if (!/^[^\s@<>]+@[^\s@<>]+$/u.test(r) || /[\0\r\n]/.test(r)) throw new RelayError('ERR_RELAY_INVALID_MESSAGE', `invalid address ${JSON.stringify(r)}`);
    }
    const now = this.#clock.now();
    const id = newId(now);
    const env: Omit<EnvelopeRecord, 'size'> = {
      t: 'env',
      v: 1,
      id,
      from: envelope.from,
      rcpt: recipients.map((r) => ({
        a: r.address,
        ...(r.orcpt !== undefined ? { o: r.orcpt } : {}),
        ...(r.notify !== undefined ? { n: r.notify === 'NEVER' ? ['NEVER'] : [...r.notify] } : {}),
      })),
      ...(envelope.dsn !== undefined ? { dsn: envelope.dsn } : {}),
      arrival: now,
      ...(envelope.smtputf8 === true ? { smtputf8: true } : {}),
      ...(envelope.bodyType !== undefined ? { bodyType: envelope.bodyType } : {}),
      ...(envelope.requireTls === true ? { requireTls: true } : {}),
      ...(notification ? { notification: true } : {}),
    };
    const { headerLength, size } = await this.#spool.write(env, body, this.#options.maxMessageBytes ?? relayDefaults.maxMessageBytes);
    const entry = entryFrom({ ...env, size }, headerLength);
    this.#entries.set(id, entry);
    this.#emit({ type: 'queued', id, from: envelope.from, recipients: recipients.map((r) => r.address), size });
    if (!this.#closed && this.#options.start !== false) this.#due(entry);
    return { id };
  }

  // ---------------------------------------------------------------------------
  // Scheduling

  #due(entry: Entry): void {
    if (entry.held || entry.active || entry.deleted || this.#closed) return;
    if (entry.nextAttemptAt <= this.#clock.now()) {
      this.#attempt(entry);
      return;
    }
    entry.stamp++;
    this.#heap.push(entry.nextAttemptAt, `${entry.id}:${entry.stamp}`);
    this.#arm();
  }

  #schedule(): void {
    for (const entry of this.#entries.values()) this.#due(entry);
  }

  #arm(): void {
    if (this.#closed) return;
    const at = this.#heap.peekTime();
    if (at === undefined || at >= this.#timerAt) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = this.#clock.setTimeout(() => this.#wake(), Math.max(0, at - this.#clock.now()));
    this.#timer.unref?.();
  }

  #wake(): void {
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    for (let top = this.#heap.peekTime(); top !== undefined && top <= now; top = this.#heap.peekTime()) {
      const item = this.#heap.pop();
      if (item === undefined) break;
      const sep = item.id.lastIndexOf(':');
      const entry = this.#entries.get(item.id.slice(0, sep));
      if (entry === undefined || String(entry.stamp) !== item.id.slice(sep + 1)) continue;
      if (entry.held || entry.active || entry.deleted) continue;
      this.#attempt(entry);
    }
    this.#arm();
  }

  #attempt(entry: Entry): void {
    if (this.#closed) return;
    const pending = entry.rcpts.flatMap((r, i) => (FINAL.has(r.status) ? [] : [i]));
    entry.active = true;
    entry.stamp++;
    if (pending.length === 0) {
      // Only notices are owed (a restart after the last outcome was written).
      void this.#track(this.#afterAttempt(entry, []));
      return;
    }
    const byDomain = new Map<string, number[]>();
    for (const i of pending) {
      const domain = domainOf(entry.rcpts[i]?.address ?? '');
      const list = byDomain.get(domain) ?? [];
      list.push(i);
      byDomain.set(domain, list);
    }
    let left = byDomain.size;
    const results: { indexes: readonly number[]; outcomes: readonly RecipientOutcome[] | Error }[] = [];
    for (const [domain, indexes] of byDomain) {
      const job: Job = {
        entry,
        domain,
        indexes,
        done: (outcomes) => {
          results.push({ indexes, outcomes });
          if (--left === 0) void this.#track(this.#afterAttempt(entry, results));
        },
      };
      const key = this.#options.deliverer.destinationOf(domain);
      const dest = this.#destinations.get(key) ?? { active: 0, waiting: [] };
      this.#destinations.set(key, dest);
      dest.waiting.push(job);
    }
    this.#dispatch();
  }

  #dispatch(): void {
    const max = this.#options.maxConcurrency ?? relayDefaults.maxConcurrency;
    const perDest = this.#options.maxPerDestination ?? relayDefaults.maxPerDestination;
    for (const [key, dest] of this.#destinations) {
      while (dest.waiting.length > 0 && dest.active < perDest && this.#active < max && !this.#closed) {
        const job = dest.waiting.shift() as Job;
        dest.active++;
        this.#active++;
        void this.#track(
          this.#run(job).finally(() => {
            dest.active--;
            this.#active--;
            if (dest.active === 0 && dest.waiting.length === 0) this.#destinations.delete(key);
            this.#dispatch();
          }),
        );
      }
      if (this.#active >= max) break;
    }
  }

  async #run(job: Job): Promise<void> {
    const { entry } = job;
    const recipients = job.indexes.map((i) => {
      const r = entry.rcpts[i] as MutableRecipient;
      return { address: r.address, ...(r.orcpt !== undefined ? { orcpt: r.orcpt } : {}), ...(r.notify !== undefined ? { notify: r.notify } : {}) };
    });
    try {
      const outcomes = await this.#options.deliverer.deliver({
        queueId: entry.id,
        domain: job.domain,
        from: entry.env.from,
        recipients,
        ...(entry.env.dsn !== undefined ? { dsn: entry.env.dsn } : {}),
        size: entry.env.size,
        smtputf8: entry.env.smtputf8 === true,
        ...(entry.env.bodyType !== undefined ? { bodyType: entry.env.bodyType } : {}),
        requireTls: entry.env.requireTls === true,
        body: () => this.#spool.body(entry.id, entry.headerLength, entry.env.size),
        signal: this.#abort.signal,
      });
      // Record the outcome durably before anything else: a delivered recipient is never tried again.
      const now = this.#clock.now();
      const records: SpoolRecord[] = [];
      const groups = new Map<string, { outcome: RecipientOutcome; indexes: number[] }>();
      job.indexes.forEach((index, k) => {
        const outcome = outcomes.find((o) => o.address === recipients[k]?.address) ?? outcomes[k];
        if (outcome === undefined) return;
        const key = JSON.stringify([outcome.status, outcome.reply, outcome.remoteMta ?? null, outcome.dsnPassedOn ?? null]);
        const group = groups.get(key) ?? { outcome, indexes: [] };
        group.indexes.push(index);
        groups.set(key, group);
      });
      for (const { outcome, indexes } of groups.values()) {
        records.push({
          t: 'res',
          at: now,
          r: indexes,
          s: outcome.status,
          reply: outcome.reply,
          ...(outcome.remoteMta !== undefined ? { mta: outcome.remoteMta } : {}),
          ...(outcome.dsnPassedOn !== undefined ? { dsn: outcome.dsnPassedOn } : {}),
        });
      }
      // When these outcomes finish the message (every recipient delivered, no notice owed), the file is
      // removed next: writing and syncing them first would only cost an fsync. A crash before the
      // removal repeats this one attempt (the in-flight attempt is at-least-once); a crash after it
      // loses nothing.
      const finishes = this.#completes(entry, job.indexes, records);
      if (!finishes) await this.#spool.append(entry.id, records);
      for (const record of records) {
        replay(entry, record);
        if (record.t === 'res') {
          this.#emit({ type: record.s, id: entry.id, recipients: record.r.map((i) => entry.rcpts[i]?.address ?? ''), reply: record.reply, ...(record.mta !== undefined ? { remoteMta: record.mta } : {}) });
        }
      }
      job.done(outcomes);
    } catch (error) {
      this.#logger.error({ id: entry.id, err: error }, 'delivery attempt failed');
      job.done(error instanceof Error ? error : new Error(String(error)));
    }
  }

  async #afterAttempt(entry: Entry, results: readonly { indexes: readonly number[]; outcomes: readonly RecipientOutcome[] | Error }[]): Promise<void> {
    try {
      const now = this.#clock.now();
      // Jobs cancelled by close() never ran: no attempt to count, no backoff.
      if (results.length > 0 && results.every((r) => RelayError.isInstance(r.outcomes) && r.outcomes.code === 'ERR_RELAY_CLOSED')) return;
      // An attempt that threw (a bug, a full disk) leaves its recipients as they were: they are retried after the backoff.
      const lifetime = entry.env.notification === true ? this.#retry.maxNotificationLifetimeMs : this.#retry.maxQueueLifetimeMs;
      const pending = entry.rcpts.flatMap((r, i) => (FINAL.has(r.status) ? [] : [i]));
      if (pending.length > 0 && now - entry.env.arrival >= lifetime) {
        // Past the queue lifetime: what is still deferred bounces (RFC 3463 4.4.7, delivery time expired).
        const groups = new Map<string, number[]>();
        for (const i of pending) {
          const last = entry.rcpts[i]?.lastReply;
          const key = JSON.stringify(last ?? null);
          groups.set(key, [...(groups.get(key) ?? []), i]);
        }
        const records: SpoolRecord[] = [...groups].map(([key, indexes]) => {
          const last = JSON.parse(key) as ReplySummary | null;
          return {
            t: 'res',
            at: now,
            r: indexes,
            s: 'bounced',
            reply: { code: last?.code ?? 451, enhanced: '4.4.7', text: `message expired after ${Math.round((now - entry.env.arrival) / 3600_000)} hours in the queue${last ? `; last reply: ${last.code} ${last.enhanced ?? ''} ${last.text}` : ''}` },
          };
        });
        await this.#spool.append(entry.id, records);
        for (const r of records) replay(entry, r);
        this.#emit({ type: 'expired', id: entry.id, recipients: pending.map((i) => entry.rcpts[i]?.address ?? '') });
      }
      await this.#notify(entry, now);
      if (this.#isDone(entry)) {
        await this.#finish(entry);
        return;
      }
      const still = entry.rcpts.some((r) => !FINAL.has(r.status));
      if (still) {
        const at = now + backoffDelay(entry.attempts + 1, this.#retry, this.#options.random);
        await this.#spool.append(entry.id, [{ t: 'next', at }]);
        replay(entry, { t: 'next', at });
      }
    } catch (error) {
      this.#logger.error({ id: entry.id, err: error }, 'could not record the end of an attempt');
      entry.nextAttemptAt = this.#clock.now() + this.#retry.minBackoffMs;
    } finally {
      entry.active = false;
      if (!entry.deleted && this.#entries.has(entry.id)) this.#due(entry);
      this.#checkIdle();
    }
  }

  /** Sends the notices owed: failures, delays, and "relayed" for NOTIFY=SUCCESS to a next hop without DSN. */
  async #notify(entry: Entry, now: number): Promise<void> {
    const nullSender = entry.env.from === '' || entry.env.notification === true;
    const delayDefault = this.#retry.delayWarningMs > 0;
    const kinds: DsnKind[] = ['failure', 'success', 'delay'];
    for (const kind of kinds) {
      const due = entry.rcpts.flatMap((r, i) => {
        if (r.noted.has(kind)) return [];
        if (kind === 'failure' && r.status !== 'bounced') return [];
        if (kind === 'success' && !(r.status === 'delivered' && r.dsnPassedOn !== true && notifyWants(r.notify, 'success', false))) return [];
        if (kind === 'delay' && !(r.status === 'deferred' && delayDefault && now - entry.env.arrival >= this.#retry.delayWarningMs && notifyWants(r.notify, 'delay', delayDefault))) return [];
        return [i];
      });
      if (due.length === 0) continue;
      const wanted = due.filter((i) => notifyWants(entry.rcpts[i]?.notify, kind, delayDefault));
      let notice: string | undefined;
      if (!nullSender && wanted.length > 0) {
        notice = (await this.#sendNotice(entry, kind, wanted, now)).id;
      } else if (nullSender && kind === 'failure') {
        this.#logger.warn({ id: entry.id }, 'a notification could not be delivered; it is dropped, never bounced');
      }
      const record: SpoolRecord = { t: 'note', k: kind, r: due };
      await this.#spool.append(entry.id, [record]);
      replay(entry, record);
      if (notice !== undefined) this.#emit({ type: 'notified', id: entry.id, kind, notice, recipients: wanted.map((i) => entry.rcpts[i]?.address ?? '') });
    }
  }

  async #sendNotice(entry: Entry, kind: DsnKind, indexes: readonly number[], now: number): Promise<{ id: string }> {
    const limit = this.#options.bounceSizeLimit ?? relayDefaults.bounceSizeLimit;
    const wantFull = entry.env.dsn?.ret !== 'HDRS' && kind === 'failure';
    const readBytes = wantFull && entry.env.size <= limit ? entry.env.size : Math.min(entry.env.size, 64 * 1024);
    const chunks: Buffer[] = [];
    let got = 0;
    for await (const chunk of this.#spool.body(entry.id, entry.headerLength, entry.env.size)) {
      const buf = chunk as Buffer;
      chunks.push(buf.subarray(0, Math.max(0, readBytes - got)));
      got += buf.length;
      if (got >= readBytes) break;
    }
    const original = Buffer.concat(chunks);
    const lifetime = entry.env.notification === true ? this.#retry.maxNotificationLifetimeMs : this.#retry.maxQueueLifetimeMs;
    const recipients: DsnRecipient[] = indexes.map((i) => {
      const r = entry.rcpts[i] as MutableRecipient;
      const status = r.lastReply?.enhanced && /^[245]\.\d{1,3}\.\d{1,3}$/.test(r.lastReply.enhanced) ? r.lastReply.enhanced : kind === 'failure' ? '5.0.0' : kind === 'delay' ? '4.0.0' : '2.0.0';
      return {
        address: r.address,
        ...(r.orcpt !== undefined ? { orcpt: r.orcpt } : {}),
        action: kind === 'failure' ? 'failed' : kind === 'delay' ? 'delayed' : 'relayed',
        status: kind === 'failure' && status.startsWith('2') ? '5.0.0' : status,
        ...(r.remoteMta !== undefined ? { remoteMta: r.remoteMta } : {}),
        ...(r.lastReply !== undefined ? { reply: r.lastReply } : {}),
        ...(r.lastAttemptAt !== undefined ? { lastAttemptAt: r.lastAttemptAt } : {}),
        ...(kind === 'delay' ? { willRetryUntil: entry.env.arrival + lifetime } : {}),
      };
    });
    const message = buildDsn({
      kind,
      reportingMta: this.#options.hostname,
      to: entry.env.from,
      queueId: entry.id,
      arrivalDate: entry.env.arrival,
      now,
      ...(entry.env.dsn?.envid !== undefined ? { envid: entry.env.dsn.envid } : {}),
      recipients,
      original,
      originalComplete: wantFull && entry.env.size <= limit,
      ...(entry.env.dsn?.ret !== undefined ? { ret: entry.env.dsn.ret } : {}),
    });
    const smtputf8 = /\P{ASCII}/u.test(entry.env.from);
    return this.#enqueue({ from: '', to: [{ address: entry.env.from, notify: 'NEVER' }], ...(smtputf8 ? { smtputf8: true } : {}), bodyType: '8BITMIME' }, message, true);
  }

  /** Whether applying `records` (outcomes for `indexes`) leaves the message finished with nothing left to send. */
  #completes(entry: Entry, indexes: readonly number[], records: readonly SpoolRecord[]): boolean {
    const delivered = new Map<number, boolean | undefined>();
    for (const record of records) {
      if (record.t !== 'res' || record.s !== 'delivered') return false;
      for (const i of record.r) delivered.set(i, record.dsn);
    }
    if (indexes.some((i) => !delivered.has(i))) return false;
    return entry.rcpts.every((r, i) => (delivered.has(i) ? delivered.get(i) === true || !notifyWants(r.notify, 'success', false) : recipientDone(r)));
  }

  #isDone(entry: Entry): boolean {
    return entry.rcpts.every(recipientDone);
  }

  async #finish(entry: Entry): Promise<void> {
    await this.#spool.remove(entry.id);
    this.#entries.delete(entry.id);
    this.#emit({ type: 'removed', id: entry.id, reason: 'done' });
  }

  #track(promise: Promise<void>): Promise<void> {
    const tracked = promise.catch((error: unknown) => this.#logger.error({ err: error }, 'relay task failed'));
    this.#running.add(tracked);
    void tracked.finally(() => {
      this.#running.delete(tracked);
      this.#checkIdle();
    });
    return tracked;
  }

  #checkIdle(): void {
    if (this.#running.size > 0 || this.#active > 0) return;
    const now = this.#clock.now();
    for (const entry of this.#entries.values()) if (entry.active || (!entry.held && entry.nextAttemptAt <= now && !this.#closed && this.#options.start !== false)) return;
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves when nothing is being delivered and nothing is due now (tests; a graceful stop). */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.#idleWaiters.push(resolve);
      queueMicrotask(() => this.#checkIdle());
    });
  }

  #emit(event: RelayEvent): void {
    try {
      this.#options.onEvent?.(event);
    } catch (error) {
      this.#logger.error({ err: error }, 'onEvent threw');
    }
  }

  // ---------------------------------------------------------------------------
  // Inspection and control

  /** Every queued message, oldest first. */
  list(): QueueEntry[] {
    return [...this.#entries.values()].sort((a, b) => (a.id < b.id ? -1 : 1)).map((e) => view(e));
  }

  /** One message, or undefined. */
  show(id: string): QueueEntry | undefined {
    const entry = this.#entries.get(id);
    return entry === undefined ? undefined : view(entry);
  }



  #get(id: string): Entry {
    const entry = this.#entries.get(id);
    if (entry === undefined) throw new RelayError('ERR_RELAY_NO_SUCH_MESSAGE', `no queued message ${id}`);
    return entry;
  }

  /** Tries deferred messages now (all, or one), like `postqueue -f` / `-i`. Returns how many were scheduled. */
  flush(id?: string): number {
    const entries = id === undefined ? [...this.#entries.values()] : [this.#get(id)];
    let count = 0;
    const now = this.#clock.now();
    for (const entry of entries) {
      if (entry.held || entry.active || entry.deleted) continue;
      entry.nextAttemptAt = now;
      count++;
      if (this.#options.start !== false) this.#due(entry);
    }
    return count;
  }

  /** Keeps a message from being tried until `release` (`postsuper -h`). */
  async hold(id: string): Promise<void> {
    const entry = this.#get(id);
    if (entry.held) return;
    await this.#spool.append(id, [{ t: 'hold' }]);
    entry.held = true;
    entry.stamp++;
  }

  /** Lets a held message be tried again, at once (`postsuper -H`). */
  async release(id: string): Promise<void> {
    const entry = this.#get(id);
    if (!entry.held) return;
    await this.#spool.append(id, [{ t: 'release' }]);
    entry.held = false;
    entry.nextAttemptAt = this.#clock.now();
    if (this.#options.start !== false) this.#due(entry);
  }

  /** Removes a message without delivering or bouncing it (`postsuper -d`). An attempt in progress finishes but is not retried. */
  async delete(id: string): Promise<void> {
    const entry = this.#get(id);
    entry.deleted = true;
    entry.stamp++;
    await this.#spool.remove(id);
    this.#entries.delete(id);
    this.#emit({ type: 'removed', id, reason: 'deleted' });
  }

  #pollControl(): void {
    const every = this.#options.controlPollMs ?? relayDefaults.controlPollMs;
    if (every <= 0 || this.#closed) return;
    this.#controlTimer = this.#clock.setTimeout(() => {
      void this.applyControlRequests().finally(() => this.#pollControl());
    }, every);
    this.#controlTimer.unref?.();
  }

  /** Applies the requests `pigeonpost-queue` left in the control folder. Returns how many were applied. */
  async applyControlRequests(): Promise<number> {
    let applied = 0;
    const names = (await readdir(this.#spool.controlDir).catch(() => [] as string[])).filter((n) => n.endsWith('.json')).sort();
    for (const name of names) {
      const path = join(this.#spool.controlDir, name);
      try {
        const request = JSON.parse(await readFile(path, 'utf8')) as ControlRequest;
        await this.#apply(request);
        applied++;
      } catch (error) {
        this.#logger.warn({ err: error, request: name }, 'control request failed');
      } finally {
        await rm(path, { force: true });
      }
    }
    return applied;
  }

  async #apply(request: ControlRequest): Promise<void> {
    const ids = request.id === undefined ? undefined : [request.id];
    switch (request.op) {
      case 'flush':
        this.flush(request.id);
        break;
      case 'hold':
        for (const id of ids ?? [...this.#entries.keys()]) await this.hold(id);
        break;
      case 'release':
        for (const id of ids ?? [...this.#entries.keys()]) await this.release(id);
        break;
      case 'delete':
        for (const id of ids ?? []) await this.delete(id);
        break;
    }
  }

  /** Stops scheduling, waits for attempts in progress, closes the deliverer and releases the spool. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    if (this.#controlTimer !== undefined) this.#clock.clearTimeout(this.#controlTimer);
    for (const dest of this.#destinations.values()) {
      for (const job of dest.waiting.splice(0)) job.done(new RelayError('ERR_RELAY_CLOSED', 'the relay is closing'));
    }
    this.#abort.abort(new RelayError('ERR_RELAY_CLOSED', 'the relay is closing'));
    while (this.#running.size > 0) await Promise.all([...this.#running]);
    await this.#options.deliverer.close();
    await this.#spool.unlock();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A request file written by `pigeonpost-queue` for the running relay. */
export interface ControlRequest {
  readonly op: 'flush' | 'hold' | 'release' | 'delete';
  /** One message; absent: all (not for delete). */
  readonly id?: string;
}

/** Leaves a request for the relay that owns the spool; it applies it within `controlPollMs`. */
export async function writeControlRequest(spoolDir: string, request: ControlRequest): Promise<void> {
  const name = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}.json`;
  const dir = join(spoolDir, 'control');
  await writeFile(join(dir, `${name}.tmp`), JSON.stringify(request), { mode: 0o600 });
  await rename(join(dir, `${name}.tmp`), join(dir, name));
}
