#!/usr/bin/env node
/**
 * bench/store: the Maildir store against Dovecot 2.3 on the same data, in one run.
 *
 *   pnpm build && node bench/store/run.mjs [--messages 100000] [--deliveries 2000]
 *     [--concurrency 8] [--lda 300] [--rounds 5] [--only ours|dovecot] [--skip-deliver] [--skip-mailbox] [--keep]
 *
 * Rows: durable deliveries per second (sequential and N in flight), a mailbox
 * of --messages messages opened cold and warm (open, list UIDs+flags, +\Flagged
 * on all, BODYSTRUCTURE of all), and the heap/RSS of an open mailbox. The
 * mailbox rows are medians over --rounds rounds, the two sides taking turns
 * to go first; every round's values are in the results file.
 * Writes bench/store/results.json. A benchmark, never a test: not run in CI.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import vm from 'node:vm';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { createMaildirStore } = await import(join(repo, 'packages/mailbox-store/dist/index.js'));
const { imapBodyStructure } = await import(join(repo, 'packages/mime/dist/index.js'));
const { startDovecot, connectImap, deliverLmtp, deliverWithLda } = await import(join(repo, 'packages/testkit/dist/index.js'));

v8.setFlagsFromString('--expose-gc');
const gc = globalThis.gc ?? vm.runInNewContext('gc');

// ---------------------------------------------------------------------------
// Options

function parseArgs(argv) {
  const o = { messages: 100_000, deliveries: 2000, concurrency: 8, lda: 300, warmup: 2000, rounds: 5, only: 'both', deliver: true, mailbox: true, keep: false, out: join(here, 'results.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const num = () => Number(argv[++i]);
    if (a === '--messages') o.messages = num();
    else if (a === '--deliveries') o.deliveries = num();
    else if (a === '--concurrency') o.concurrency = num();
    else if (a === '--lda') o.lda = num();
    else if (a === '--warmup') o.warmup = num();
    else if (a === '--rounds') o.rounds = num();
    else if (a === '--only') o.only = argv[++i];
    else if (a === '--skip-deliver') o.deliver = false;
    else if (a === '--skip-mailbox') o.mailbox = false;
    else if (a === '--keep') o.keep = true;
    else if (a === '--out') o.out = resolve(argv[++i]);
    else throw new Error(`unknown option ${a}`);
  }
  if (!(Number.isInteger(o.rounds) && o.rounds >= 1)) throw new Error('--rounds must be a whole number >= 1');
  return o;
}
const opts = parseArgs(process.argv.slice(2));
const doOurs = opts.only !== 'dovecot';
const doDovecot = opts.only !== 'ours';

// ---------------------------------------------------------------------------
// Realistic small messages: plain, multipart/alternative, multipart/mixed with a base64 attachment. LF line ends (as Dovecot stores them).

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const WORDS = 'the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part'.split(' ');
const NAMES = ['Ann Example', 'Bob Sender', 'Chloé Dupont', 'Dmitri Ivanov', 'Eve Adams', 'Fatima Zahra', 'Günter Groß', 'Hiro Tanaka'];

function words(r, n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(r() * WORDS.length)]);
  return out.join(' ');
}
function paragraphs(r, bytes) {
  const lines = [];
  let total = 0;
  while (total < bytes) {
    const line = words(r, 8 + Math.floor(r() * 6));
    lines.push(line);
    total += line.length + 1;
  }
  return lines.join('\n');
}
function address(r) {
  const name = NAMES[Math.floor(r() * NAMES.length)];
  const local = name.toLowerCase().replace(/[^a-z]/g, '.');
  const encoded = /[^\x20-\x7e]/.test(name) ? `=?UTF-8?B?${Buffer.from(name).toString('base64')}?=` : `"${name}"`;
  return `${encoded} <${local}@example.org>`;
}

/** One message of about `size` bytes (±30 %), kind chosen by `i`. */
export function makeMessage(i, size) {
  const r = rng(i * 7919 + 17);
  const target = Math.floor(size * (0.7 + r() * 0.6));
  const date = new Date(Date.UTC(2024, 0, 1) + i * 60_000).toUTCString().replace('GMT', '+0000');
  const head = [
    `Return-Path: <list-${i % 13}@lists.example.org>`,
    `Received: from mx${i % 4}.example.org (mx${i % 4}.example.org [192.0.2.${i % 250}])\n\tby mail.example.net with ESMTPS id ${i.toString(36)}\n\tfor <bench@example.net>; ${date}`,
    `From: ${address(r)}`,
    `To: Bench User <bench@example.net>`,
    ...(i % 3 === 0 ? [`Cc: ${address(r)}, ${address(r)}`] : []),
    `Subject: ${i % 5 === 0 ? '=?UTF-8?Q?R=C3=A9union?= ' : ''}${words(r, 4 + Math.floor(r() * 5))}`,
    `Date: ${date}`,
    `Message-ID: <${i}.${i.toString(36)}@example.org>`,
    ...(i % 4 === 1 ? [`In-Reply-To: <${i - 1}.${(i - 1).toString(36)}@example.org>`] : []),
    'MIME-Version: 1.0',
  ];
  const kind = i % 10;
  const headLen = head.join('\n').length;
  const room = Math.max(200, target - headLen - 200);
  let body;
  if (kind < 6) {
    head.push('Content-Type: text/plain; charset=utf-8; format=flowed', 'Content-Transfer-Encoding: 7bit');
    body = paragraphs(r, room);
  } else if (kind < 8) {
    const b = `alt-${i}-${r().toString(36).slice(2)}`;
    const text = paragraphs(r, room / 2);
    head.push(`Content-Type: multipart/alternative; boundary="${b}"`);
    body = [
      'This is a multi-part message in MIME format.',
      `--${b}`,
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: quoted-printable',
      '',
      text,
      `--${b}`,
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: 7bit',
      '',
      `<html><body><p>${text.slice(0, Math.floor(room / 2) - 40).replace(/\n/g, '</p>\n<p>')}</p></body></html>`,
      `--${b}--`,
      '',
    ].join('\n');
  } else {
    const b = `mix-${i}-${r().toString(36).slice(2)}`;
    const attachment = randomBytesFrom(r, Math.floor(room * 0.45))
      .toString('base64')
      .replace(/.{76}/g, '$&\n');
    head.push(`Content-Type: multipart/mixed; boundary="${b}"`);
    body = [
      `--${b}`,
      'Content-Type: text/plain; charset=us-ascii',
      '',
      paragraphs(r, room * 0.35),
      `--${b}`,
      `Content-Type: application/pdf; name="report-${i}.pdf"`,
      `Content-Disposition: attachment; filename="report-${i}.pdf"`,
      'Content-Transfer-Encoding: base64',
      '',
      attachment,
      `--${b}--`,
      '',
    ].join('\n');
  }
  return Buffer.from(`${head.join('\n')}\n\n${body}\n`, 'utf8');
}
function randomBytesFrom(r, n) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}
function virtualSize(buf) {
  let lf = 0;
  for (let i = buf.indexOf(10); i >= 0; i = buf.indexOf(10, i + 1)) if (i === 0 || buf[i - 1] !== 13) lf++;
  return buf.length + lf;
}

