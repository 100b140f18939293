/**
 * bench/smtp/server.mjs — one SMTP server in its own process, for bench/smtp/run.mjs.
 *
 *   node bench/smtp/server.mjs ours|baseline|smtp-server [--tls CERTS.json]
 *
 * Listens on 127.0.0.1:0, accepts every recipient and drains every body
 * (accept and discard), prints `{"port":N}` on stdout, and answers IPC
 * messages `{ stats: id }` with its CPU time (process.cpuUsage) and RSS.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const kind = process.argv[2];
const tlsIndex = process.argv.indexOf('--tls');
const certs = tlsIndex === -1 ? undefined : JSON.parse(readFileSync(process.argv[tlsIndex + 1], 'utf8'));

let port;
let stop;
if (kind === 'ours' || kind === 'baseline') {
  // baseline: another build of smtp-core (run.mjs --baseline DIR), for before/after figures in one run.
  const dist = kind === 'baseline' ? process.env.BENCH_SMTP_BASELINE_DIST : join(repo, 'packages/smtp-core/dist');
  const { createSmtpServer } = await import(join(dist, 'node.js'));
  const { createServerTlsOptions } = await import(join(repo, 'packages/wire/dist/node.js'));
  const server = createSmtpServer({
    hostname: 'bench.test',
    maxConnections: 10_000,
    maxConnectionsPerIp: 10_000,
    ...(certs ? { tls: createServerTlsOptions({ key: certs.key, cert: certs.cert }) } : {}),
    onRcptTo: async () => {},
    onData: async (_envelope, body) => {
      for await (const chunk of body) void chunk;
    },
  });
  port = (await server.listen({ host: '127.0.0.1', port: 0 })).port;
  stop = () => server.close({ timeoutMs: 1000 });
} else if (kind === 'smtp-server') {
  // nodemailer's smtp-server, from packages/smtp-core's devDependencies.
  const require = createRequire(join(repo, 'packages/smtp-core/package.json'));
  const { SMTPServer } = require('smtp-server');
  const server = new SMTPServer({
    name: 'bench.test',
    logger: false,
    disableReverseLookup: true,
    disabledCommands: certs ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(certs ? { key: certs.key, cert: certs.cert } : {}),
    onData(stream, _session, callback) {
      stream.on('data', () => {});
      stream.on('end', () => callback());
      stream.on('error', callback);
    },
  });
  server.on('error', () => {});
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  port = server.server.address().port;
  stop = () => new Promise((ok) => server.close(ok));
} else {
  throw new Error(`unknown server ${kind}`);
}

process.on('message', (msg) => {
  if (msg && msg.stats !== undefined) {
    const cpu = process.cpuUsage();
    process.send({ stats: msg.stats, cpuUs: cpu.user + cpu.system, rss: process.memoryUsage.rss(), maxRss: process.resourceUsage().maxRSS * 1024 });
  } else if (msg && msg.stop) {
    void Promise.race([stop(), new Promise((ok) => setTimeout(ok, 1500))]).then(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
// A clean exit on a signal, so that --cpu-prof writes its profile.
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
if (process.send) process.send({ port });
else console.log(JSON.stringify({ port })); // run by hand: stop with a signal
