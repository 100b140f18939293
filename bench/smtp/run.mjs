#!/usr/bin/env node
/**
 * bench/smtp: our SMTP server against nodemailer's smtp-server and Postfix's
 * smtp-sink, side by side in one run, reported as ratios.
 *
 *   pnpm build && node bench/smtp/run.mjs [--quick] [--reps 3] [--seconds 2]
 *     [--only ours,smtp-server,smtp-sink] [--rows source-s1-d,pipe-s1,...] [--sizes 1,100]
 *     [--depth 16] [--prof DIR] [--baseline DIST_DIR] [--out bench/smtp/results.json]
 *
 * Each server runs in its own child process (a fresh one per row), accepts every
 * recipient and drains every body. Load: Postfix's smtp-source (HELO, no
 * pipelining, no TLS) and a load client built on our SmtpClient (PIPELINING
 * across messages with `pipelineDepth`, STARTTLS, BDAT where offered) in its own
 * Node process (bench/smtp/load.mjs), whose CPU is reported apart. Per row: each server gets untimed
 * warm-up runs (which also size its timed runs to about --seconds each), then
 * --reps timed runs, interleaved across the servers; the median of the runs
 * is reported, for msg/s and each CPU figure separately. Server CPU comes from the
 * child's process.cpuUsage() (smtp-sink: /proc/PID/stat), peak RSS from its
 * maxRSS (smtp-sink: VmHWM). `--baseline DIR` adds a server "baseline": ours
 * from another build of packages/smtp-core/dist (a copy of it, with
 * node_modules/@pigeonpost/wire resolvable from DIR), for before/after figures
 * under the same load. A benchmark, never a test: not run in CI.
 */
import { execFile, fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { smtpSourceArgs } from './smtp-source.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { createDevCertificates } = await import(join(repo, 'packages/wire/dist/node.js'));

// ---------------------------------------------------------------------------
// Options

const ALL_ROWS = ['source-s1-d', 'source-s50-d', 'source-s1', 'source-s50', 'pipe-s1', 'pipe-s50', 'tls-s1', 'tls-s50', 'bdat-s1'];
const ALL_SERVERS = ['ours', 'smtp-server', 'smtp-sink'];

function parseArgs(argv) {
  const o = { reps: 3, seconds: 2, warmupSeconds: 1, depth: 16, servers: ALL_SERVERS, rows: ALL_ROWS, sizes: [1, 100], prof: undefined, out: join(here, 'results.json'), quick: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') Object.assign(o, { quick: true, reps: 1, seconds: 0.7, warmupSeconds: 0.3 });
    else if (a === '--reps') o.reps = Number(argv[++i]);
    else if (a === '--seconds') o.seconds = Number(argv[++i]);
    else if (a === '--depth') o.depth = Number(argv[++i]);
    else if (a === '--only') o.servers = argv[++i].split(',');
    else if (a === '--rows') o.rows = argv[++i].split(',');
    else if (a === '--sizes') o.sizes = argv[++i].split(',').map(Number);
    else if (a === '--prof') o.prof = resolve(argv[++i]);
    else if (a === '--baseline') o.baseline = resolve(argv[++i]);
    else if (a === '--out') o.out = resolve(argv[++i]);
    else throw new Error(`unknown option ${a}`);
  }
  for (const s of o.servers) if (!ALL_SERVERS.includes(s)) throw new Error(`unknown server ${s}`);
  if (o.baseline) o.servers = ['baseline', ...o.servers];
  for (const r of o.rows) if (!ALL_ROWS.includes(r)) throw new Error(`unknown row ${r}`);
  return o;
}
const opts = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------------------
// Children: every process we start is tracked and stopped by PID, also on failure.

const children = new Set();
function track(child) {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}
function killAll() {
  for (const child of children) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAll();
    process.exit(130);
  });
}