// ---------------------------------------------------------------------------
// Helpers

const now = () => performance.now();
const mb = (bytes) => bytes / (1024 * 1024);
const log = (...args) => console.error(`[${new Date().toISOString().slice(11, 19)}]`, ...args);

async function pool(n, concurrency, fn) {
  let next = 0;
  const workers = Array.from({ length: Math.min(concurrency, n) }, async () => {
    while (next < n) await fn(next++);
  });
  await Promise.all(workers);
}

/** A Maildir of `n` messages written directly (files in cur/, a dovecot-uidlist), under `<root>/<user>/Maildir`. */
async function writeMaildir(root, user, n, seedOffset) {
  const maildir = join(root, user, 'Maildir');
  for (const d of ['cur', 'new', 'tmp']) await mkdir(join(maildir, d), { recursive: true });
  const sec = Math.floor(Date.UTC(2024, 5, 1) / 1000);
  const names = new Array(n);
  let bytes = 0;
  await pool(n, 32, async (i) => {
    const body = makeMessage(i + seedOffset, 2048);
    bytes += body.length;
    const flags = i % 10 < 7 ? 'S' : i % 10 === 7 ? 'RS' : '';
    const base = `${sec + i}.M${(i * 37) % 1_000_000}P4242Q${i}.bench,S=${body.length},W=${virtualSize(body)}`;
    names[i] = base;
    await writeFile(join(maildir, 'cur', `${base}:2,${flags}`), body);
  });
  const guid = randomBytes(16).toString('hex');
  let uidlist = `3 V${sec} N${n + 1} G${guid}\n`;
  for (let i = 0; i < n; i++) uidlist += `${i + 1} :${names[i]}\n`;
  await writeFile(join(maildir, 'dovecot-uidlist'), uidlist);
  return { maildir, bytes };
}

