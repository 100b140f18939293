// The queue's logic with a scripted deliverer on a virtual clock: scheduling, backoff, lifetime,
// notifications, control operations and restarts. No network.
import { mkdtemp, readdir, readFile, rm, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { parseMessage } from '@pigeonpost/mime';
import { Relay, RelayError, relayDefaults, type Deliverer, type DeliveryRequest, type RecipientOutcome, type RelayEvent } from '../src/index.js';

type Script = (request: DeliveryRequest, attempt: number) => RecipientOutcome['status'] | RecipientOutcome[] | Promise<RecipientOutcome['status'] | RecipientOutcome[]>;

class ScriptedDeliverer implements Deliverer {
  readonly requests: { request: DeliveryRequest; body: string }[] = [];
  readonly attempts = new Map<string, number>();
  running = 0;
  maxRunning = 0;
  maxActive = new Map<string, number>();
  readonly #activeByDest = new Map<string, number>();
  constructor(readonly script: Script) {}
  destinationOf(domain: string): string {
    return domain;
  }
  async deliver(request: DeliveryRequest): Promise<RecipientOutcome[]> {
    const chunks: Buffer[] = [];
    for await (const c of request.body()) chunks.push(c as Buffer);
    this.requests.push({ request, body: Buffer.concat(chunks).toString() });
    const n = (this.attempts.get(request.queueId) ?? 0) + 1;
    this.attempts.set(request.queueId, n);
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    const d = (this.#activeByDest.get(request.domain) ?? 0) + 1;
    this.#activeByDest.set(request.domain, d);
    this.maxActive.set(request.domain, Math.max(this.maxActive.get(request.domain) ?? 0, d));
    try {
      const result = await this.script(request, n);
      if (Array.isArray(result)) return result;
      const code = result === 'delivered' ? 250 : result === 'deferred' ? 451 : 550;
      return request.recipients.map((r) => ({ address: r.address, status: result, reply: { code, enhanced: `${String(code)[0]}.0.0`, text: result }, remoteMta: `mx.${request.domain}` }));
    } finally {
      this.running--;
      this.#activeByDest.set(request.domain, (this.#activeByDest.get(request.domain) ?? 1) - 1);
    }
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

let dir: string;
let clock: VirtualClock;
let events: RelayEvent[];
const open: Relay[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pigeonpost-relay-'));
  clock = new VirtualClock(Date.UTC(2026, 10, 28, 12));
  events = [];
});
afterEach(async () => {
  for (const r of open.splice(0)) await r.close();
  await rm(dir, { recursive: true, force: true });
});

async function start(deliverer: Deliverer, options: Partial<Parameters<typeof Relay.open>[0]> = {}): Promise<Relay> {
  const relay = await Relay.open({ spoolDir: dir, deliverer, hostname: 'relay.test', clock, fsync: false, jitter: 0, onEvent: (e) => events.push(e), controlPollMs: 0, ...options });
  open.push(relay);
  return relay;
}

const MESSAGE = 'From: alice@sender.test\r\nTo: bob@dest.test\r\nSubject: hello\r\nMessage-ID: <m1@sender.test>\r\n\r\nBody line one.\r\n';

describe('enqueue and deliver', () => {
  it('writes the message durably, delivers it, and removes it', async () => {
    const deliverer = new ScriptedDeliverer(() => 'delivered');
    const relay = await start(deliverer);
    const { id } = await relay.enqueue({ from: 'alice@sender.test', to: ['bob@dest.test', 'carol@other.test'] }, MESSAGE);
    expect(id).toMatch(/^[0-9A-Z]{19}$/);
    await relay.idle();
    expect(deliverer.requests.map((r) => [r.request.domain, r.request.recipients.map((x) => x.address)]).sort()).toEqual([
      ['dest.test', ['bob@dest.test']],
      ['other.test', ['carol@other.test']],
    ]);
    expect(deliverer.requests[0]?.body).toBe(MESSAGE);
    expect(relay.list()).toEqual([]);
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
    expect(events.map((e) => e.type)).toEqual(['queued', 'delivered', 'delivered', 'removed']);
  });

  it('refuses what cannot be queued', async () => {
    const relay = await start(new ScriptedDeliverer(() => 'delivered'), { maxMessageBytes: 100, maxRecipients: 2 });
    const codes = async (p: Promise<unknown>): Promise<string | undefined> => p.then(() => undefined, (e: unknown) => (RelayError.isInstance(e) ? e.code : String(e)));
    expect(await codes(relay.enqueue({ from: 'a@b.test', to: [] }, 'x'))).toBe('ERR_RELAY_INVALID_MESSAGE');
    expect(await codes(relay.enqueue({ from: 'a@b.test', to: ['a@x.test', 'b@x.test', 'c@x.test'] }, 'x'))).toBe('ERR_RELAY_INVALID_MESSAGE');
    expect(await codes(relay.enqueue({ from: 'a@b.test', to: ['no-at-sign'] }, 'x'))).toBe('ERR_RELAY_INVALID_MESSAGE');
    expect(await codes(relay.enqueue({ from: 'a@b.test', to: ['x@y.test\r\nRCPT TO:<z@evil.test>'] }, 'x'))).toBe('ERR_RELAY_INVALID_MESSAGE');
    const big = await codes(relay.enqueue({ from: 'a@b.test', to: ['a@x.test'] }, 'x'.repeat(101)));
    expect(big).toBe('ERR_RELAY_MESSAGE_TOO_BIG');
    // Nothing half-written is left behind.
    expect(await readdir(join(dir, 'queue'))).toEqual([]);
    expect(await readdir(join(dir, 'tmp'))).toEqual([]);
    expect(relayDefaults.maxMessageBytes).toBe(10_240_000);
  });

  it('streams bodies from iterables', async () => {
    const deliverer = new ScriptedDeliverer(() => 'delivered');
    const relay = await start(deliverer);
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield await Promise.resolve(Buffer.from('Subject: streamed\r\n\r\n'));
      yield Buffer.from('part two\r\n');
    }
    await relay.enqueue({ from: 'a@b.test', to: ['x@y.test'] }, chunks());
    await relay.idle();
    expect(deliverer.requests[0]?.body).toBe('Subject: streamed\r\n\r\npart two\r\n');
    expect(deliverer.requests[0]?.request.size).toBe(31);
  });
});

describe('retries', () => {
  it('backs off exponentially from the minimum to the maximum', async () => {
    const deliverer = new ScriptedDeliverer((_r, n) => (n < 6 ? 'deferred' : 'delivered'));
    const relay = await start(deliverer, { minBackoffMs: 300_000, maxBackoffMs: 4_000_000 });
    const { id } = await relay.enqueue({ from: 'a@b.test', to: ['x@y.test'] }, MESSAGE);
    await relay.idle();
    const waits: number[] = [];
    for (let attempt = 1; attempt < 6; attempt++) {
      const entry = relay.show(id);
      expect(entry?.recipients[0]?.status).toBe('deferred');
      expect(entry?.recipients[0]?.lastReply?.code).toBe(451);
      const wait = (entry?.nextAttemptAt ?? 0) - clock.now();
      waits.push(wait);
      clock.advance(wait - 1);
      await relay.idle();
      expect(deliverer.attempts.get(id)).toBe(attempt); // not yet
      clock.advance(1);
      await relay.idle();
    }
    expect(waits).toEqual([300_000, 600_000, 1_200_000, 2_400_000, 4_000_000]);
    expect(relay.show(id)).toBeUndefined();
    expect(deliverer.attempts.get(id)).toBe(6);
  });

  it('flush() tries deferred messages at once', async () => {
    const deliverer = new ScriptedDeliverer((_r, n) => (n === 1 ? 'deferred' : 'delivered'));
    const relay = await start(deliverer);
    const { id } = await relay.enqueue({ from: 'a@b.test', to: ['x@y.test'] }, MESSAGE);
    await relay.idle();
    expect(relay.show(id)?.recipients[0]?.status).toBe('deferred');
    expect(relay.flush()).toBe(1);
    await relay.idle();
    expect(relay.show(id)).toBeUndefined();
  });

  it('never tries a delivered recipient again, only the deferred one', async () => {
    const deliverer = new ScriptedDeliverer((request, n) =>
      request.recipients.map((r) => ({
        address: r.address,
        status: r.address.startsWith('ok') || n > 1 ? 'delivered' : 'deferred',
        reply: { code: r.address.startsWith('ok') || n > 1 ? 250 : 451, text: 'x' },
      })),
    );
    const relay = await start(deliverer);
    const { id } = await relay.enqueue({ from: 'a@b.test', to: ['ok@y.test', 'later@y.test'] }, MESSAGE);
    await relay.idle();
    expect(relay.show(id)?.recipients.map((r) => r.status)).toEqual(['delivered', 'deferred']);
    relay.flush(id);
    await relay.idle();
    expect(deliverer.requests.map((r) => r.request.recipients.map((x) => x.address))).toEqual([['ok@y.test', 'later@y.test'], ['later@y.test']]);
  });

  it('bounces what is still deferred after the queue lifetime, with 4.4.7', async () => {
    const deliverer = new ScriptedDeliverer((request) => (request.from === '' ? 'delivered' : 'deferred'));
    const relay = await start(deliverer, { maxQueueLifetimeMs: 3_600_000, minBackoffMs: 1_000_000, maxBackoffMs: 1_000_000 });
    await relay.enqueue({ from: 'alice@sender.test', to: ['x@y.test'] }, MESSAGE);
    await relay.idle();
    for (let i = 0; i < 4; i++) {
      clock.advance(1_000_000);
      await relay.idle();
    }
    expect(events.some((e) => e.type === 'expired')).toBe(true);
    const bounce = deliverer.requests.find((r) => r.request.from === '');
    expect(bounce?.request.recipients.map((r) => r.address)).toEqual(['alice@sender.test']);
    expect(bounce?.body).toContain('Status: 4.4.7');
    expect(bounce?.body).toContain('Action: failed');
    expect(bounce?.body).toMatch(/Diagnostic-Code: smtp; 451 4\.4\.7 message expired after 1 hours/);
    expect(relay.list()).toEqual([]);
  });

  it('limits concurrency per destination', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const deliverer = new ScriptedDeliverer(async () => {
      await gate;
      return 'delivered' as const;
    });
    const relay = await start(deliverer, { maxPerDestination: 3, maxConcurrency: 5 });
    for (let i = 0; i < 10; i++) await relay.enqueue({ from: 'a@b.test', to: [`r${i}@busy.test`] }, MESSAGE);
    await relay.enqueue({ from: 'a@b.test', to: ['r@other.test'] }, MESSAGE);
    // Three to busy.test (its limit) and one to other.test are running; the rest wait for a slot.
    await expect.poll(() => deliverer.running, { timeout: 5000 }).toBe(4);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(deliverer.running).toBe(4);
    release();
    await relay.idle();
    expect(deliverer.maxActive.get('busy.test')).toBe(3);
    expect(deliverer.maxRunning).toBe(4);
    expect(relay.list()).toEqual([]);
  });
});

describe('notifications (RFC 3464)', () => {
  it('bounces a failed recipient to the sender, once, as a multipart/report, and never bounces a bounce', async () => {
    const deliverer = new ScriptedDeliverer((request) => (request.from === '' ? 'bounced' : request.recipients.map((r) => ({ address: r.address, status: r.address.startsWith('bad') ? 'bounced' : 'delivered', reply: r.address.startsWith('bad') ? { code: 550, enhanced: '5.1.1', text: 'no such user' } : { code: 250, text: 'ok' }, remoteMta: 'mx.y.test', dsnPassedOn: true }))));
    const relay = await start(deliverer);
    await relay.enqueue({ from: 'alice@sender.test', to: ['good@y.test', { address: 'bad@y.test', orcpt: 'bad@y.test' }], dsn: { envid: 'ENV-1', ret: 'FULL' } }, MESSAGE);
    await relay.idle();
    const bounces = deliverer.requests.filter((r) => r.request.from === '');
    expect(bounces).toHaveLength(1);
    const bounce = bounces[0];
    expect(bounce?.request.recipients).toEqual([{ address: 'alice@sender.test', notify: 'NEVER' }]);
    // Our MIME parser sees the three parts of a multipart/report, the last an embedded message.
    const structure = parseMessage(Buffer.from(bounce?.body ?? ''));
    expect([structure.root.type?.toLowerCase(), structure.root.subtype?.toLowerCase()]).toEqual(['multipart', 'report']);
    expect(structure.root.children?.map((c) => `${c.type ?? ''}/${c.subtype ?? ''}`.toLowerCase())).toEqual(['text/plain', 'message/delivery-status', 'message/rfc822']);
    expect(structure.root.children?.[2]?.message).toBeDefined();
    const text = bounce?.body ?? '';
    expect(text).toContain('Content-Type: multipart/report; report-type=delivery-status;');
    expect(text).toContain('Reporting-MTA: dns; relay.test');
    expect(text).toContain('Original-Envelope-Id: ENV-1');
    expect(text).toContain('Final-Recipient: rfc822; bad@y.test');
    expect(text).toContain('Original-Recipient: rfc822; bad@y.test');
    expect(text).toContain('Status: 5.1.1');
    expect(text).toContain('Remote-MTA: dns; mx.y.test');
    expect(text).toContain('Diagnostic-Code: smtp; 550 5.1.1 no such user');
    expect(text).not.toContain('good@y.test');
    expect(text).toContain('Content-Type: message/rfc822');
    expect(text).toContain('Body line one.');
    // The bounce itself failed: it is dropped, not bounced.
    expect(relay.list()).toEqual([]);
    expect(events.filter((e) => e.type === 'notified')).toHaveLength(1);
  });

  it('returns only the header for RET=HDRS or a message over the bounce size limit', async () => {
    const deliverer = new ScriptedDeliverer((request) => (request.from === '' ? 'delivered' : 'bounced'));
    const relay = await start(deliverer, { bounceSizeLimit: 200 });
    await relay.enqueue({ from: 'a@sender.test', to: ['x@y.test'], dsn: { ret: 'HDRS' } }, MESSAGE);
    await relay.enqueue({ from: 'a@sender.test', to: ['x@y.test'] }, `${MESSAGE}${'filler line\r\n'.repeat(50)}`);
    await relay.idle();
    const bounces = deliverer.requests.filter((r) => r.request.from === '');
    expect(bounces).toHaveLength(2);
    for (const b of bounces) {
      expect(b.body).toContain('Content-Type: text/rfc822-headers');
      expect(b.body).toContain('Subject: hello');
      expect(b.body).not.toContain('Body line one.');
    }
  });

  it('honours NOTIFY: NEVER sends nothing, SUCCESS reports relaying to a hop without DSN, DELAY warns once', async () => {
    const deliverer = new ScriptedDeliverer((request, n) =>
      request.from === ''
        ? 'delivered'
        : request.recipients.map((r) => ({
            address: r.address,
            status: r.address.startsWith('never') ? 'bounced' : r.address.startsWith('slow') && n < 3 ? 'deferred' : 'delivered',
            reply: { code: r.address.startsWith('never') ? 550 : 250, text: 'x' },
            dsnPassedOn: false,
          })),
    );
    const relay = await start(deliverer, { delayWarningMs: 200_000, minBackoffMs: 300_000 });
    await relay.enqueue({ from: 'a@sender.test', to: [{ address: 'never@y.test', notify: 'NEVER' }, { address: 'win@y.test', notify: ['SUCCESS'] }] }, MESSAGE);
    await relay.enqueue({ from: 'a@sender.test', to: [{ address: 'slow@z.test', notify: ['DELAY', 'FAILURE'] }] }, MESSAGE);
    await relay.idle();
    clock.advance(300_000);
    await relay.idle();
    clock.advance(600_000);
    await relay.idle();
    const notices = deliverer.requests.filter((r) => r.request.from === '').map((r) => r.body);
    expect(notices.filter((b) => b.includes('Action: relayed'))).toHaveLength(1);
    expect(notices.find((b) => b.includes('Action: relayed'))).toContain('Final-Recipient: rfc822; win@y.test');
    expect(notices.filter((b) => b.includes('Action: delayed'))).toHaveLength(1);
    expect(notices.find((b) => b.includes('Action: delayed'))).toContain('Will-Retry-Until:');
    expect(notices.some((b) => b.includes('never@y.test'))).toBe(false);
    expect(relay.list()).toEqual([]);
  });
});

describe('control and restarts', () => {
  it('hold, release and delete', async () => {
    const deliverer = new ScriptedDeliverer(() => 'deferred');
    const relay = await start(deliverer);
    const a = await relay.enqueue({ from: 'a@b.test', to: ['x@y.test'] }, MESSAGE);
    const b = await relay.enqueue({ from: 'a@b.test', to: ['x@y.test'] }, MESSAGE);
    await relay.idle();
    await relay.hold(a.id);
    expect(relay.show(a.id)?.held).toBe(true);
    clock.advance(10_000_000);
    await relay.idle();
    expect(deliverer.attempts.get(a.id)).toBe(1);
    expect(deliverer.attempts.get(b.id)).toBeGreaterThan(1);
    await relay.release(a.id);
    await relay.idle();
    expect(deliverer.attempts.get(a.id)).toBe(2);
    await relay.delete(b.id);
    expect(relay.list().map((e) => e.id)).toEqual([a.id]);
    await expect(relay.hold('NOSUCHID')).rejects.toMatchObject({ code: 'ERR_RELAY_NO_SUCH_MESSAGE' });
  });

  it('comes back after a restart with every recipient\'s state, a hold, and a torn last record cut off', async () => {
    const deliverer = new ScriptedDeliverer((request) => request.recipients.map((r) => ({ address: r.address, status: r.address.startsWith('ok') ? 'delivered' : 'deferred', reply: { code: r.address.startsWith('ok') ? 250 : 451, text: 'x' } })));
    const first = await start(deliverer);
    const { id } = await first.enqueue({ from: 'a@b.test', to: ['ok@y.test', 'later@y.test'] }, MESSAGE);
    const held = await first.enqueue({ from: 'a@b.test', to: ['later@z.test'] }, MESSAGE);
    await first.idle();
    await first.hold(held.id);
    await first.close();
    open.splice(open.indexOf(first), 1);
    await appendFile(join(dir, 'queue', id), '{"t":"res","at":1,"r":[1],"s":"deliv'); // a crash mid-append

    const second = await start(new ScriptedDeliverer(() => 'delivered'), { start: false });
    const entry = second.show(id);
    expect(entry?.recipients.map((r) => [r.address, r.status, r.attempts])).toEqual([
      ['ok@y.test', 'delivered', 1],
      ['later@y.test', 'deferred', 1],
    ]);
    expect(second.show(held.id)?.held).toBe(true);
    expect((await readFile(join(dir, 'queue', id), 'utf8')).endsWith('\n')).toBe(true);
  });

  it('refuses a second owner of the spool, and takes over one left by a dead process', async () => {
    await start(new ScriptedDeliverer(() => 'delivered'));
    await expect(start(new ScriptedDeliverer(() => 'delivered'))).rejects.toMatchObject({ code: 'ERR_RELAY_SPOOL_LOCKED' });
  });

  it('quarantines a damaged queue file instead of deleting it', async () => {
    const relay = await start(new ScriptedDeliverer(() => 'deferred'));
    const { id } = await relay.enqueue({ from: 'a@b.test', to: ['x@y.test'] }, MESSAGE);
    await relay.idle();
    await relay.close();
    open.splice(0);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'queue', id), 'garbage without an envelope');
    const again = await start(new ScriptedDeliverer(() => 'delivered'));
    expect(again.list()).toEqual([]);
    expect(await readdir(join(dir, 'corrupt'))).toEqual([id]);
  });
});
