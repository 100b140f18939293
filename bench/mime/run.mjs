#!/usr/bin/env node
/**
 * bench/mime: @pigeonpost/mime's structural parse and IMAP values, in memory.
 *
 *   pnpm --filter @pigeonpost/mime build && node bench/mime/run.mjs
 *     [--messages 20000] [--size 2048] [--rounds 5] [--corpus-reps 20]
 *     [--baseline FILE] [--no-anchor] [--out FILE]
 *
 * Inputs: `--messages` messages from bench/store's generator (the store
 * benchmark's mix: 60 % text/plain, 20 % multipart/alternative, 20 %
 * multipart/mixed with a base64 attachment), held as Buffers, and the 230
 * messages of packages/mime/test/corpus. Rows: parseMessage; + imapBodyStructure;
 * + imapEnvelope; the streaming parser fed 512-byte chunks; the corpus.
 * The "structures held" row runs in fresh child processes (`--held-child`):
 * the structures of all messages are kept from the first parse on (as a
 * store's cache or index keeps them), then all are parsed again three times.
 * V8 decides whether to pretenure an allocation site from what it sees
 * first, so this cannot share a process with the other rows.
 * `--baseline FILE` times another build of the package (an ESM file with the
 * same exports, e.g. an earlier dist/index.js) on the same inputs in the same
 * run. The anchor, postal-mime's `PostalMime.parse`, is a reference point,
 * not the same work (it decodes every header, body and attachment). Rounds
 * are interleaved (ours, baseline, anchor, ours, …) and the median is kept;
 * µs/msg are given as wall time and as CPU time (process.cpuUsage, the GC
 * threads included), the steadier figure on a busy machine.
 * A benchmark, never a test: not run in CI. Writes bench/mime/results.json.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');

v8.setFlagsFromString('--expose-gc');
const gc = globalThis.gc ?? vm.runInNewContext('gc');

function parseArgs(argv) {
  const o = { messages: 20_000, size: 2048, rounds: 5, corpusReps: 20, baseline: undefined, anchor: true, out: join(here, 'results.json'), heldChild: undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => {
      const n = Number(argv[++i]);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`${a} needs a positive number`);
      return n;
    };
    if (a === '--messages') o.messages = num();
    else if (a === '--size') o.size = num();
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--corpus-reps') o.corpusReps = num();
    else if (a === '--baseline') o.baseline = resolve(argv[++i]);
    else if (a === '--no-anchor') o.anchor = false;
    else if (a === '--out') o.out = resolve(argv[++i]);
    else if (a === '--held-child') o.heldChild = resolve(argv[++i]);
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}
const opts = parseArgs(process.argv.slice(2));

const log = (...args) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...args);
const now = () => performance.now();

/**
 * bench/store/run.mjs runs its whole benchmark when it is imported (top-level
 * await), so its message generator (the section from `function rng(` to the
 * "Helpers" banner, which exports `makeMessage`) is loaded on its own from
 * the source: one definition of the mix for both benchmarks.
 */
async function loadMakeMessage() {
  const src = readFileSync(join(repo, 'bench/store/run.mjs'), 'utf8');
  const start = src.indexOf('function rng(');
  const end = src.indexOf('// Helpers');
  if (start < 0 || end < start || !src.includes('export function makeMessage(')) {
    throw new Error('bench/store/run.mjs changed: cannot find its message generator (function rng … // Helpers, export function makeMessage)');
  }
  const code = src.slice(start, src.lastIndexOf('\n// ----', end));
  const mod = await import(`data:text/javascript;base64,${Buffer.from(code).toString('base64')}`);
  return mod.makeMessage;
}

// ---------------------------------------------------------------------------
// Inputs

const makeMessage = await loadMakeMessage();
const messages = Array.from({ length: opts.messages }, (_, i) => makeMessage(i, opts.size));
const corpusDir = join(repo, 'packages/mime/test/corpus/messages');
const corpus = readdirSync(corpusDir)
  .filter((f) => f.endsWith('.eml'))
  .sort()
  .map((f) => readFileSync(join(corpusDir, f)));
