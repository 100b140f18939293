// bench/relay's MTA under test: our SMTP server (smtp-core) whose onData enqueues into our relay,
// which routes every domain to a smtp-sink (transport map, as Postfix is configured) and delivers.
// Started by run.mjs with fork(); config as JSON in argv[2]; reports over IPC.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const repo = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const { createSmtpServer } = await import(join(repo, 'packages/smtp-core/dist/node.js'));
const { Relay, SmtpDeliverer } = await import(join(repo, 'packages/relay/dist/index.js'));
const { createMxResolver } = await import(join(repo, 'packages/mx-resolver/dist/node.js'));

const config = JSON.parse(process.argv[2]);
const transport = {};
for (const [domain, hop] of Object.entries(config.routes)) transport[domain] = { host: hop.host, port: hop.port };
const resolver = createMxResolver({ servers: ['127.0.0.1:1'], allowPrivateAddresses: true, families: [4] });
const deliverer = new SmtpDeliverer({ mx: resolver.mx, hostname: 'relay.bench', routing: { transport }, tlsPolicy: 'none' });

const queuedAt = new Map();
const latencies = [];
let delivered = 0;
let firstQueued = 0;
let lastDelivered = 0;
const relay = await Relay.open({
  spoolDir: config.spoolDir,
  deliverer,
  hostname: 'relay.bench',
  onEvent: (e) => {
    if (e.type === 'queued') {
      const t = performance.now();
      if (firstQueued === 0) firstQueued = t;
      queuedAt.set(e.id, t);
    } else if (e.type === 'delivered') {
      const t = performance.now();
      lastDelivered = t;
      delivered += e.recipients.length;
      latencies.push(t - (queuedAt.get(e.id) ?? t));
      if (delivered >= config.expect) process.send?.({ type: 'done' });
    }
  },
});
const server = createSmtpServer({
  hostname: 'relay.bench',
  onRcptTo: () => Promise.resolve(),
  onData: async (envelope, body) => {
    const { id } = await relay.enqueue({ from: envelope.mailFrom?.address ?? '', to: envelope.rcptTo.map((r) => r.address.address) }, body);
    return { text: `queued as ${id}` };
  },
});
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
process.on('message', async (m) => {
  if (m.type === 'report') {
    const cpu = process.cpuUsage();
    process.send?.({
      type: 'report',
      delivered,
      latencies,
      spanMs: lastDelivered - firstQueued,
      cpuMs: (cpu.user + cpu.system) / 1000,
      maxRssMb: process.resourceUsage().maxRSS / 1024,
    });
  } else if (m.type === 'stop') {
    await server.close();
    await relay.close();
    process.exit(0);
  }
});
process.send?.({ type: 'ready', port });
