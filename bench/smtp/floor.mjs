#!/usr/bin/env node
/**
 * bench/smtp/floor.mjs — how fast a Node.js SMTP server can possibly be on
 * smtp-source's connection-per-session rows, against nodemailer's
 * smtp-server and ours, in one run.
 *
 *   pnpm build && node bench/smtp/floor.mjs [--reps 5] [--messages 6000] [--sessions 1,50] [--kb 1]
 *
 * Servers: `floor` (bench/smtp/floor-server.mjs: canned replies, no parsing,
 * no session; a lower bound for any Node server, not a server), `ours` and
 * `smtp-server` (bench/smtp/server.mjs, accept and discard). Load: Postfix's
 * smtp-source `-d` (one connection per session: greeting, HELO, MAIL, RCPT,
 * DATA, body, QUIT), `--messages` per timed run, runs interleaved, medians
 * reported: messages/s, server CPU µs per message (process.cpuUsage), and
 * each server's ratio to smtp-server. If `floor` is below a target ratio,
 * no Node server can reach it on this machine.
 * A benchmark, never a test: not run in CI.
 */
import { execFile, fork } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { smtpSourceArgs } from './smtp-source.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const opts = { reps: 5, messages: 6000, sessions: [1, 50], kb: 1 };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const v = process.argv[++i];
  if (a === '--reps') opts.reps = Number(v);
  else if (a === '--messages') opts.messages = Number(v);
  else if (a === '--sessions') opts.sessions = v.split(',').map(Number);
  else if (a === '--kb') opts.kb = Number(v);
  else throw new Error(`unknown option ${a}`);
}

const kinds = [
  ['floor', join(here, 'floor-server.mjs'), []],
  ['ours', join(here, 'server.mjs'), ['ours']],
  ['smtp-server', join(here, 'server.mjs'), ['smtp-server']],
];
const servers = [];
try {
  for (const [name, file, args] of kinds) {
    const child = fork(file, args, { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    servers.push({ name, child, port: undefined });
    const [message] = await once(child, 'message');
    servers[servers.length - 1].port = message.port;
  }
  const cpuUs = async (child) => {
    child.send({ stats: 0 });
    const [message] = await once(child, 'message');
    return message.cpuUs;
  };
  const source = (port, sessions, count) =>
    new Promise((ok, fail) => {
      const t0 = performance.now();
      const args = smtpSourceArgs({ port, sessions, perMessage: false, kb: opts.kb, count });
      execFile('smtp-source', args, { timeout: 120_000 }, (err, _out, stderr) => (err ? fail(new Error(`smtp-source: ${err.message} ${stderr}`)) : ok(performance.now() - t0)));
    });
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const others = servers.filter((s) => s.name !== 'smtp-server');
  console.log(`| row | ${servers.map((s) => `msg/s ${s.name}`).join(' | ')} | ${others.map((s) => `${s.name}/smtp-server`).join(' | ')} | server CPU µs/msg ${servers.map((s) => s.name).join(' / ')} |`);
  console.log(`| --- |${' ---: |'.repeat(servers.length + others.length + 1)}`);
  for (const sessions of opts.sessions) {
    for (const s of servers) await source(s.port, sessions, Math.max(500, opts.messages / 3)); // warm-up: Node's JIT
    const runs = new Map(servers.map((s) => [s.name, []]));
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const s of servers) {
        const before = await cpuUs(s.child);
        const ms = await source(s.port, sessions, opts.messages);
        const after = await cpuUs(s.child);
        runs.get(s.name).push({ rate: (opts.messages / ms) * 1000, cpu: (after - before) / opts.messages });
      }
    }
    const rate = (name) => median(runs.get(name).map((r) => r.rate));
    const cpu = (name) => median(runs.get(name).map((r) => r.cpu));
    const base = rate('smtp-server');
    console.log(
      `| smtp-source -s ${sessions} -d, ${opts.kb} KB | ${servers.map((s) => rate(s.name).toFixed(0)).join(' | ')} | ${others.map((s) => `${(rate(s.name) / base).toFixed(2)}×`).join(' | ')} | ${servers.map((s) => cpu(s.name).toFixed(0)).join(' / ')} |`,
    );
  }
} finally {
  for (const s of servers) s.child.kill('SIGTERM');
}
