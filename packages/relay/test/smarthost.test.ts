// A smarthost with AUTH (Postfix relayhost + smtp_sasl_password_maps), and a transport map entry:
// mail goes to the configured next hop, never to the recipient domain's MX (no DNS is asked at all).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMxResolver } from '@pigeonpost/mx-resolver/node';
import { startTestDnsServer, type TestDnsServer } from '@pigeonpost/mx-resolver/testing';
import { createSmtpServer, type SmtpServer } from '@pigeonpost/smtp-core/node';
import { Secret, type SaslBackend } from '@pigeonpost/wire';
import { Relay, SmtpDeliverer } from '../src/index.js';

const got: { via: string; user: string | undefined; to: readonly string[] }[] = [];
const servers: SmtpServer[] = [];
let smarthostPort = 0;
let transportPort = 0;
let dns: TestDnsServer;
let dir: string;

const backend: SaslBackend = {
  verifyPassword: ({ authcid, password }) => Promise.resolve(authcid === 'relay-user' && password.expose() === 's3cret'),
};

beforeAll(async () => {
  const smarthost = createSmtpServer({
    hostname: 'smarthost.test',
    submission: true,
    allowInsecureAuth: true, // loopback test without TLS
    auth: { mechanisms: ['PLAIN', 'LOGIN'], backend },
    onRcptTo: () => Promise.resolve(),
    onData: async (envelope, body, session) => {
      for await (const c of body) void c;
      got.push({ via: 'smarthost', user: session.user?.authcid, to: envelope.rcptTo.map((r) => r.address.address) });
      return { text: 'ok' };
    },
  });
  const special = createSmtpServer({
    hostname: 'special.test',
    onRcptTo: () => Promise.resolve(),
    onData: async (envelope, body) => {
      for await (const c of body) void c;
      got.push({ via: 'transport', user: undefined, to: envelope.rcptTo.map((r) => r.address.address) });
      return { text: 'ok' };
    },
  });
  servers.push(smarthost, special);
  smarthostPort = (await smarthost.listen({ host: '127.0.0.1', port: 0 })).port;
  transportPort = (await special.listen({ host: '127.0.0.1', port: 0 })).port;
  dns = await startTestDnsServer({ behaviour: () => 'servfail' }); // any DNS query would fail
  dir = await mkdtemp(join(tmpdir(), 'pigeonpost-relay-smarthost-'));
});

afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
  await dns?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('routing overrides', () => {
  it('sends through a smarthost with AUTH, and a transport entry to its own next hop, without DNS', async () => {
    const resolver = createMxResolver({ servers: [dns.address], allowPrivateAddresses: true, timeoutMs: 300, tries: 1 });
    const deliverer = new SmtpDeliverer({
      mx: resolver.mx,
      hostname: 'relay.test',
      tlsPolicy: 'none',
      routing: {
        transport: { 'special.test': { host: '127.0.0.1', port: transportPort } },
        relayHost: { host: '127.0.0.1', port: smarthostPort, auth: { username: 'relay-user', password: new Secret('s3cret') }, allowPlaintextAuth: true },
      },
    });
    const relay = await Relay.open({ spoolDir: dir, deliverer, hostname: 'relay.test' });
    try {
      await relay.enqueue({ from: 'a@origin.test', to: ['x@anywhere.example', 'y@special.test'] }, 'Subject: via\r\n\r\nbody\r\n');
      await relay.idle();
      expect(got.sort((a, b) => a.via.localeCompare(b.via))).toEqual([
        { via: 'smarthost', user: 'relay-user', to: ['x@anywhere.example'] },
        { via: 'transport', user: undefined, to: ['y@special.test'] },
      ]);
      expect(dns.queries).toEqual([]);
      expect(relay.list()).toEqual([]);
    } finally {
      await relay.close();
    }
  });

  it('defers, not bounces, when the smarthost refuses the credentials', async () => {
    const resolver = createMxResolver({ servers: [dns.address], allowPrivateAddresses: true });
    const deliverer = new SmtpDeliverer({
      mx: resolver.mx,
      hostname: 'relay.test',
      tlsPolicy: 'none',
      routing: { relayHost: { host: '127.0.0.1', port: smarthostPort, auth: { username: 'relay-user', password: new Secret('wrong') }, allowPlaintextAuth: true } },
    });
    const relay = await Relay.open({ spoolDir: join(dir, 'wrong'), deliverer, hostname: 'relay.test', minBackoffMs: 3_600_000 });
    try {
      const { id } = await relay.enqueue({ from: 'a@origin.test', to: ['z@anywhere.example'] }, 'Subject: via\r\n\r\nbody\r\n');
      await relay.idle();
      const state = relay.show(id)?.recipients[0];
      expect(state?.status).toBe('deferred');
      expect(state?.lastReply?.code).toBe(535);
    } finally {
      await relay.close();
    }
  });
});
