// The relay end to end: MX hosts are smtp-core servers on 127.0.0.2, .3, …, the domains' MX records
// come from a real dnsmasq started here (see PEERS.md), and delivery goes through SmtpDeliverer and
// the SMTP client.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMxResolver } from '@pigeonpost/mx-resolver/node';
import { dnsmasqAvailable, startDnsmasq, type RunningDnsmasq } from '@pigeonpost/testkit';
import { Relay, SmtpDeliverer, type RelayEvent } from '../src/index.js';
import { startSinks, type Sinks } from './sinks.js';

const peer = dnsmasqAvailable();
let dns: RunningDnsmasq;
let sinks: Sinks;
let dir: string;

beforeAll(async () => {
  if (!peer.available) return;
  sinks = await startSinks({
    '127.0.0.2': { greet421: true },
    '127.0.0.3': { refuseByName: true },
  });
  dns = await startDnsmasq({
    zones: ['test'],
    records: [
      'mx-host=two.test,busy.two.test,10',
      'mx-host=two.test,good.two.test,20',
      'host-record=busy.two.test,127.0.0.2',
      'host-record=good.two.test,127.0.0.3',
      'mx-host=down.test,dead.down.test,10',
      'mx-host=down.test,good.two.test,20',
      'host-record=dead.down.test,127.0.0.4', // nothing listens there
      'mx-host=mixed.test,good.two.test,10',
      'mx-host=sender.test,good.two.test,10',
      'mx-host=allfail.test,dead.down.test,10',
      'mx-host=nullmx.test,.,0',
    ],
  });
  dir = await mkdtemp(join(tmpdir(), 'pigeonpost-relay-e2e-'));
});

