import type { Readable } from 'node:stream';
import { MxError, mtaStsMatchesMx, type MtaStsPolicy, type MxResolver, type MtaStsResolver, type MxRoute } from '@pigeonpost/mx-resolver';
import { SmtpClientError, type RecipientResult, type SendResult, type SmtpClientLimits, type SmtpSecureMode } from '@pigeonpost/smtp-core';
import { SmtpClient } from '@pigeonpost/smtp-core/node';
import { PigeonpostError, silentLogger, type Clock, type Logger } from '@pigeonpost/wire';
import { systemClock } from '@pigeonpost/wire/node';
import { nextHopFor, type NextHop, type RoutingOptions } from './routing.js';
import type { ReplySummary } from './types.js';

/** One delivery attempt: a message's pending recipients in one domain. */
export interface DeliveryRequest {
  readonly queueId: string;
  /** The recipients' domain (lower case). */
  readonly domain: string;
  readonly from: string;
  readonly recipients: readonly { readonly address: string; readonly orcpt?: string; readonly notify?: 'NEVER' | readonly ('SUCCESS' | 'FAILURE' | 'DELAY')[] }[];
  readonly dsn?: { readonly ret?: 'FULL' | 'HDRS'; readonly envid?: string };
  readonly size: number;
  readonly smtputf8: boolean;
  readonly bodyType?: '7BIT' | '8BITMIME';
  readonly requireTls: boolean;
  /** A fresh stream of the message bytes (called once per connection tried). */
  body(): Readable;
  readonly signal?: AbortSignal;
}

/** What happened to one recipient in an attempt. */
export interface RecipientOutcome {
  readonly address: string;
  readonly status: 'delivered' | 'deferred' | 'bounced';
  readonly reply: ReplySummary;
  /** The host that answered (Remote-MTA). */
  readonly remoteMta?: string;
  /** The next hop offered DSN, so NOTIFY/ORCPT/RET/ENVID went on with the message. */
  readonly dsnPassedOn?: boolean;
}

/** How the queue hands messages on. `SmtpDeliverer` is the real one; tests may pass their own. */
export interface Deliverer {
  deliver(request: DeliveryRequest): Promise<readonly RecipientOutcome[]>;
  /** The destination key for concurrency limits: recipients with equal keys share a limit. */
  destinationOf(domain: string): string;
  close(): Promise<void>;
}

export interface SmtpDelivererOptions {
  /** MX and host resolution (`createMxResolver(...).mx`). */
  readonly mx: MxResolver;
  /** MTA-STS policies (`createMxResolver(...).mtaSts`); omit to ignore MTA-STS. */
  readonly mtaSts?: MtaStsResolver;
  /** This host's name: EHLO, and Remote-MTA in logs. */
  readonly hostname: string;
  readonly routing?: RoutingOptions;
  /** TLS towards MX hosts without a policy. Default `'opportunistic'` (STARTTLS when offered, certificate not verified: RFC 7435). */
  readonly tlsPolicy?: SmtpSecureMode;
  /** Extra trusted CAs (tests: the dev CA), for verified TLS. */
  readonly ca?: string | readonly string[];
  /** SMTP sessions tried per attempt (Postfix `smtp_mx_session_limit`). Default 2. */
  readonly maxSessions?: number;
  /** Keep an idle connection this long for the next message to the same place, in ms; 0 turns reuse off. Default 2,000 (Postfix `smtp_connection_cache_time_limit`). */
  readonly connectionIdleMs?: number;
  /** Messages sent over one connection at most. Default 100. */
  readonly maxMessagesPerConnection?: number;
  readonly limits?: Partial<SmtpClientLimits>;
  /** Clock for the SMTP client's timeouts. Default the system clock. */
  readonly clock?: Clock;
  readonly logger?: Logger;
  /** Called for every MTA-STS failure, in `enforce` (delivery refused) and `testing` (delivered, reported) mode. */
  readonly onMtaStsFailure?: (report: MtaStsFailureReport) => void;
}