const bytesOf = (list) => list.reduce((n, b) => n + b.length, 0);
log(`${messages.length} generated messages (${(bytesOf(messages) / 1e6).toFixed(1)} MB), ${corpus.length} corpus messages (${(bytesOf(corpus) / 1e6).toFixed(2)} MB)`);

// ---------------------------------------------------------------------------
// --held-child FILE: parse every message with FILE's build keeping the structures, then parse all
// again three times while they are held; print the CPU µs per message of those passes, as JSON.

if (opts.heldChild !== undefined) {
  const m = await import(pathToFileURL(opts.heldChild).href);
  const held = messages.map((b) => m.parseMessage(b));
  const passes = [];
  for (let r = 0; r < 3; r++) {
    const c0 = process.cpuUsage();
    let n = 0;
    for (const b of messages) n += m.parseMessage(b).size;
    const c = process.cpuUsage(c0);
    if (!(n > 0)) throw new Error('no output');
    passes.push((c.user + c.system) / messages.length);
  }
  console.log(JSON.stringify({ held: held.length, cpuUsPerMsg: passes }));
  process.exit(0);
}

// ---------------------------------------------------------------------------
// Implementations

const ours = await import(pathToFileURL(join(repo, 'packages/mime/dist/index.js')).href);
const baseline = opts.baseline === undefined ? undefined : await import(pathToFileURL(opts.baseline).href);
let PostalMime;
if (opts.anchor) {
  try {
    const require = createRequire(join(repo, 'packages/mime/package.json'));
    const path = require.resolve('postal-mime').replace(/dist[/\\]cjs[/\\]postal-mime\.js$/, 'dist/esm/postal-mime.js');
    PostalMime = (await import(pathToFileURL(path).href)).default;
  } catch (err) {
    log(`no anchor: postal-mime is not installed (${err.message}); pnpm install adds it (a devDependency of @pigeonpost/mime)`);
  }
}

/** The rows of one implementation of @pigeonpost/mime's API. */
function mimeRows(m) {
  const parse = (list) => {
    let n = 0;
    for (const b of list) n += m.parseMessage(b).size;
    return n;
  };
  const parseBs = (list) => {
    let n = 0;
    for (const b of list) n += m.imapBodyStructure(m.parseMessage(b)).length;
    return n;
  };
  const parseBsEnv = (list) => {
    let n = 0;
    for (const b of list) {
      const s = m.parseMessage(b);
      n += m.imapBodyStructure(s).length + m.imapEnvelope(s).length;
    }
    return n;
  };
  const chunked = (list) => {
    let n = 0;
    for (const b of list) {
      const p = new m.MimeParser();
      for (let i = 0; i < b.length; i += 512) p.push(b.subarray(i, i + 512));
      n += p.end().size;
    }
    return n;
  };
  const corpusAll = () => {
    let n = 0;
    for (let r = 0; r < opts.corpusReps; r++) n += parseBsEnv(corpus);
    return n;
  };
  return {
    parse: () => parse(messages),
    'parse+bodystructure': () => parseBs(messages),
    'parse+bodystructure+envelope': () => parseBsEnv(messages),
    'parse, 512-byte chunks': () => chunked(messages),
    'corpus: parse+bodystructure+envelope': corpusAll,
  };
}

const ROWS = [
  { name: 'parse', label: 'parseMessage', count: messages.length, bytes: bytesOf(messages) },
  { name: 'parse+bodystructure', label: 'parseMessage + imapBodyStructure', count: messages.length, bytes: bytesOf(messages) },
  { name: 'parse+bodystructure+envelope', label: 'parseMessage + imapBodyStructure + imapEnvelope', count: messages.length, bytes: bytesOf(messages) },
  { name: 'parse, 512-byte chunks', label: 'MimeParser.push in 512-byte chunks + end()', count: messages.length, bytes: bytesOf(messages) },
  { name: 'corpus: parse+bodystructure+envelope', label: `test corpus (${corpus.length} msgs × ${opts.corpusReps}): parse + BODYSTRUCTURE + ENVELOPE`, count: corpus.length * opts.corpusReps, bytes: bytesOf(corpus) * opts.corpusReps },
];