/** A copy of a Maildir for one run: hard links of the message files (same inodes, same page cache), fresh copies of the rest. */
function copyMaildir(from, to) {
  rmSync(to, { recursive: true, force: true });
  execFileSync('cp', ['-al', from, to]);
  // Non-message files are rewritten in place by some programs: copy, never share.
  for (const f of readdirSync(to)) {
    const p = join(to, f);
    if (statSync(p).isFile()) {
      rmSync(p);
      cpSync(join(from, f), p);
    }
  }
}

/** Flush dirty pages and metadata (the copy's 100k links, a chown) so that no side is timed during their writeback. */
function settle() {
  execFileSync('sync');
}

/** Directories at least this old are what a store opens as not changing under it (both sides wait for this after a copy). */
const COPY_AGE_MS = 2200;

/**
 * After a fresh copy of the big Maildir (made at `copiedAt`): written back, and its directories
 * COPY_AGE_MS old before either side opens it. A directory changed within the last second or two
 * is one that may still be changing: Dovecot (MAILDIR_SYNC_SECS) and ours (see MTIME_TRUST_MS) both
 * list it again at the next sync then. Both sides open copies of the same age, not one side right
 * after the copy and the other after a chown -R of 100k files.
 */
async function settleCopy(copiedAt) {
  settle();
  // This process's garbage (the setup's, the last round's) collected now, and the memory it
  // gives back returned to the system during the wait, not during the next timed run.
  gc();
  gc();
  const wait = COPY_AGE_MS - (now() - copiedAt);
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

function dovecotIndexFiles(maildir) {
  return readdirSync(maildir).filter((f) => f.startsWith('dovecot.index') || f.startsWith('dovecot.list.index') || f === 'dovecot.mailbox.log');
}

function procRss(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
/** Dovecot's imap processes (of this instance's process group). */
function dovecotImapPids(pgid) {
  const out = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const comm = /\((.*)\)/.exec(stat)?.[1];
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && comm === 'imap') out.push(Number(p));
    } catch {
      // gone
    }
  }
  return out;
}

function memory() {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed + m.external + m.arrayBuffers, rss: m.rss };
}

// ---------------------------------------------------------------------------
// Our side