/**
 * An MTA-STS policy was not met (RFC 8461 §5: enforce → the message is not
 * delivered there; testing → it is delivered anyway and the failure is only
 * reported). Feed these to logs or to RFC 8460 TLS reports.
 */
export interface MtaStsFailureReport {
  readonly domain: string;
  readonly mode: 'enforce' | 'testing';
  /** The MX host concerned, or undefined when no MX matched the policy at all. */
  readonly mx?: string;
  readonly reason: 'no-matching-mx' | 'mx-mismatch' | 'starttls-not-offered' | 'tls-failure';
  readonly detail: string;
}

export const smtpDelivererDefaults = Object.freeze({
  tlsPolicy: 'opportunistic',
  maxSessions: 2,
  connectionIdleMs: 2_000,
  maxMessagesPerConnection: 100,
});

interface Pooled {
  readonly client: SmtpClient;
  uses: number;
  timer?: ReturnType<Clock['setTimeout']>;
}

interface Failure {
  readonly reply: ReplySummary;
  readonly remoteMta?: string;
  readonly permanent: boolean;
}

function reply(code: number, enhanced: string, text: string): ReplySummary {
  return { code, enhanced, text };
}

function fromSmtpReply(r: { readonly code: number; readonly enhanced?: string | undefined; readonly lines: readonly string[] }): ReplySummary {
  return { code: r.code, ...(r.enhanced ? { enhanced: r.enhanced } : {}), text: r.lines.join(' ') };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Delivers over SMTP as an MTA does: next hop from the routing table or the
 * domain's MX hosts, each address in turn, at most `maxSessions` sessions,
 * STARTTLS as policy says (opportunistic; verified under MTA-STS enforce,
 * REQUIRETLS or a next hop that asks), connections kept a moment for the next
 * message to the same place.
 */
export class SmtpDeliverer implements Deliverer {
  readonly #options: SmtpDelivererOptions;
  readonly #pool = new Map<string, Pooled[]>();
  readonly #clock: Clock;
  readonly #logger: Logger;
  #closed = false;

  constructor(options: SmtpDelivererOptions) {
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#logger = options.logger ?? silentLogger;
  }

  destinationOf(domain: string): string {
    const hop = nextHopFor(domain, this.#options.routing ?? {});
    return hop === undefined ? domain : `${hop.mx === true ? '' : '['}${hop.host}${hop.mx === true ? '' : ']'}:${hop.port ?? this.#options.routing?.port ?? 25}`;
  }

  async deliver(request: DeliveryRequest): Promise<readonly RecipientOutcome[]> {
    const all = (status: RecipientOutcome['status'], r: ReplySummary, remoteMta?: string): RecipientOutcome[] =>
      request.recipients.map((rcpt) => ({ address: rcpt.address, status, reply: r, ...(remoteMta ? { remoteMta } : {}) }));
    const routing = this.#options.routing ?? {};
    const hop: NextHop | undefined = nextHopFor(request.domain, routing);
    const port = hop?.port ?? routing.port ?? 25;

    let route: MxRoute;
    try {
      route = hop === undefined ? await this.#options.mx.resolveMx(request.domain, { signal: request.signal }) : hop.mx === true ? await this.#options.mx.resolveMx(hop.host) : await this.#options.mx.resolveHost(hop.host);
    } catch (error) {
      if (MxError.isInstance(error)) {
        const smtp = error.reply?.smtp ?? { code: error.temporary ? 451 : 550, enhanced: error.temporary ? '4.4.3' : '5.4.4' };
        return all(error.temporary ? 'deferred' : 'bounced', reply(smtp.code, smtp.enhanced ?? '', error.message));
      }
      return all('deferred', reply(451, '4.4.3', `routing failed: ${errorText(error)}`));
    }

    // TLS policy: the next hop's, MTA-STS for MX delivery, REQUIRETLS.
    let secure: SmtpSecureMode = hop?.secure ?? this.#options.tlsPolicy ?? smtpDelivererDefaults.tlsPolicy;
    let verify = hop?.verifyCertificate ?? (secure === 'starttls' || secure === 'implicit');
    let hosts = route.hosts;
    let stsMode: 'enforce' | 'testing' | undefined;
    let stsPolicy: MtaStsPolicy | undefined;
    if (hop === undefined && this.#options.mtaSts !== undefined) {
      const sts = await this.#options.mtaSts.resolve(request.domain, { signal: request.signal });
      if (sts.policy !== undefined && sts.policy.mode !== 'none') {
        stsMode = sts.policy.mode;
        stsPolicy = sts.policy;
      }
      if (sts.enforce && sts.policy !== undefined) {
        const policy = sts.policy;
        hosts = hosts.filter((h) => mtaStsMatchesMx(policy, h.exchange));
        secure = 'starttls';
        verify = true;
        if (hosts.length === 0) {
          const detail = `MTA-STS policy of ${request.domain} (enforce) matches none of its MX hosts`;
          this.#report({ domain: request.domain, mode: 'enforce', reason: 'no-matching-mx', detail });
          return all('deferred', reply(451, '4.7.5', detail));
        }
      }
    }
    if (request.requireTls) {
      secure = secure === 'implicit' ? 'implicit' : 'starttls';
      verify = true;
    }

    const maxSessions = this.#options.maxSessions ?? smtpDelivererDefaults.maxSessions;
    let sessions = 0;
    const failures: Failure[] = [];
    for (const host of hosts) {
      for (const { address } of host.addresses) {
        if (sessions >= maxSessions) break;
        if (request.signal?.aborted === true) return all('deferred', reply(451, '4.3.0', 'delivery aborted'));
        const remoteMta = host.exchange;
        const where = `${host.exchange}[${address}]:${port}`;
        const key = `${address}|${port}|${secure}|${verify}|${host.exchange}|${hop?.auth?.username ?? ''}`;
        let client = this.#take(key);
        if (client === undefined) {
          try {
            client = await SmtpClient.connect({
              host: address,
              port,
              secure,
              name: this.#options.hostname,
              tls: { servername: host.exchange.startsWith('[') ? undefined : host.exchange, rejectUnauthorized: verify, ...(this.#options.ca !== undefined ? { ca: this.#options.ca as string | string[] } : {}) },
              ...(hop?.auth ? { auth: { username: hop.auth.username, password: hop.auth.password, ...(hop.allowPlaintextAuth ? { allowPlaintextAuth: true } : {}) } } : {}),
              clock: this.#clock,
              logger: this.#logger,
              ...(this.#options.limits ? { limits: this.#options.limits } : {}),
              ...(request.signal ? { signal: request.signal } : {}),
            });
          } catch (error) {
            const failure = this.#classifyConnectError(error, where, remoteMta);
            if (stsMode === 'enforce' && (failure.reply.enhanced === '4.7.4' || failure.reply.enhanced === '4.7.5')) {
              this.#report({ domain: request.domain, mode: 'enforce', mx: host.exchange, reason: failure.reply.enhanced === '4.7.4' ? 'starttls-not-offered' : 'tls-failure', detail: failure.reply.text });
            }
            if (failure.session) sessions++;
            failures.push(failure);
            continue;
          }
          sessions++;
        }
        let result: SendResult;
        try {
          result = await client.send(
            {
              from: request.from,
              to: request.recipients.map((r) => ({ address: r.address, ...(r.orcpt ? { orcpt: r.orcpt } : {}), ...(r.notify ? { notify: r.notify } : {}) })),
              ...(request.dsn ? { dsn: request.dsn } : {}),
              size: request.size,
              ...(request.bodyType ? { bodyType: request.bodyType } : {}),
              ...(request.smtputf8 ? { smtputf8: true } : {}),
            },
            request.body(),
          );
        } catch (error) {
          const outcome = this.#classifySendError(error, request, where, remoteMta);
          if (client.closed) client.close();
          else this.#release(key, client);
          if (outcome.kind === 'final') return outcome.outcomes;
          failures.push(outcome.failure);
          continue;
        }
        if (stsMode === 'testing' && stsPolicy !== undefined) {
          // Delivered as usual; say what enforce mode would have refused.
          if (!mtaStsMatchesMx(stsPolicy, host.exchange)) this.#report({ domain: request.domain, mode: 'testing', mx: host.exchange, reason: 'mx-mismatch', detail: `${host.exchange} is not listed in the MTA-STS policy of ${request.domain}` });
          else if (!client.secure) this.#report({ domain: request.domain, mode: 'testing', mx: host.exchange, reason: 'starttls-not-offered', detail: `${where} was used without TLS` });
        }
        this.#release(key, client);
        return result.recipients.map((r) => {
          const rcpt = r.dataReply ?? (r.accepted ? result.reply : r.rcptReply);
          const status = r.accepted ? 'delivered' : rcpt.code >= 500 ? 'bounced' : 'deferred';
          return { address: r.address, status, reply: fromSmtpReply(rcpt), remoteMta, dsnPassedOn: result.dsn } satisfies RecipientOutcome;
        });
      }
      if (sessions >= maxSessions) break;
    }
    const last = failures[failures.length - 1];
    if (last === undefined) return all('deferred', reply(451, '4.4.4', `no usable address for ${request.domain}`));
    // Every server that talked refused for good: bounce. Any temporary failure: try again later.
    const permanent = failures.every((f) => f.permanent);
    return all(permanent ? 'bounced' : 'deferred', last.reply, last.remoteMta);
  }

  #classifyConnectError(error: unknown, where: string, remoteMta: string): Failure & { session: boolean } {
    if (SmtpClientError.isInstance(error) && error.replyCode !== undefined) {
      // A greeting or EHLO refusal: a session happened.
      const r = reply(error.replyCode, error.enhancedCode ?? (error.replyCode >= 500 ? '5.0.0' : '4.0.0'), `host ${where} said: ${error.serverReply?.lines.join(' ') ?? error.message}`);
      // Only a refusal of the session itself (greeting, EHLO) can be permanent. AUTH failures defer, as
      // Postfix's smtp_sasl_auth_soft_bounce does: wrong credentials are our configuration, not the message's fault.
      const permanent = error.replyCode >= 500 && (error.code === 'ERR_SMTP_CLIENT_GREETING' || error.code === 'ERR_SMTP_CLIENT_HELO');
      return { reply: r, remoteMta, permanent, session: true };
    }
    if (SmtpClientError.isInstance(error) && error.code === 'ERR_SMTP_CLIENT_STARTTLS_UNAVAILABLE') {
      return { reply: reply(451, '4.7.4', `TLS is required but ${where} does not offer STARTTLS`), remoteMta, permanent: false, session: true };
    }
    if (PigeonpostError.isInstance(error) && error.code.startsWith('ERR_TLS')) {
      return { reply: reply(451, '4.7.5', `TLS with ${where} failed: ${error.message}`), remoteMta, permanent: false, session: true };
    }
    return { reply: reply(451, '4.4.1', `connect to ${where} failed: ${errorText(error)}`), remoteMta, permanent: false, session: false };
  }

  #classifySendError(
    error: unknown,
    request: DeliveryRequest,
    where: string,
    remoteMta: string,
  ): { kind: 'final'; outcomes: RecipientOutcome[] } | { kind: 'retry'; failure: Failure } {
    if (!SmtpClientError.isInstance(error)) {
      return { kind: 'retry', failure: { reply: reply(451, '4.4.2', `lost connection with ${where}: ${errorText(error)}`), remoteMta, permanent: false } };
    }
    const serverReply = error.serverReply ? fromSmtpReply(error.serverReply) : undefined;
    switch (error.code) {
      case 'ERR_SMTP_CLIENT_RECIPIENTS_REJECTED': {
        const results = (error.recipients ?? []) as readonly RecipientResult[];
        const outcomes = request.recipients.map((rcpt): RecipientOutcome => {
          const r = results.find((x) => x.address === rcpt.address);
          const rr = r ? fromSmtpReply(r.dataReply ?? r.rcptReply) : (serverReply ?? reply(451, '4.0.0', error.message));
          return { address: rcpt.address, status: rr.code >= 500 ? 'bounced' : 'deferred', reply: rr, remoteMta };
        });
        return { kind: 'final', outcomes };
      }
      case 'ERR_SMTP_CLIENT_MAIL_REJECTED':
      case 'ERR_SMTP_CLIENT_DATA_REJECTED': {
        const r = serverReply ?? reply(error.replyCode ?? 451, error.enhancedCode ?? '4.0.0', error.message);
        if (r.code >= 500) return { kind: 'final', outcomes: request.recipients.map((rcpt) => ({ address: rcpt.address, status: 'bounced', reply: r, remoteMta })) };
        return { kind: 'retry', failure: { reply: r, remoteMta, permanent: false } };
      }
      case 'ERR_SMTP_CLIENT_SIZE_EXCEEDED':
        return { kind: 'final', outcomes: request.recipients.map((rcpt) => ({ address: rcpt.address, status: 'bounced', reply: reply(552, '5.3.4', `message too big for ${where}: ${error.message}`), remoteMta })) };
      case 'ERR_SMTP_CLIENT_UTF8_UNSUPPORTED':
        return { kind: 'final', outcomes: request.recipients.map((rcpt) => ({ address: rcpt.address, status: 'bounced', reply: reply(553, '5.6.7', `${where} does not support SMTPUTF8, which this message needs`), remoteMta })) };
      default:
        return { kind: 'retry', failure: { reply: serverReply ?? reply(451, '4.4.2', `${where}: ${error.message}`), remoteMta, permanent: false } };
    }
  }

  #report(report: MtaStsFailureReport): void {
    this.#logger.warn({ mtaSts: report }, `MTA-STS (${report.mode}): ${report.detail}`);
    try {
      this.#options.onMtaStsFailure?.(report);
    } catch (error) {
      this.#logger.error({ err: error }, 'onMtaStsFailure threw');
    }
  }

  #take(key: string): SmtpClient | undefined {
    const list = this.#pool.get(key);
    while (list !== undefined && list.length > 0) {
      const entry = list.pop() as Pooled;
      if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
      if (!entry.client.closed) {
        entry.uses++;
        this.#inUse.set(entry.client, entry);
        return entry.client;
      }
    }
    return undefined;
  }

  readonly #inUse = new WeakMap<SmtpClient, Pooled>();

  #release(key: string, client: SmtpClient): void {
    const entry = this.#inUse.get(client) ?? { client, uses: 1 };
    this.#inUse.delete(client);
    const idleMs = this.#options.connectionIdleMs ?? smtpDelivererDefaults.connectionIdleMs;
    const maxUses = this.#options.maxMessagesPerConnection ?? smtpDelivererDefaults.maxMessagesPerConnection;
    if (this.#closed || client.closed || idleMs <= 0 || entry.uses >= maxUses) {
      void client.quit().catch(() => client.close());
      return;
    }
    const list = this.#pool.get(key) ?? [];
    this.#pool.set(key, list);
    entry.timer = this.#clock.setTimeout(() => {
      const at = list.indexOf(entry);
      if (at >= 0) list.splice(at, 1);
      void client.quit().catch(() => client.close());
    }, idleMs);
    entry.timer.unref?.();
    list.push(entry);
  }

  async close(): Promise<void> {
    this.#closed = true;
    const all: Promise<void>[] = [];
    for (const list of this.#pool.values()) {
      for (const entry of list.splice(0)) {
        if (entry.timer !== undefined) this.#clock.clearTimeout(entry.timer);
        all.push(entry.client.quit().catch(() => entry.client.close()));
      }
    }
    this.#pool.clear();
    await Promise.all(all);
  }
}
