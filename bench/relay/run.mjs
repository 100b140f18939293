#!/usr/bin/env node
/**
 * bench/relay: enqueue-to-accept throughput and latency of our MTA (smtp-core server → relay →
 * SmtpDeliverer) beside Postfix, on the same workload to the same receivers, in one run.
 *
 *   pnpm build && node bench/relay/run.mjs [--messages 10000] [--domains 100] [--sinks 4]
 *     [--sessions 10] [--size 1024] [--warmup 500] [--only ours|postfix] [--out bench/relay/results.json]
 *
 * Receivers: postfix's smtp-sink on 127.0.0.2, .3, … (one port). Both MTAs route every one of
 * the --domains domains to a sink with a transport map (Postfix: `transport_maps = texthash:`,
 * `d7.test smtp:[127.0.0.3]:PORT`; ours: `routing.transport`), since Postfix reads DNS only
 * through the system resolver. Load: one client built on our SmtpClient, --sessions connections
 * (no pipelining), the same messages to both (recipient `u<i>@d<i % domains>.test`). Both MTAs
 * fsync the queue file before 250 (Postfix's default; ours `fsync: true`). Throughput: messages
 * from the first injection until the sinks have accepted the last one (ours: relay events; Postfix:
 * `status=sent` lines in its maillog), over the elapsed time. Latency: enqueue-to-accept per
 * message (ours: relay events; Postfix: the `delay=` of each `status=sent` line, 10 ms resolution).
 * CPU: our process's cpuUsage(); Postfix: every process of its process group (the master's
 * cutime/cstime counts exited children). Not a test: never run in CI.
 */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { SmtpClient } = await import(join(repo, 'packages/smtp-core/dist/node.js'));
const { startPostfix, freePorts } = await import(join(repo, 'packages/testkit/dist/index.js'));

function parseArgs(argv) {
  const o = { messages: 10_000, domains: 100, sinks: 4, sessions: 10, size: 1024, warmup: 500, only: ['ours', 'postfix'], out: join(here, 'results.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--messages') o.messages = Number(argv[++i]);
    else if (a === '--domains') o.domains = Number(argv[++i]);
    else if (a === '--sinks') o.sinks = Number(argv[++i]);
    else if (a === '--sessions') o.sessions = Number(argv[++i]);
    else if (a === '--size') o.size = Number(argv[++i]);
    else if (a === '--warmup') o.warmup = Number(argv[++i]);
    else if (a === '--only') o.only = argv[++i].split(',');
    else if (a === '--out') o.out = resolve(argv[++i]);
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}
const opts = parseArgs(process.argv.slice(2));
const log = (...a) => process.stderr.write(`${a.join(' ')}\n`);

const children = new Set();
const cleanups = [];
function killAll() {
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

// ---------------------------------------------------------------------------
// Receivers

const [sinkPort] = await freePorts(1);
const sinkHosts = Array.from({ length: opts.sinks }, (_, i) => `127.0.0.${i + 2}`);
for (const host of sinkHosts) {
  const child = spawn('smtp-sink', ['-u', 'nobody', `${host}:${sinkPort}`, '512'], { stdio: 'ignore' });
  children.add(child);
}
await new Promise((r) => setTimeout(r, 300));
const routes = {};
for (let d = 0; d < opts.domains; d++) routes[`d${d}.test`] = { host: sinkHosts[d % sinkHosts.length], port: sinkPort };

// ---------------------------------------------------------------------------
// Load

function message(i) {
  const head = `From: load@bench.test\r\nTo: u${i}@d${i % opts.domains}.test\r\nSubject: relay bench ${i}\r\nMessage-ID: <${i}.${Date.now()}@bench.test>\r\n\r\n`;
  const line = 'The quick brown fox jumps over the lazy dog, again and again.\r\n';
  let body = '';
  while (head.length + body.length + line.length <= opts.size) body += line;
  return head + body;
}

async function load(port, count, offset) {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: opts.sessions }, async () => {
      const client = await SmtpClient.connect({ host: '127.0.0.1', port, secure: 'none', name: 'load.bench' });
      try {
        for (let i = next++; i < count; i = next++) {
          const n = offset + i;
          await client.send({ from: 'load@bench.test', to: [`u${n}@d${n % opts.domains}.test`] }, message(n));
        }
      } finally {
        await client.quit().catch(() => client.close());
      }
    }),
  );
  return performance.now() - start;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function procCpuMs(pgid) {
  // utime+stime of every live process in the group, plus the leader's cutime+cstime (exited children).
  const tick = 100; // USER_HZ
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) !== pgid) continue;
    total += Number(fields[11]) + Number(fields[12]);
    if (Number(name) === pgid) total += Number(fields[13]) + Number(fields[14]);
  }
  return (total * 1000) / tick;
}

// ---------------------------------------------------------------------------
// Ours