async function oursMailbox(root, user, label) {
  const before = memory();
  const t = {};
  let t0 = now();
  const store = createMaildirStore({ root, fsync: true });
  const u = await store.user(user);
  const h = await u.open('INBOX');
  t.open = now() - t0;
  const after = memory();

  t0 = now();
  const list = h.messages();
  const uids = new Array(list.length);
  let flagCount = 0;
  for (let i = 0; i < list.length; i++) {
    uids[i] = list[i].uid;
    flagCount += list[i].flags.length;
  }
  t.list = now() - t0;

  t0 = now();
  const res = await h.setFlags(uids, { mode: 'add', flags: ['\\Flagged'] });
  t.store = now() - t0;

  t0 = now();
  let bsBytes = 0;
  // bodyStructure(): the IMAP string, which the Maildir store keeps in its index log after the structure
  // (computed from a parse on first use, read back without parse or formatting after that).
  for (const uid of uids) bsBytes += (await h.bodyStructure(uid)).length;
  t.bodystructure = now() - t0;
  // Untimed: the strings served are the formatting of the structures (a sample).
  for (let i = 0; i < uids.length; i += 997) {
    if ((await h.bodyStructure(uids[i])) !== imapBodyStructure(await h.structure(uids[i]))) throw new Error(`bodyStructure(${uids[i]}) differs from imapBodyStructure(structure())`);
  }

  // INTERNALDATE is fetched on demand (one stat per file the first time, kept in the index checkpoint after).
  t0 = now();
  const dates = await h.internalDates(uids);
  t.internaldate = now() - t0;
  if (dates.length !== uids.length) throw new Error('internalDates');

  const memoryAfterAll = memory();
  await h.close();
  await store.close();
  log(`ours ${label}: open ${t.open.toFixed(0)} ms, list ${t.list.toFixed(1)} ms, store ${t.store.toFixed(0)} ms (${res.updated.length} updated), bodystructure ${t.bodystructure.toFixed(0)} ms (${bsBytes} bytes), internaldate ${t.internaldate.toFixed(0)} ms`);
  if (list.length === 0 || flagCount < 0) throw new Error('empty mailbox');
  return { times: t, messages: list.length, before, after, memoryAfterAll };
}

/** Our mailbox run, with the memory it held: measured after open, against the same process after the store is closed and dropped. */
async function oursMailboxMeasured(root, user, label) {
  const r = await oursMailbox(root, user, label);
  const released = memory();
  const heapDelta = r.after.heap - released.heap;
  const rssDelta = r.after.rss - released.rss;
  log(`ours ${label}: held after open: heap ${mb(heapDelta).toFixed(1)} MB, rss ${mb(rssDelta).toFixed(1)} MB; after all four ops: heap ${mb(r.memoryAfterAll.heap - released.heap).toFixed(1)} MB`);
  return { ...r, heapDelta, rssDelta, heapDeltaAfterAll: r.memoryAfterAll.heap - released.heap };
}

/** Reset the flag between a cold and a warm run (untimed), through the store itself. */
async function oursUnflag(root, user) {
  const store = createMaildirStore({ root, fsync: true });
  const h = await (await store.user(user)).open('INBOX');
  await h.setFlags(h.messages().map((m) => m.uid), { mode: 'remove', flags: ['\\Flagged'] });
  await h.close();
  await store.close();
}

async function oursDeliveries(root, user, bodies, concurrency) {
  const store = createMaildirStore({ root, fsync: true });
  if (!(await store.hasUser(user))) await store.createUser(user);
  const t0 = now();
  await pool(bodies.length, concurrency, (i) => store.deliver({ user, body: bodies[i] }));
  const ms = now() - t0;
  await store.close();
  return ms;
}

// ---------------------------------------------------------------------------
// Dovecot's side