const impls = [{ key: 'ours', rows: mimeRows(ours) }];
if (baseline !== undefined) impls.push({ key: 'baseline', rows: mimeRows(baseline) });
const anchorRow = { name: 'anchor', label: "postal-mime PostalMime.parse (reference only: full decode, async)", count: messages.length, bytes: bytesOf(messages) };
const anchor = PostalMime === undefined ? undefined : async () => {
  let n = 0;
  for (const b of messages) n += (await PostalMime.parse(b, { attachmentEncoding: 'arraybuffer' })).attachments.length;
  return n;
};

// ---------------------------------------------------------------------------
// Timing: a warm-up round of everything, then interleaved rounds, median kept.

const times = new Map();
const record = (key, ms, cpuMs) => {
  if (!times.has(key)) times.set(key, { ms: [], cpuMs: [] });
  times.get(key).ms.push(ms);
  times.get(key).cpuMs.push(cpuMs);
};
const cpuNow = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
};
async function round(timed) {
  for (const row of ROWS) {
    for (const impl of impls) {
      // No gc() here: a forced full GC before a row made the next ~10,000
      // parses 2–3× slower (V8 shrinks the young generation and drops
      // optimised code), which measured the recovery, not the parser.
      const c0 = cpuNow();
      const t0 = now();
      const check = impl.rows[row.name]();
      const ms = now() - t0;
      const cpuMs = cpuNow() - c0;
      if (!(check > 0)) throw new Error(`${impl.key} ${row.name}: no output`);
      if (timed) record(`${impl.key} ${row.name}`, ms, cpuMs);
    }
  }
  if (anchor !== undefined) {
    const c0 = cpuNow();
    const t0 = now();
    await anchor();
    if (timed) record('anchor', now() - t0, cpuNow() - c0);
  }
}

const loadBefore = os.loadavg();
const started = now();
log('warm-up round');
await round(false);
for (let r = 0; r < opts.rounds; r++) {
  log(`round ${r + 1}/${opts.rounds}`);
  await round(true);
}
/** The "structures held" row: fresh processes, ours and the baseline alternating, the median pass kept. */
function heldRow() {
  const builds = [{ key: 'ours', file: join(repo, 'packages/mime/dist/index.js') }];
  if (opts.baseline !== undefined) builds.push({ key: 'baseline', file: opts.baseline });
  const passes = new Map(builds.map((b) => [b.key, []]));
  for (let r = 0; r < Math.min(opts.rounds, 3); r++) {
    for (const b of builds) {
      log(`structures held: ${b.key}, process ${r + 1}`);
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--held-child', b.file, '--messages', String(opts.messages), '--size', String(opts.size)], { encoding: 'utf8' });
      passes.get(b.key).push(...JSON.parse(out).cpuUsPerMsg);
    }
  }
  return passes;
}
const heldPasses = heldRow();

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

/** The heap held by the structures of all generated messages (what a store caching them would hold), per message. */
function heldPerStructure(m) {
  gc();
  const heapBefore = process.memoryUsage().heapUsed;
  const kept = messages.map((b) => m.parseMessage(b));
  gc();
  const heap = (process.memoryUsage().heapUsed - heapBefore) / kept.length;
  const json = kept.reduce((n, s) => n + JSON.stringify(s).length, 0) / kept.length;
  kept.length = 0;
  return { heap, json };
}
const memory = { ours: heldPerStructure(ours), baseline: baseline === undefined ? undefined : heldPerStructure(baseline) };

// ---------------------------------------------------------------------------
// Report