afterAll(async () => {
  await sinks?.close();
  await dns?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function withRelay(name: string, options: Partial<Parameters<typeof Relay.open>[0]>, run: (relay: Relay, events: RelayEvent[]) => Promise<void>): Promise<void> {
  const resolver = createMxResolver({ servers: [dns.address], allowPrivateAddresses: true, families: [4], timeoutMs: 3000, tries: 1 });
  const deliverer = new SmtpDeliverer({ mx: resolver.mx, hostname: 'relay.test', routing: { port: sinks.port }, limits: { connectTimeoutMs: 2000 } });
  const events: RelayEvent[] = [];
  const relay = await Relay.open({ spoolDir: join(dir, name), deliverer, hostname: 'relay.test', onEvent: (e) => events.push(e), ...options });
  try {
    await run(relay, events);
  } finally {
    await relay.close();
  }
}

const MESSAGE = (to: string) => `From: alice@sender.test\r\nTo: ${to}\r\nSubject: relay test\r\nMessage-ID: <${Math.random()}@sender.test>\r\n\r\nHello over the relay.\r\n.leading dot line\r\n`;

describe.skipIf(!peer.available)(`relay end to end${peer.available ? '' : ` (skipped: ${peer.reason})`}`, () => {
  it('skips an MX that greets with 421 and delivers to the next one', async () => {
    await withRelay('421', {}, async (relay) => {
      const before = sinks.connections.get('127.0.0.2') ?? 0;
      await relay.enqueue({ from: 'alice@sender.test', to: ['bob@two.test'] }, MESSAGE('bob@two.test'));
      await relay.idle();
      expect(sinks.connections.get('127.0.0.2')).toBe(before + 1);
      const got = sinks.received.filter((r) => r.to.includes('bob@two.test'));
      expect(got).toHaveLength(1);
      expect(got[0]?.host).toBe('127.0.0.3');
      expect(got[0]?.body).toBe(MESSAGE('bob@two.test').replace(/Message-ID: <[^>]+>/, got[0]?.body.match(/Message-ID: <[^>]+>/)?.[0] ?? ''));
      expect(got[0]?.body).toContain('\r\n.leading dot line\r\n');
      expect(relay.list()).toEqual([]);
    });
  });

  it('goes past a host that is down', async () => {
    await withRelay('down', {}, async (relay) => {
      await relay.enqueue({ from: 'alice@sender.test', to: ['carol@down.test'] }, MESSAGE('carol@down.test'));
      await relay.idle();
      expect(sinks.received.filter((r) => r.to.includes('carol@down.test')).map((r) => r.host)).toEqual(['127.0.0.3']);
    });
  });

  it('delivers to a 2xx recipient and bounces a 5xx one next to it, the bounce going to the sender\'s MX', async () => {
    await withRelay('mixed', {}, async (relay, events) => {
      await relay.enqueue({ from: 'alice@sender.test', to: [{ address: 'good@mixed.test', notify: ['SUCCESS', 'FAILURE'] }, { address: 'bad@mixed.test', notify: ['FAILURE'] }], dsn: { envid: 'E2E-1', ret: 'HDRS' } }, MESSAGE('good@mixed.test'));
      await relay.idle();
      const delivered = sinks.received.filter((r) => r.to.includes('good@mixed.test'));
      expect(delivered).toHaveLength(1);
      expect(delivered[0]?.to).toEqual(['good@mixed.test']);
      // DSN parameters went on to a next hop that offers DSN.
      expect(delivered[0]?.params.envid).toBe('E2E-1');
      expect(delivered[0]?.params.ret).toBe('HDRS');
      expect(delivered[0]?.params.notify).toEqual([['SUCCESS', 'FAILURE']]);
      // The next hop offers DSN, so it reports the success itself: no "relayed" notice from us.
      expect(sinks.received.some((r) => r.from === '' && r.body.includes('Action: relayed'))).toBe(false);
      const bounce = sinks.received.find((r) => r.from === '' && r.to.includes('alice@sender.test') && r.body.includes('bad@mixed.test'));
      expect(bounce).toBeDefined();
      expect(bounce?.body).toContain('Action: failed');
      expect(bounce?.body).toContain('Status: 5.1.1');
      expect(bounce?.body).toContain('Remote-MTA: dns; good.two.test');
      expect(bounce?.body).toContain('Diagnostic-Code: smtp; 550 5.1.1 no such user bad@mixed.test');
      expect(bounce?.body).toContain('Original-Envelope-Id: E2E-1');
      expect(bounce?.body).toContain('Content-Type: text/rfc822-headers');
      expect(events.filter((e) => e.type === 'bounced').map((e) => e.type === 'bounced' && e.recipients)).toEqual([['bad@mixed.test']]);
      expect(relay.list()).toEqual([]);
    });
  });

  it('defers a 4xx recipient and delivers it on a later attempt', async () => {
    await withRelay('later', { minBackoffMs: 50, maxBackoffMs: 50, jitter: 0 }, async (relay) => {
      const { id } = await relay.enqueue({ from: 'alice@sender.test', to: ['later@mixed.test'] }, MESSAGE('later@mixed.test'));
      await relay.idle();
      const entry = relay.show(id);
      expect(entry?.recipients[0]?.status).toBe('deferred');
      expect(entry?.recipients[0]?.lastReply).toMatchObject({ code: 450, enhanced: '4.2.1' });
      expect(entry?.recipients[0]?.remoteMta).toBe('good.two.test');
    });
  });

  it('defers when every MX is down, and bounces for good past the queue lifetime', async () => {
    await withRelay('allfail', { maxQueueLifetimeMs: 0 }, async (relay) => {
      await relay.enqueue({ from: 'alice@sender.test', to: ['zed@allfail.test'] }, MESSAGE('zed@allfail.test'));
      await relay.idle();
      const bounce = sinks.received.find((r) => r.from === '' && r.body.includes('zed@allfail.test'));
      expect(bounce?.body).toContain('Status: 4.4.7');
      expect(bounce?.body).toMatch(/Diagnostic-Code: smtp; 451 4\.4\.7 message expired .*connect to dead\.down\.test\[127\.0\.0\.4\]/);
      expect(bounce?.body).toContain('Content-Type: message/rfc822');
    });
  });

  it('bounces a null-MX domain at once with 5.1.10', async () => {
    await withRelay('nullmx', {}, async (relay) => {
      await relay.enqueue({ from: 'alice@sender.test', to: ['x@nullmx.test'] }, MESSAGE('x@nullmx.test'));
      await relay.idle();
      const bounce = sinks.received.find((r) => r.from === '' && r.body.includes('x@nullmx.test'));
      expect(bounce?.body).toContain('Status: 5.1.10');
    });
  });

  it('reuses a connection for consecutive messages to one destination', async () => {
    await withRelay('reuse', { maxPerDestination: 1 }, async (relay) => {
      const before = sinks.connections.get('127.0.0.3') ?? 0;
      for (let i = 0; i < 5; i++) await relay.enqueue({ from: 'alice@sender.test', to: [`reuse${i}@mixed.test`] }, MESSAGE(`reuse${i}@mixed.test`));
      await relay.idle();
      expect(sinks.received.filter((r) => r.to.some((t) => t.startsWith('reuse'))).length).toBe(5);
      expect((sinks.connections.get('127.0.0.3') ?? 0) - before).toBeLessThan(5);
    });
  });
});