async function dovecotMailbox(dovecot, user, label) {
  const imap = await connectImap({ port: dovecot.ports.imap, timeoutMs: 600_000 });
  await imap.login(user, 'bench-password');
  const t = {};
  const ok = (r) => {
    if (r.status !== 'OK') throw new Error(`${r.status} ${r.text}`);
    return r;
  };
  let t0 = now();
  ok(await imap.command('SELECT INBOX'));
  t.open = now() - t0;
  const pids = dovecotImapPids(dovecot.pid);
  const rss = pids.length === 1 ? procRss(pids[0]) : undefined;

  t0 = now();
  const fetched = ok(await imap.command('UID FETCH 1:* (UID FLAGS)'));
  t.list = now() - t0;

  t0 = now();
  ok(await imap.command('UID STORE 1:* +FLAGS.SILENT (\\Flagged)'));
  t.store = now() - t0;

  t0 = now();
  const bs = ok(await imap.command('UID FETCH 1:* (BODYSTRUCTURE)'));
  t.bodystructure = now() - t0;

  t0 = now();
  ok(await imap.command('UID FETCH 1:* (INTERNALDATE)'));
  t.internaldate = now() - t0;
  const rssAfterAll = pids.length === 1 ? procRss(pids[0]) : undefined;
  await imap.logout();
  log(`dovecot ${label}: open ${t.open.toFixed(0)} ms, list ${t.list.toFixed(0)} ms (${fetched.untagged.length} responses), store ${t.store.toFixed(0)} ms, bodystructure ${t.bodystructure.toFixed(0)} ms (${bs.untagged.length} responses), internaldate ${t.internaldate.toFixed(0)} ms; imap rss ${rss === undefined ? '?' : mb(rss).toFixed(1)} MB`);
  return { times: t, messages: fetched.untagged.length, rss, rssAfterAll };
}

async function dovecotUnflag(dovecot, user) {
  const imap = await connectImap({ port: dovecot.ports.imap, timeoutMs: 600_000 });
  await imap.login(user, 'bench-password');
  await imap.select('INBOX');
  await imap.command('UID STORE 1:* -FLAGS.SILENT (\\Flagged)');
  await imap.logout();
}

async function dovecotDeliveries(dovecot, user, bodies, concurrency) {
  const t0 = now();
  await pool(bodies.length, concurrency, (i) => deliverLmtp(dovecot, user, bodies[i], { timeoutMs: 60_000 }));
  return now() - t0;
}

async function ldaDeliveries(dovecot, user, bodies) {
  const t0 = now();
  for (const body of bodies) await deliverWithLda(dovecot, user, body);
  return now() - t0;
}

// ---------------------------------------------------------------------------
// The run

