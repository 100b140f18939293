#!/usr/bin/env node
/**
 * bench/pop3: our POP3 server (createPop3Server over the Maildir store) against
 * Dovecot 2.3's POP3 on the same Maildir, in one run.
 *
 *   pnpm build && node bench/pop3/run.mjs [--messages 10000] [--runs 3] [--listings 5] [--window 64]
 *     [--large-mb 32] [--only ours|dovecot] [--no-memory] [--keep] [--out FILE]
 *
 * Rows: LIST, UIDL, and RETR of every message (pipelined, --window commands in
 * flight) of a --messages Maildir, each in a logged-in session (LIST and UIDL
 * --listings times each, their median the run's figure); the process's
 * memory while one --large-mb message is RETR'd compared with a 1 MB one, and
 * the time of that RETR on both servers (after one untimed, --runs interleaved).
 * Both servers are driven by the same client (@pigeonpost/pop3-core's
 * Pop3Client, PIPELINING on both sides). Writes bench/pop3/results.json.
 * A benchmark, never a test: not run in CI.
 */
import { execFileSync, fork } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { cpSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { Pop3Client } = await import(join(repo, 'packages/pop3-core/dist/node.js'));
const { startDovecot } = await import(join(repo, 'packages/testkit/dist/index.js'));

function parseArgs(argv) {
  const o = { messages: 10_000, runs: 3, listings: 5, window: 64, largeMb: 32, only: undefined, keep: false, memory: true, out: join(here, 'results.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => argv[++i];
    if (a === '--messages') o.messages = Number(next());
    else if (a === '--runs') o.runs = Number(next());
    else if (a === '--window') o.window = Number(next());
    else if (a === '--listings') o.listings = Number(next());
    else if (a === '--large-mb') o.largeMb = Number(next());
    else if (a === '--only') o.only = next();
    else if (a === '--keep') o.keep = true;
    else if (a === '--no-memory') o.memory = false;
    else if (a === '--out') o.out = resolve(next());
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}
const opts = parseArgs(process.argv.slice(2));
const doOurs = opts.only !== 'dovecot';
const doDovecot = opts.only !== 'ours';
const log = (...args) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...args);
const now = () => performance.now();
const PASSWORD = 'bench-password';

// ---------------------------------------------------------------------------
// Data: realistic-ish messages with LF line ends (as Maildir stores them).

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}
const WORDS = 'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part'.split(' ');
function makeMessage(i, size) {
  const r = rng(i * 7919 + 1);
  const head = [
    `Return-Path: <sender${i % 97}@example.net>`,
    `Received: from mx${i % 5}.example.net (mx${i % 5}.example.net [192.0.2.${i % 250}]) by mail.example.org with ESMTPS id ${i.toString(36)}; Mon, 3 Jun 2024 10:00:00 +0000`,
    `From: Sender ${i % 97} <sender${i % 97}@example.net>`,
    `To: bench@example.org`,
    `Subject: Message number ${i} about ${WORDS[i % WORDS.length]}`,
    `Date: Mon, 3 Jun 2024 10:${String(i % 60).padStart(2, '0')}:00 +0000`,
    `Message-ID: <${i}.${i % 13}@example.net>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
  ];
  let body = '';
  while (body.length < size) {
    let line = '';
    while (line.length < 70) line += `${WORDS[Math.floor(r() * WORDS.length)]} `;
    // Some lines start with a dot: dot-stuffing on the wire.
    body += `${r() < 0.02 ? '.' : ''}${line.trimEnd()}\n`;
  }
  return Buffer.from(`${head.join('\n')}\n\n${body}`, 'utf8');
}
function virtualSize(buf) {
  let lf = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) if (i === 0 || buf[i - 1] !== 13) lf++;
  return buf.length + lf;
}

/** A Maildir written directly (files in cur/, a dovecot-uidlist), under `<root>/<user>/Maildir`. */
async function writeMaildir(root, user, bodies) {
  const maildir = join(root, user, 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) await mkdir(join(maildir, d), { recursive: true });
  const sec = Math.floor(Date.UTC(2024, 5, 1) / 1000);
  const names = [];
  let bytes = 0;
  for (let i = 0; i < bodies.length; i++) {
    const body = bodies[i];
    bytes += body.length;
    const base = `${sec + i}.M${(i * 37) % 1_000_000}P4242Q${i}.bench,S=${body.length},W=${virtualSize(body)}`;
    names.push(base);
    await writeFile(join(maildir, 'cur', `${base}:2,${i % 10 < 7 ? 'S' : ''}`), body);
  }
  let uidlist = `3 V${sec} N${bodies.length + 1} G${randomBytes(16).toString('hex')}\n`;
  for (let i = 0; i < bodies.length; i++) uidlist += `${i + 1} :${names[i]}\n`;
  await writeFile(join(maildir, 'dovecot-uidlist'), uidlist);
  return { maildir, bytes };
}

/** A copy for one side: hard links of the message files (same inodes, same page cache), fresh copies of the rest. */
function copyTree(from, to) {
  rmSync(to, { recursive: true, force: true });
  execFileSync('cp', ['-al', from, to]);
  const walk = (dir) => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      const st = statSync(p);
      if (st.isDirectory()) {
        if (f !== 'cur' && f !== 'new') walk(p);
      } else {
        rmSync(p);
        cpSync(join(from, p.slice(to.length)), p);
      }
    }
  };
  walk(to);
}

// ---------------------------------------------------------------------------
// The workload, the same for both servers.

async function session(port, user = 'bench') {
  return Pop3Client.connect({ host: '127.0.0.1', port, secure: 'none', auth: { username: user, password: PASSWORD, method: 'USER', allowPlaintextAuth: true }, utf8: false });
}

/** CPU time (ms) used so far by these processes: user, system (Linux /proc; 10 ms ticks), 0 when unreadable. */
function procCpu(pids) {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(fields[11]) * 10;
      system += Number(fields[12]) * 10;
    } catch {
      // Gone meanwhile.
    }
  }
  return { user, system };
}

/** `root` and every process below it (Dovecot's master forks its pop3 process per session). */
function processTree(root) {
  const parent = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const tree = new Set([root]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parent) if (!tree.has(pid) && tree.has(ppid)) grew = tree.add(pid) !== undefined;
  }
  return [...tree];
}

/** LIST, UIDL and RETR of every message, each timed; QUIT untimed. `serverPid`: CPU of that process tree during RETR-all is reported. */
async function workload(port, window, serverPid) {
  const client = await session(port);
  if (!client.pipelining) throw new Error('server does not offer PIPELINING');
  // LIST and UIDL take a few ms: each is timed --listings times in the session, and the run's figure is their median.
  let list;
  let uidl;
  const listTimes = [];
  const uidlTimes = [];
  for (let i = 0; i < opts.listings; i++) {
    let t = now();
    list = await client.list();
    listTimes.push(now() - t);
    t = now();
    uidl = await client.uidl();
    uidlTimes.push(now() - t);
  }
  const listMs = median(listTimes);
  const uidlMs = median(uidlTimes);
  const pids = serverPid === undefined ? [] : processTree(serverPid);
  const serverCpu0 = procCpu(pids);
  const clientCpu0 = process.cpuUsage();
  const t0 = now();
  let bytes = 0;
  let next = 1;
  const n = list.length;
  // `window` RETRs in flight: each stream is read as soon as its turn comes.
  const inFlight = [];
  const consume = async (p) => {
    for await (const chunk of await p) bytes += chunk.length;
  };
  while (next <= n || inFlight.length > 0) {
    while (next <= n && inFlight.length < window) inFlight.push(client.retr(next++));
    await consume(inFlight.shift());
  }
  const retrMs = now() - t0;
  const serverCpu = procCpu(pids);
  const serverUserMs = serverCpu.user - serverCpu0.user;
  const serverCpuMs = serverUserMs + serverCpu.system - serverCpu0.system;
  const clientCpu = process.cpuUsage(clientCpu0);
  const clientCpuMs = (clientCpu.user + clientCpu.system) / 1000;
  await client.quit();
  return { listMs, uidlMs, retrMs, serverCpuMs, serverUserMs, clientCpuMs, bytes, list, uidl };
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Ask our server process (IPC) for its memory. */
async function serverMemory(child, what) {
  child.send({ memory: what });
  const [message] = await once(child, 'message');
  return message.memory;
}

/** Peak heap+external and RSS of our server process while `fn` runs, above the level before it. */
async function peakMemory(child, fn) {
  const base = await serverMemory(child, 'reset');
  await fn();
  const peak = await serverMemory(child, 'read');
  return { heap: peak.heap - base.heap, rss: peak.rss - base.rss };
}

/** RETR one message of the `large` maildrop; resolves with its size. */
async function retrOne(port, number) {
  const client = await session(port, 'large');
  let bytes = 0;
  for await (const chunk of await client.retr(number)) bytes += chunk.length;
  await client.quit();
  return bytes;
}

// ---------------------------------------------------------------------------

const mb = (b) => (b / (1024 * 1024)).toFixed(1);
const tmp = await mkdtemp(join(os.tmpdir(), 'pp-bench-pop3-'));
await chmod(tmp, 0o755); // Dovecot runs as nobody and must traverse it.
const started = now();
const loadBefore = os.loadavg();
log(`temp ${tmp}; options ${JSON.stringify({ ...opts, out: undefined })}; loadavg ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);
const rows = [];
let dovecot;
let ours;
try {
  // One source Maildir: the workload mailbox `bench`, and `large` with a 1 MB and a --large-mb message.
  const src = join(tmp, 'src');
  const bodies = Array.from({ length: opts.messages }, (_, i) => makeMessage(i, 1500 + ((i * 7919) % 3000)));
  const { bytes } = await writeMaildir(src, 'bench', bodies);
  await writeMaildir(src, 'large', [makeMessage(1, 1024 * 1024), makeMessage(2, opts.largeMb * 1024 * 1024)]);
  log(`maildir: ${opts.messages} messages, ${mb(bytes)} MB; large: 1 MB and ${opts.largeMb} MB`);
  const oursRoot = join(tmp, 'ours');
  const doveRoot = join(tmp, 'dove');
  copyTree(src, oursRoot);
  copyTree(src, doveRoot);

  let oursPort;
  let dovePort;
  if (doOurs) {
    // Our server in its own process, as Dovecot's is: the client does not share its event loop.
    ours = fork(join(here, 'server.mjs'), [oursRoot, `bench:${PASSWORD}`, `large:${PASSWORD}`], { execArgv: ['--expose-gc', ...(process.env.POP3_BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.POP3_BENCH_PROF}`] : []), ...(process.env.POP3_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const [message] = await once(ours, 'message');
    oursPort = message.port;
    log(`ours ${ours.pid} pop3 ${oursPort}`);
  }
  if (doDovecot) {
    dovecot = await startDovecot({ users: [{ name: 'bench', password: PASSWORD }, { name: 'large', password: PASSWORD }], protocols: ['pop3'], mailRoot: doveRoot, tmpDir: tmp });
    dovePort = dovecot.ports.pop3;
    log(`dovecot ${dovecot.pid} pop3 ${dovePort}`);
  }

  // Warm-up, untimed: Node's JIT; Dovecot builds its index (and both set \Seen at QUIT).
  const results = { ours: [], dovecot: [] };
  const sides = [
    ['ours', oursPort, ours?.pid],
    ['dovecot', dovePort, dovecot?.pid],
  ];
  for (const [side, port] of sides) {
    if (port === undefined) continue;
    log(`${side}: warm-up`);
    await workload(port, opts.window);
  }
  for (let run = 0; run < opts.runs; run++) {
    for (const [side, port, pid] of sides) {
      if (port === undefined) continue;
      const r = await workload(port, opts.window, pid);
      results[side].push(r);
      log(`${side} run ${run + 1}: LIST ${r.listMs.toFixed(1)} ms, UIDL ${r.uidlMs.toFixed(1)} ms, RETR ${r.retrMs.toFixed(0)} ms (${mb(r.bytes)} MB; CPU during RETR: server ${r.serverCpuMs} ms (user ${r.serverUserMs}), client ${r.clientCpuMs.toFixed(0)} ms)`);
    }
  }
  if (results.ours.length > 0 && results.dovecot.length > 0) {
    // The same answers from both: sizes and UIDLs (Dovecot's default pop3_uidl_format, %08Xu%08Xv).
    const [o, d] = [results.ours[0], results.dovecot[0]];
    const sameList = JSON.stringify(o.list) === JSON.stringify(d.list);
    const sameUidl = JSON.stringify(o.uidl) === JSON.stringify(d.uidl);
    log(`identical on both servers: LIST ${sameList}, UIDL ${sameUidl}, RETR bytes ${o.bytes === d.bytes} (${o.bytes} / ${d.bytes})`);
    if (!sameUidl) log(`first UIDLs: ours ${JSON.stringify(o.uidl.slice(0, 2))}, dovecot ${JSON.stringify(d.uidl.slice(0, 2))}`);
    if (!sameList) log(`first LIST: ours ${JSON.stringify(o.list.slice(0, 2))}, dovecot ${JSON.stringify(d.list.slice(0, 2))}`);
    rows.push({ name: 'LIST sizes and RETR bytes identical', ours: sameList && o.bytes === d.bytes, dovecot: sameList && o.bytes === d.bytes });
    const sameIgnoringCase = JSON.stringify(o.uidl).toLowerCase() === JSON.stringify(d.uidl).toLowerCase();
    rows.push({ name: 'UIDLs identical', ours: sameUidl, dovecot: sameUidl });
    rows.push({ name: 'UIDLs identical ignoring case', ours: sameIgnoringCase, dovecot: sameIgnoringCase });
  }
  const stat = (side, key) => (results[side].length > 0 ? median(results[side].map((r) => r[key])) : undefined);
  for (const [key, name] of [
    ['listMs', `LIST of ${opts.messages} messages (ms)`],
    ['uidlMs', `UIDL of ${opts.messages} messages (ms)`],
    ['retrMs', `RETR of every message, ${opts.window} in flight (ms)`],
    ['serverCpuMs', 'server CPU time during RETR of every message (ms)'],
    ['clientCpuMs', 'bench client CPU time during RETR of every message (ms)'],
  ]) {
    const o = stat('ours', key);
    const d = stat('dovecot', key);
    rows.push({ name, ours: o, dovecot: d, ratio: o !== undefined && d !== undefined ? d / o : undefined });
  }
  const oRetr = stat('ours', 'retrMs');
  const dRetr = stat('dovecot', 'retrMs');
  const mbs = (ms) => (ms === undefined ? undefined : bytes / (1024 * 1024) / (ms / 1000));
  rows.push({ name: 'RETR throughput (MB/s)', ours: mbs(oRetr), dovecot: mbs(dRetr), ratio: oRetr !== undefined && dRetr !== undefined ? dRetr / oRetr : undefined });

  // Memory: one process runs our server and the client; RETR of 1 MB vs --large-mb.
  if (oursPort !== undefined && opts.memory) {
    await retrOne(oursPort, 1); // warm
    const small = await peakMemory(ours, () => retrOne(oursPort, 1));
    const large = await peakMemory(ours, () => retrOne(oursPort, 2));
    log(`memory of our server process: RETR 1 MB: +${mb(small.heap)} MB heap, +${mb(small.rss)} MB RSS; RETR ${opts.largeMb} MB: +${mb(large.heap)} MB heap, +${mb(large.rss)} MB RSS`);
    rows.push({ name: 'server peak live heap+external growth, RETR 1 MB (MB)', ours: small.heap / 1048576 });
    rows.push({ name: `server peak live heap+external growth, RETR ${opts.largeMb} MB (MB)`, ours: large.heap / 1048576 });
    rows.push({ name: `server peak RSS growth, RETR ${opts.largeMb} MB (MB)`, ours: large.rss / 1048576 });
  }
  if (dovePort !== undefined && opts.memory) {
    // One untimed RETR each (Node's JIT for the streaming path), then --runs timed ones, interleaved; medians.
    const doveBytes = await retrOne(dovePort, 2);
    const oursBytes = oursPort === undefined ? undefined : await retrOne(oursPort, 2);
    log(`RETR of the ${opts.largeMb} MB message: ${oursBytes ?? '—'} bytes from ours, ${doveBytes} from Dovecot`);
    if (oursBytes !== undefined && oursBytes !== doveBytes) throw new Error('the large message differs between the servers');
    const times = { ours: [], dovecot: [] };
    for (let run = 0; run < opts.runs; run++) {
      let t = now();
      await retrOne(dovePort, 2);
      times.dovecot.push(now() - t);
      if (oursPort === undefined) continue;
      t = now();
      await retrOne(oursPort, 2);
      times.ours.push(now() - t);
    }
    log(`RETR of the ${opts.largeMb} MB message (ms): ours ${times.ours.map((v) => v.toFixed(0)).join(' ') || '—'}, dovecot ${times.dovecot.map((v) => v.toFixed(0)).join(' ')}`);
    const o = times.ours.length > 0 ? median(times.ours) : undefined;
    const d = median(times.dovecot);
    rows.push({ name: `RETR of one ${opts.largeMb} MB message, median of ${opts.runs} (ms)`, ours: o, dovecot: d, ratio: o === undefined ? undefined : d / o });
  }
} finally {
  if (ours !== undefined && ours.exitCode === null) {
    ours.send({ stop: true });
    await once(ours, 'exit');
  }
  await dovecot?.stop();
  if (!opts.keep) rmSync(tmp, { recursive: true, force: true });
}

const fmt = (v) => (v === undefined ? '—' : typeof v === 'boolean' ? String(v) : v >= 100 ? v.toFixed(0) : v.toFixed(2));
console.log('| measure | ours | Dovecot | ratio |');
console.log('| --- | ---: | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${fmt(r.ours)} | ${fmt(r.dovecot)} | ${r.ratio === undefined ? '—' : `${r.ratio.toFixed(2)}×`} |`);
const elapsed = (now() - started) / 1000;
const loadAfter = os.loadavg();
log(`done in ${elapsed.toFixed(0)} s; loadavg ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
writeFileSync(
  opts.out,
  JSON.stringify({ date: new Date().toISOString(), command: `node bench/pop3/run.mjs ${process.argv.slice(2).join(' ')}`.trim(), options: { ...opts, out: undefined }, environment: { node: process.version, cpus: os.cpus().length, loadBefore, loadAfter }, elapsedSeconds: elapsed, rows }, null, 2) + '\n',
);