async function runOurs() {
  const spoolDir = mkdtempSync(join(os.tmpdir(), 'pigeonpost-relay-bench-'));
  const total = opts.warmup + opts.messages;
  const child = fork(join(here, 'mta.mjs'), [JSON.stringify({ spoolDir, routes, expect: total })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  const messages = [];
  const waiters = [];
  child.on('message', (m) => {
    messages.push(m);
    for (const w of waiters.splice(0)) w();
  });
  const waitFor = async (type) => {
    for (;;) {
      const found = messages.find((m) => m.type === type);
      if (found) {
        messages.splice(messages.indexOf(found), 1);
        return found;
      }
      await new Promise((r) => waiters.push(r));
    }
  };
  const { port } = await waitFor('ready');
  log(`ours: warm-up ${opts.warmup} messages`);
  await load(port, opts.warmup, 0);
  log(`ours: ${opts.messages} messages`);
  const cpuBefore = await (child.send({ type: 'report' }), waitFor('report'));
  const start = performance.now();
  const injectMs = await load(port, opts.messages, opts.warmup);
  await waitFor('done');
  const elapsedMs = performance.now() - start;
  const report = await (child.send({ type: 'report' }), waitFor('report'));
  child.send({ type: 'stop' });
  await new Promise((r) => child.once('exit', r));
  rmSync(spoolDir, { recursive: true, force: true });
  const lat = report.latencies.slice(opts.warmup).sort((a, b) => a - b);
  return {
    injectMs,
    elapsedMs,
    rate: (opts.messages / elapsedMs) * 1000,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    cpuMsPerMsg: (report.cpuMs - cpuBefore.cpuMs) / opts.messages,
    rssMb: report.maxRssMb,
  };
}

// ---------------------------------------------------------------------------
// Postfix

async function runPostfix() {
  const dir = mkdtempSync(join(os.tmpdir(), 'pf-bench-'));
  const transportFile = join(dir, 'transport');
  writeFileSync(transportFile, Object.entries(routes).map(([d, h]) => `${d} smtp:[${h.host}]:${h.port}\n`).join(''));
  const pf = await startPostfix({
    hostname: 'postfix.bench',
    mainCf: [`transport_maps = texthash:${transportFile}`, 'smtpd_client_connection_count_limit = 0', 'smtpd_client_message_rate_limit = 0', 'smtp_tls_security_level = none', 'in_flow_delay = 0'],
  });
  cleanups.push(() => pf.stop());
  const countSent = () => {
    const text = readFileSync(pf.logPath, 'utf8');
    const delays = [];
    for (const m of text.matchAll(/ delay=([\d.]+),.* status=sent /g)) delays.push(Number(m[1]) * 1000);
    return delays;
  };
  const waitSent = async (n) => {
    for (;;) {
      const d = countSent();
      if (d.length >= n) return d;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  log(`postfix: warm-up ${opts.warmup} messages`);
  await load(pf.ports.smtp, opts.warmup, 0);
  await waitSent(opts.warmup);
  log(`postfix: ${opts.messages} messages`);
  const cpuBefore = procCpuMs(pf.pid);
  const start = performance.now();
  const injectMs = await load(pf.ports.smtp, opts.messages, opts.warmup);
  const delays = await waitSent(opts.warmup + opts.messages);
  const elapsedMs = performance.now() - start;
  const cpuMs = procCpuMs(pf.pid) - cpuBefore;
  let rssKb = 0;
  await pf.stop();
  rmSync(dir, { recursive: true, force: true });
  const lat = delays.slice(opts.warmup).sort((a, b) => a - b);
  return { injectMs, elapsedMs, rate: (opts.messages / elapsedMs) * 1000, p50: percentile(lat, 50), p99: percentile(lat, 99), cpuMsPerMsg: cpuMs / opts.messages, rssMb: rssKb / 1024 };
}

// ---------------------------------------------------------------------------

const results = {};
try {
  if (opts.only.includes('postfix')) results.postfix = await runPostfix();
  if (opts.only.includes('ours')) results.ours = await runOurs();
} finally {
  for (const c of cleanups) await c().catch(() => undefined);
  killAll();
}

const fmt = (v, d = 0) => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(d));
const ratio = (better, ours, theirs) => (ours === undefined || theirs === undefined ? '–' : `${(better === 'higher' ? ours / theirs : theirs / ours).toFixed(2)}×`);
const o = results.ours;
const p = results.postfix;
const rows = [
  ['throughput, enqueue to accept [msg/s]', 'higher', o?.rate, p?.rate, 0],
  ['injection: SMTP into the MTA (load client) [ms]', 'lower', o?.injectMs, p?.injectMs, 0],
  ['latency p50, enqueue to accept [ms]', 'lower', o?.p50, p?.p50, 0],
  ['latency p99, enqueue to accept [ms]', 'lower', o?.p99, p?.p99, 0],
  ['MTA CPU per message [ms]', 'lower', o?.cpuMsPerMsg, p?.cpuMsPerMsg, 2],
];
const lines = [
  `| row | ours | Postfix | ratio (>1: ours better) |`,
  `| --- | --- | --- | --- |`,
  ...rows.map(([name, better, ov, pv, d]) => `| ${name} | ${fmt(ov, d)} | ${fmt(pv, d)} | ${ratio(better, ov, pv)} |`),
];
process.stdout.write(`${opts.messages} messages of ${opts.size} bytes to ${opts.domains} domains on ${opts.sinks} smtp-sinks, ${opts.sessions} SMTP sessions in\n\n${lines.join('\n')}\n`);
writeFileSync(opts.out, `${JSON.stringify({ options: opts, results, date: new Date().toISOString(), node: process.version, load: os.loadavg() }, null, 2)}\n`);