const rows = [];
for (const row of ROWS) {
  const out = { name: row.name, label: row.label, messages: row.count, bytes: row.bytes };
  for (const impl of impls) {
    const t = times.get(`${impl.key} ${row.name}`);
    const ms = median(t.ms);
    const cpuMs = median(t.cpuMs);
    out[impl.key] = { ms, msgsPerSec: (row.count / ms) * 1000, mbPerSec: row.bytes / 1e6 / (ms / 1000), usPerMsg: (ms * 1000) / row.count, cpuUsPerMsg: (cpuMs * 1000) / row.count };
  }
  if (out.baseline !== undefined) {
    out.speedupVsBaseline = out.ours.msgsPerSec / out.baseline.msgsPerSec;
    out.cpuSpeedupVsBaseline = out.baseline.cpuUsPerMsg / out.ours.cpuUsPerMsg;
  }
  rows.push(out);
}
{
  const row = { name: 'parse, structures held', label: `parseMessage in a fresh process holding the ${messages.length} structures of its first pass (CPU only)`, messages: messages.length, bytes: bytesOf(messages) };
  for (const [key, xs] of heldPasses) {
    const cpuUs = median(xs);
    row[key] = { cpuUsPerMsg: cpuUs, passes: xs };
  }
  if (row.baseline !== undefined) row.cpuSpeedupVsBaseline = row.baseline.cpuUsPerMsg / row.ours.cpuUsPerMsg;
  rows.push(row);
}
let anchorResult;
if (anchor !== undefined) {
  const ms = median(times.get('anchor').ms);
  const cpuMs = median(times.get('anchor').cpuMs);
  anchorResult = { ...anchorRow, ms, msgsPerSec: (anchorRow.count / ms) * 1000, mbPerSec: anchorRow.bytes / 1e6 / (ms / 1000), usPerMsg: (ms * 1000) / anchorRow.count, cpuUsPerMsg: (cpuMs * 1000) / anchorRow.count };
}

const f0 = (v) => v.toFixed(0);
const f1 = (v) => v.toFixed(1);
const head = ['row', 'ours msg/s', 'ours MB/s', 'ours µs/msg (CPU)'];
if (baseline !== undefined) head.push('baseline msg/s', 'baseline µs/msg (CPU)', 'ours / baseline (CPU)');
const lines = [`| ${head.join(' | ')} |`, `| ${head.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`];
const cell = (x, f) => (x === undefined ? '—' : f(x));
for (const r of rows) {
  const cells = [r.label, cell(r.ours.msgsPerSec, f0), cell(r.ours.mbPerSec, f1), `${cell(r.ours.usPerMsg, f1)} (${f1(r.ours.cpuUsPerMsg)})`];
  if (r.baseline !== undefined) cells.push(cell(r.baseline.msgsPerSec, f0), `${cell(r.baseline.usPerMsg, f1)} (${f1(r.baseline.cpuUsPerMsg)})`, `${cell(r.speedupVsBaseline, (x) => `${x.toFixed(2)}×`)} (${r.cpuSpeedupVsBaseline.toFixed(2)}×)`);
  lines.push(`| ${cells.join(' | ')} |`);
}
if (anchorResult !== undefined) {
  const cells = [anchorResult.label, f0(anchorResult.msgsPerSec), f1(anchorResult.mbPerSec), `${f1(anchorResult.usPerMsg)} (${f1(anchorResult.cpuUsPerMsg)})`];
  if (baseline !== undefined) cells.push('', '', '');
  lines.push(`| ${cells.join(' | ')} |`);
}
const table = lines.join('\n');
const anchorRatio = anchorResult === undefined ? undefined : rows[0].ours.msgsPerSec / anchorResult.msgsPerSec;
const elapsed = (now() - started) / 1000;
const command = `node bench/mime/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
const environment = { node: process.version, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, loadavgBefore: loadBefore, loadavgAfter: os.loadavg(), platform: `${os.platform()} ${os.release()}` };
writeFileSync(
  opts.out,
  JSON.stringify({ date: new Date().toISOString(), command, options: { ...opts, out: undefined }, environment, elapsedSeconds: elapsed, rows, anchor: anchorResult, anchorRatio, memoryPerStructure: memory }, null, 2) + '\n',
);
console.log(table);
if (anchorRatio !== undefined) console.log(`\nparseMessage vs postal-mime (a reference, not the same work): ${anchorRatio.toFixed(1)}× its msg/s`);
console.log(`structure kept per message: ~${f0(memory.ours.heap)} bytes of heap, ${f0(memory.ours.json)} bytes as JSON${memory.baseline === undefined ? '' : ` (baseline: ~${f0(memory.baseline.heap)} bytes of heap, ${f0(memory.baseline.json)} as JSON)`}`);
console.log(`\n${command} — ${elapsed.toFixed(0)} s, load ${environment.loadavgAfter.map((l) => l.toFixed(2)).join(' ')}; results in ${opts.out}`);