const rows = [];
function row(group, name, unit, better, ours, dovecot, note) {
  // ratio > 1: ours is better (faster, more per second, or smaller).
  let ratio;
  if (ours !== undefined && dovecot !== undefined && ours > 0 && dovecot > 0) ratio = better === 'higher' ? ours / dovecot : dovecot / ours;
  rows.push({ group, name, unit, better, ours, dovecot, ratio, ...(note ? { note } : {}) });
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** A row from medians over rounds; each side's per-round values are kept in the results file. */
function rowAcross(group, name, unit, better, ours, dovecot, note) {
  row(group, name, unit, better, ours?.median, dovecot?.median, note);
  if (ours !== undefined || dovecot !== undefined) rows[rows.length - 1].rounds = { ours: ours?.values, dovecot: dovecot?.values };
}

const tmp = await mkdtemp(join(os.tmpdir(), 'pp-bench-'));
await chmod(tmp, 0o755); // Dovecot runs as nobody and must traverse it.
const started = now();
const loadBefore = os.loadavg();
log(`temp ${tmp}; options ${JSON.stringify({ ...opts, out: undefined })}; loadavg ${loadBefore.map((l) => l.toFixed(2)).join(' ')}`);

let dovecot;
try {
  const doveRoot = join(tmp, 'dove');
  await mkdir(doveRoot, { recursive: true });
  if (doDovecot) {
    dovecot = await startDovecot({
      users: ['bench', 'warm', 'dlv', 'dlvc', 'lda', 'dwarm'].map((name) => ({ name, password: 'bench-password' })),
      protocols: ['imap', 'lmtp'],
      mailRoot: doveRoot,
      mailFsync: 'always',
      processLimit: 64,
      maxUserIpConnections: 64,
      tmpDir: tmp,
    });
    log(`dovecot ${dovecot.pid} imap ${dovecot.ports.imap} lmtp ${dovecot.ports.lmtp}, mail_fsync = always`);
  }
  const chown = (path) => {
    if (dovecot !== undefined && process.getuid?.() === 0) execFileSync('chown', ['-R', `${dovecot.runAs.uid}:${dovecot.runAs.gid}`, path]);
  };

  // -- 1. deliveries --------------------------------------------------------
  if (opts.deliver) {
    const bodies = Array.from({ length: opts.deliveries }, (_, i) => makeMessage(1_000_000 + i, 4096));
    const warm = Array.from({ length: 200 }, (_, i) => makeMessage(2_000_000 + i, 4096));
    const avg = bodies.reduce((n, b) => n + b.length, 0) / bodies.length;
    log(`deliveries: ${bodies.length} messages, ${avg.toFixed(0)} bytes on average`);
    const oursRoot = join(tmp, 'ours-deliver');
    let oSeq, oConc, dSeq, dConc, lda;
    if (doOurs) {
      await oursDeliveries(oursRoot, 'warm', warm, opts.concurrency); // JIT warm-up, untimed
      oSeq = await oursDeliveries(oursRoot, 'seq', bodies, 1);
      oConc = await oursDeliveries(oursRoot, 'conc', bodies, opts.concurrency);
      log(`ours deliver: sequential ${oSeq.toFixed(0)} ms, ${opts.concurrency} in flight ${oConc.toFixed(0)} ms`);
    }
    if (dovecot) {
      await dovecotDeliveries(dovecot, 'dwarm', warm, opts.concurrency);
      dSeq = await dovecotDeliveries(dovecot, 'dlv', bodies, 1);
      dConc = await dovecotDeliveries(dovecot, 'dlvc', bodies, opts.concurrency);
      log(`dovecot lmtp: sequential ${dSeq.toFixed(0)} ms, ${opts.concurrency} in flight ${dConc.toFixed(0)} ms`);
      if (opts.lda > 0) {
        lda = await ldaDeliveries(dovecot, 'lda', bodies.slice(0, opts.lda));
        log(`dovecot-lda: ${opts.lda} sequential ${lda.toFixed(0)} ms`);
      }
    }
    const rate = (n, ms) => (ms === undefined ? undefined : (n * 1000) / ms);
    row('deliver', 'deliveries/s, sequential (ours deliver() vs Dovecot LMTP)', 'msg/s', 'higher', rate(bodies.length, oSeq), rate(bodies.length, dSeq));
    row('deliver', `deliveries/s, ${opts.concurrency} in flight (ours vs Dovecot LMTP)`, 'msg/s', 'higher', rate(bodies.length, oConc), rate(bodies.length, dConc));
    if (opts.lda > 0) row('deliver', `deliveries/s, sequential (ours vs dovecot-lda, ${opts.lda} msgs)`, 'msg/s', 'higher', rate(bodies.length, oSeq), rate(opts.lda, lda), 'one dovecot-lda process per message');
    await rm(oursRoot, { recursive: true, force: true });
  }

  // -- 2, 3. a big mailbox ----------------------------------------------------
  if (opts.mailbox) {
    const pristine = join(tmp, 'pristine');
    let t0 = now();
    // A small second user, for warming both sides up before timing.
    await writeMaildir(pristine, 'warm', Math.min(opts.warmup, opts.messages), 5_000_000);
    const data = await writeMaildir(pristine, 'bench', opts.messages, 0);
    // Written back to disk before anything is timed: otherwise the side that runs first (ours)
    // runs while the kernel writes 200 MB of dirty pages back, and the other one after it.
    settle();
    log(`mailbox: ${opts.messages} messages, ${mb(data.bytes).toFixed(1)} MB (${(data.bytes / opts.messages).toFixed(0)} bytes on average) written in ${((now() - t0) / 1000).toFixed(1)} s`);

    // Warm-up (untimed), each side once: the whole sequence on a small mailbox, cold then warm.
    const oursRoot = join(tmp, 'ours');
    if (doOurs) {
      await mkdir(oursRoot);
      copyMaildir(join(pristine, 'warm'), join(oursRoot, 'warm'));
      await oursMailbox(oursRoot, 'warm', 'warm-up cold');
      await oursUnflag(oursRoot, 'warm');
      await oursMailbox(oursRoot, 'warm', 'warm-up warm');
    }
    if (dovecot) {
      copyMaildir(join(pristine, 'warm'), join(doveRoot, 'warm'));
      chown(join(doveRoot, 'warm'));
      await dovecotMailbox(dovecot, 'warm', 'warm-up cold');
      await dovecotUnflag(dovecot, 'warm');
      await dovecotMailbox(dovecot, 'warm', 'warm-up warm');
    }
    // --rounds rounds, the sides taking turns to go first (this machine's speed drifts by tens of
    // percent over minutes: one run of each, one after the other, compares two moments). Each
    // round starts both sides from a fresh copy of the same Maildir; the rows take the medians.
    const runs = { oursCold: [], oursWarm: [], dovecotCold: [], dovecotWarm: [] };
    for (let round = 0; round < opts.rounds; round++) {
      const sides = [...(doOurs ? ['ours'] : []), ...(dovecot ? ['dovecot'] : [])];
      if (round % 2 === 1) sides.reverse();
      for (const side of sides) {
        const label = (phase) => `${phase}${opts.rounds > 1 ? ` (round ${round + 1})` : ''}`;
        if (side === 'ours') {
          copyMaildir(join(pristine, 'bench'), join(oursRoot, 'bench'));
          await settleCopy(now());
          runs.oursCold.push(await oursMailboxMeasured(oursRoot, 'bench', label('cold')));
          await oursUnflag(oursRoot, 'bench');
          runs.oursWarm.push(await oursMailboxMeasured(oursRoot, 'bench', label('warm')));
          if (!opts.keep || round < opts.rounds - 1) rmSync(join(oursRoot, 'bench'), { recursive: true, force: true });
        } else {
          copyMaildir(join(pristine, 'bench'), join(doveRoot, 'bench'));
          const copiedAt = now();
          chown(join(doveRoot, 'bench'));
          await settleCopy(copiedAt);
          const maildir = join(doveRoot, 'bench', 'Maildir');
          if (dovecotIndexFiles(maildir).length > 0) throw new Error('cold copy has Dovecot index files');
          runs.dovecotCold.push(await dovecotMailbox(dovecot, 'bench', label('cold')));
          await dovecotUnflag(dovecot, 'bench');
          runs.dovecotWarm.push(await dovecotMailbox(dovecot, 'bench', label('warm')));
          log(`dovecot index files: ${dovecotIndexFiles(maildir).join(' ')}`);
          rmSync(join(doveRoot, 'bench'), { recursive: true, force: true });
        }
      }
    }
    /** The median over the rounds of `pick(run)`, with every round's value (undefined when that side did not run). */
    const across = (list, pick) => {
      const values = list.map(pick).filter((v) => v !== undefined);
      return values.length === 0 ? undefined : { median: median(values), values };
    };
    const n = opts.messages;
    for (const phase of ['cold', 'warm']) {
      const o = runs[`ours${phase === 'cold' ? 'Cold' : 'Warm'}`];
      const d = runs[`dovecot${phase === 'cold' ? 'Cold' : 'Warm'}`];
      const op = (label, pick) => rowAcross(phase, `${phase}: ${label}`, 'ms', 'lower', across(o, pick), across(d, pick));
      op(`open ${n} msgs (ours open() vs SELECT)`, (r) => r.times.open);
      op('list UIDs+flags (messages() vs UID FETCH 1:* (UID FLAGS))', (r) => r.times.list);
      op('+\\Flagged on all (setFlags vs UID STORE 1:* +FLAGS.SILENT)', (r) => r.times.store);
      op('BODYSTRUCTURE of all (bodyStructure() vs UID FETCH 1:* (BODYSTRUCTURE))', (r) => r.times.bodystructure);
      op('all four', (r) => r.times.open + r.times.list + r.times.store + r.times.bodystructure);
      op('INTERNALDATE of all, after the four (internalDates(all) vs UID FETCH 1:* (INTERNALDATE))', (r) => r.times.internaldate);
    }
    const ow = runs.oursWarm;
    const dw = runs.dovecotWarm;
    const inMb = (pick) => (r) => (pick(r) === undefined ? undefined : mb(pick(r)));
    rowAcross('memory', `memory held by an open ${n}-msg mailbox, warm (ours JS heap+external vs Dovecot imap process RSS)`, 'MB', 'lower', across(ow, inMb((r) => r.heapDelta)), across(dw, inMb((r) => r.rss)), 'target: ours < 64 MB');
    rowAcross('memory', `memory held, warm (ours RSS vs Dovecot imap RSS)`, 'MB', 'lower', across(ow, inMb((r) => r.rssDelta)), across(dw, inMb((r) => r.rss)));
    rowAcross('memory', `memory held after all four ops, warm (ours heap vs Dovecot imap RSS)`, 'MB', 'lower', across(ow, inMb((r) => r.heapDeltaAfterAll)), across(dw, inMb((r) => r.rssAfterAll)));
    rowAcross('memory', `memory held after a cold open (ours heap vs Dovecot imap RSS after SELECT)`, 'MB', 'lower', across(runs.oursCold, inMb((r) => r.heapDelta)), across(runs.dovecotCold, inMb((r) => r.rss)));
  }
} finally {
  await dovecot?.stop();
  if (!opts.keep) await rm(tmp, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------
// Report

const fmt = (v, unit) => (v === undefined ? '—' : unit === 'ms' && v < 10 ? v.toFixed(2) : unit === 'MB' ? v.toFixed(1) : v.toFixed(0));
const header = ['row', 'ours', 'Dovecot', 'ratio (>1: ours better)', 'ratio per round'];
const lines = [`| ${header.join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
/** Each round's ratio (the two sides ran one after the other in it), when there were rounds. */
const perRound = (r) => {
  const o = r.rounds?.ours;
  const d = r.rounds?.dovecot;
  if (o === undefined || d === undefined || o.length !== d.length || o.length < 2) return '—';
  return o.map((v, k) => (r.better === 'higher' ? v / d[k] : d[k] / v).toFixed(2)).join(', ');
};
for (const r of rows) lines.push(`| ${r.name} [${r.unit}] | ${fmt(r.ours, r.unit)} | ${fmt(r.dovecot, r.unit)} | ${r.ratio === undefined ? '—' : r.ratio.toFixed(2) + '×'} | ${perRound(r)} |`);
const table = lines.join('\n');
const elapsed = (now() - started) / 1000;
const environment = {
  node: process.version,
  dovecot: (() => {
    try {
      return execFileSync('/usr/sbin/dovecot', ['--version'], { encoding: 'utf8' }).trim();
    } catch {
      return undefined;
    }
  })(),
  cpus: os.cpus().length,
  cpuModel: os.cpus()[0]?.model,
  loadavgBefore: loadBefore,
  loadavgAfter: os.loadavg(),
  platform: `${os.platform()} ${os.release()}`,
};
const command = `node bench/store/run.mjs ${process.argv.slice(2).join(' ')}`.trim();
writeFileSync(opts.out, JSON.stringify({ date: new Date().toISOString(), command, options: { ...opts, out: undefined }, environment, durability: { ours: 'fsync: true (file, directory, dovecot-uidlist, index log)', dovecot: 'mail_fsync = always' }, elapsedSeconds: elapsed, rows }, null, 2) + '\n');
console.log(table);
console.log(`\n${command} — ${elapsed.toFixed(0)} s, load ${environment.loadavgAfter.map((l) => l.toFixed(2)).join(' ')}; results in ${opts.out}`);