const tmp = mkdtempSync(join(os.tmpdir(), 'bench-smtp-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const CLK_TCK = 100; // getconf CLK_TCK on Linux

function freePort() {
  return new Promise((ok, fail) => {
    const s = net.createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

async function waitForPort(port, deadlineMs = 5000) {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const ok = await new Promise((res) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        res(true);
      });
      s.once('error', () => res(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} never opened`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Start one server; returns { port, stats(), stop() }. */
async function startServer(kind, { tlsFile, profDir }) {
  if (kind === 'smtp-sink') {
    const port = await freePort();
    const child = track(spawn('smtp-sink', ['-u', 'nobody', `127.0.0.1:${port}`, '256'], { stdio: ['ignore', 'ignore', 'inherit'] }));
    await waitForPort(port);
    const pid = child.pid;
    return {
      port,
      async stats() {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
        const status = readFileSync(`/proc/${pid}/status`, 'utf8');
        const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
        return { cpuUs: (ticks * 1e6) / CLK_TCK, maxRss: hwm };
      },
      async stop() {
        child.kill('SIGTERM');
        await exited(child, 2000);
      },
    };
  }
  const execArgv = profDir && kind === 'ours' ? ['--cpu-prof', '--cpu-prof-dir', profDir] : [];
  const args = [kind, ...(tlsFile ? ['--tls', tlsFile] : [])];
  const env = kind === 'baseline' ? { ...process.env, BENCH_SMTP_BASELINE_DIST: opts.baseline } : process.env;
  const child = track(fork(join(here, 'server.mjs'), args, { execArgv, env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
  const port = await new Promise((ok, fail) => {
    child.once('message', (m) => ok(m.port));
    child.once('exit', (code) => fail(new Error(`${kind} server exited (${code})`)));
  });
  let seq = 0;
  return {
    port,
    stats() {
      const id = ++seq;
      return new Promise((ok) => {
        const onMsg = (m) => {
          if (m.stats === id) {
            child.off('message', onMsg);
            ok(m);
          }
        };
        child.on('message', onMsg);
        child.send({ stats: id });
      });
    },
    async stop() {
      child.send({ stop: true });
      await exited(child, 3000);
    },
  };
}

async function exited(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((ok) => child.once('exit', ok));
  const t = setTimeout(() => {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }, ms);
  await done;
  clearTimeout(t);
}

// ---------------------------------------------------------------------------
// Load

/** The load client's process (bench/smtp/load.mjs), started once and kept warm across rows. */
async function startLoadClient() {
  const execArgv = opts.prof ? ['--cpu-prof', '--cpu-prof-dir', join(opts.prof, 'client')] : [];
  const child = track(fork(join(here, 'load.mjs'), [], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }));
  await new Promise((ok, fail) => {
    child.once('message', ok);
    child.once('exit', (code) => fail(new Error(`load client exited (${code})`)));
  });
  let seq = 0;
  return {
    pid: child.pid,
    async stop() {
      child.send({ stop: true });
      await exited(child, 3000); // a clean exit writes --cpu-prof's profile
    },
    run(params) {
      const id = ++seq;
      return new Promise((ok, fail) => {
        const onMsg = (m) => {
          if (m.done !== id) return;
          child.off('message', onMsg);
          if (m.error) fail(new Error(`load client: ${m.error}`));
          else ok(m);
        };
        child.on('message', onMsg);
        child.send({ run: { id, ...params } });
      });
    },
  };
}

/** Postfix smtp-source; resolves with the wall time in ms. */
function runSmtpSource(port, { sessions, perMessage, kb }, count) {
  const args = smtpSourceArgs({ port, sessions, perMessage, kb, count });
  return new Promise((ok, fail) => {
    const t0 = performance.now();
    const child = track(execFile('smtp-source', args, { timeout: 120_000 }, (err, _stdout, stderr) => {
      if (err) fail(new Error(`smtp-source ${args.join(' ')}: ${err.message} ${stderr}`));
      else ok(performance.now() - t0);
    }));
    void child;
  });
}

/**
 * Our load client (its own process): `sessions` SmtpClient connections sharing
 * `count` messages, `pipelineDepth` = --depth. DATA rows turn CHUNKING off, so
 * every server gets the same DATA protocol; `bdat` rows leave it on, and the
 * client uses BDAT where the server offers CHUNKING (ours), DATA elsewhere.
 */
async function runOurClient(load, port, { sessions, tls, kb, ca, chunking }, count, stats) {
  const r = await load.run({ port, sessions, tls, ca, kb, count, depth: opts.depth, chunking });
  if (stats) stats.clientCpuUs = r.cpuUs;
  return r.wallMs;
}

function rowSpec(row, kb) {
  const [kind, s, d] = row.split('-');
  const sessions = Number(s.slice(1));
  if (kind === 'source') return { kind, sessions, perMessage: d !== 'd', kb };
  return { kind, sessions, tls: kind === 'tls', chunking: kind === 'bdat', kb };
}

function rowLabel(row, kb) {
  const spec = rowSpec(row, kb);
  const size = `${kb} KB`;
  if (spec.kind === 'source') return `smtp-source -s ${spec.sessions}${spec.perMessage ? '' : ' -d'} (${spec.perMessage ? 'conn/msg' : 'conn/session'}), ${size}`;
  if (spec.kind === 'bdat') return `our client, ${spec.sessions} session${spec.sessions > 1 ? 's' : ''}, BDAT where offered (ours; others DATA), ${size}`;
  return `our client, ${spec.sessions} ${spec.tls ? 'STARTTLS ' : ''}pipelined session${spec.sessions > 1 ? 's' : ''} (DATA), ${size}`;
}

// ---------------------------------------------------------------------------
// One row: every server started (a fresh process each), warmed up, then the
// timed runs interleaved (ours, smtp-server, smtp-sink, ours, …) so that load
// from other work on the machine drifts over all servers alike.

async function measureRow(row, kb, ctx) {
  const spec = rowSpec(row, kb);
  const out = {};
  const live = [];
  try {
    for (const server of opts.servers) {
      if (server === 'smtp-sink' && spec.tls) {
        out[server] = { na: 'smtp-sink cannot do TLS' };
        continue;
      }
      const srv = await startServer(server, { tlsFile: spec.tls ? ctx.tlsFile : undefined, profDir: opts.prof });
      const load =
        spec.kind === 'source'
          ? (n) => runSmtpSource(srv.port, spec, n)
          : (n, stats) => runOurClient(ctx.load, srv.port, { ...spec, ca: ctx.certs.caCert }, n, stats);
      // Warm-up (untimed): JIT both sides, and size the timed runs.
      // Small first: smtp-server takes ~100 ms per connection with smtp-source's connection per message.
      let n = Math.max(spec.sessions * 2, 20);
      let ms = await load(n);
      while (ms < opts.warmupSeconds * 1000) {
        n = Math.ceil(n * Math.min(8, Math.max(2, (opts.warmupSeconds * 1000) / ms)));
        ms = await load(n);
      }
      const count = Math.max(spec.sessions * 4, Math.round((n / ms) * 1000 * opts.seconds));
      live.push({ server, srv, load, count, runs: [] });
    }
    for (let i = 0; i < opts.reps; i++) {
      for (const l of live) {
        const before = await l.srv.stats();
        const client = {};
        const wall = await l.load(l.count, client);
        const after = await l.srv.stats();
        l.runs.push({
          messages: l.count,
          seconds: wall / 1000,
          msgsPerSec: l.count / (wall / 1000),
          serverCpuUsPerMsg: (after.cpuUs - before.cpuUs) / l.count,
          // Our load client's own process (smtp-source's CPU is not measured).
          clientCpuUsPerMsg: client.clientCpuUs === undefined ? undefined : client.clientCpuUs / l.count,
        });
      }
    }
    for (const l of live) {
      // Each figure is its own median over the runs (a load spike on the shared machine moves one run, not the report).
      const median = (key) => {
        const values = l.runs.map((r) => r[key]).filter((v) => v !== undefined).sort((x, y) => x - y);
        return values.length === 0 ? undefined : values[Math.floor((values.length - 1) / 2)];
      };
      const end = await l.srv.stats();
      out[l.server] = {
        msgsPerSec: median('msgsPerSec'),
        serverCpuUsPerMsg: median('serverCpuUsPerMsg'),
        clientCpuUsPerMsg: median('clientCpuUsPerMsg'),
        peakRssBytes: end.maxRss,
        runs: l.runs,
      };
    }
    return out;
  } finally {
    for (const l of live) await l.srv.stop();
  }
}

// ---------------------------------------------------------------------------
// Main

const certs = await createDevCertificates({ hostnames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const tlsFile = join(tmp, 'certs.json');
writeFileSync(tlsFile, JSON.stringify({ key: certs.key, cert: certs.cert }));
const needsLoad = opts.rows.some((r) => !r.startsWith('source'));
const ctx = { certs, tlsFile, load: needsLoad ? await startLoadClient() : undefined };

const results = [];
try {
  for (const kb of opts.sizes) {
    for (const row of opts.rows) {
      const entry = { row, kb, label: rowLabel(row, kb), servers: {} };
      process.stderr.write(`${entry.label} … `);
      entry.servers = await measureRow(row, kb, ctx);
      process.stderr.write(opts.servers.map((k) => `${k} ${entry.servers[k].na ? 'n/a' : Math.round(entry.servers[k].msgsPerSec)}`).join(', ') + ' msg/s\n');
      const ours = entry.servers.ours?.msgsPerSec;
      entry.ratios = {
        oursOverSmtpServer: ours && entry.servers['smtp-server']?.msgsPerSec ? ours / entry.servers['smtp-server'].msgsPerSec : undefined,
        oursOverSmtpSink: ours && entry.servers['smtp-sink']?.msgsPerSec ? ours / entry.servers['smtp-sink'].msgsPerSec : undefined,
      };
      results.push(entry);
    }
  }
} finally {
  await ctx.load?.stop().catch(() => undefined);
  killAll();
}

// ---------------------------------------------------------------------------
// Report

const fmt = (v, d = 0) => (v === undefined ? 'n/a' : v.toFixed(d));
const cell = (r, f) => (r === undefined ? '—' : r.na ? 'n/a' : f(r));
const ratio = (v) => (v === undefined ? 'n/a' : `${v.toFixed(2)}×`);
const names = opts.servers;
const lines = [
  `| row | ${names.map((k) => `msg/s ${k}`).join(' | ')} | ours/smtp-server | ours/smtp-sink | server CPU µs/msg ${names.join(' / ')} | peak RSS MB ${names.join(' / ')} | load client CPU µs/msg |`,
  `| --- | ${names.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: | ---: |`,
];
for (const e of results) {
  const s = e.servers;
  lines.push(
    `| ${e.label} | ${names.map((k) => cell(s[k], (r) => fmt(r.msgsPerSec))).join(' | ')} | ${ratio(e.ratios.oursOverSmtpServer)} | ${ratio(e.ratios.oursOverSmtpSink)} | ` +
      `${names.map((k) => cell(s[k], (r) => fmt(r.serverCpuUsPerMsg))).join(' / ')} | ` +
      `${names.map((k) => cell(s[k], (r) => fmt(r.peakRssBytes / 2 ** 20, 1))).join(' / ')} | ` +
      `${e.row.startsWith('source') ? 'n/a (C)' : names.map((k) => cell(s[k], (r) => fmt(r.clientCpuUsPerMsg))).join(' / ')} |`,
  );
}
const table = lines.join('\n');
console.log(table);

const meta = {
  date: new Date().toISOString(),
  command: `node bench/smtp/run.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  node: process.version,
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  note: 'shared machine: 2 cores, other engineers\' work running; load generator and server compete for them',
  depth: opts.depth,
  reps: opts.reps,
  statistic: 'median of reps, for msg/s and each CPU figure separately',
  secondsPerRun: opts.seconds,
};
writeFileSync(opts.out, JSON.stringify({ meta, results }, null, 2) + '\n');
console.error(`wrote ${opts.out}`);
