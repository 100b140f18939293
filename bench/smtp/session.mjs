#!/usr/bin/env node
/**
 * bench/smtp/session.mjs — the server session's own CPU per message, without
 * sockets: one in-memory `SmtpServerSession` (the same hooks as
 * bench/smtp/server.mjs: accept every recipient, drain every body), fed like
 * Postfix's smtp-source without pipelining: MAIL, RCPT, DATA, each in its own
 * chunk and answered before the next, then the body and its `.` in 64 KB
 * pieces. What this measures is ours alone (parsing, hooks, replies, the DATA
 * decoder, the body hand-off): the kernel and Node's socket code, which the
 * socket rows of bench/smtp/run.mjs add on top, are not in it.
 *
 *   node bench/smtp/session.mjs [--kb 1] [--messages 20000] [--dist DIR]...
 *
 * Each `--dist` (default packages/smtp-core/dist) is a build of smtp-core to
 * measure (DIR must resolve @pigeonpost/wire, see bench/README.md); with
 * several they run interleaved, 5 timed rounds each, and the median CPU
 * µs/message of each is printed.
 */
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const argv = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = argv.indexOf(name);
  return i === -1 ? fallback : argv[i + 1];
};
const kb = Number(arg('--kb', 1));
const messages = Number(arg('--messages', 20000));

if (process.env.BENCH_SMTP_SESSION_CHILD === undefined) {
  // Parent: one child process per build and round, interleaved.
  const dists = argv.flatMap((a, i) => (a === '--dist' ? [resolve(argv[i + 1])] : []));
  if (dists.length === 0) dists.push(join(repo, 'packages/smtp-core/dist'));
  const results = new Map(dists.map((d) => [d, []]));
  for (let round = 0; round < 5; round++) {
    for (const dist of dists) {
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--kb', String(kb), '--messages', String(messages)], {
        env: { ...process.env, BENCH_SMTP_SESSION_CHILD: dist },
        encoding: 'utf8',
      });
      results.get(dist).push(Number(out.trim()));
    }
  }
  for (const [dist, runs] of results) {
    runs.sort((a, b) => a - b);
    console.log(`${dist}: ${kb} KB, median ${runs[2].toFixed(2)} µs/message (runs ${runs.map((r) => r.toFixed(2)).join(', ')})`);
  }
} else {
  const { createSmtpServerSession } = await import(join(process.env.BENCH_SMTP_SESSION_CHILD, 'index.js'));
  const clock = { now: () => Date.now(), setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (h) => clearTimeout(h) };
  const options = {
    hostname: 'bench.test',
    clock,
    onRcptTo: async () => {},
    onData: async (_envelope, body) => {
      for await (const chunk of body) void chunk;
    },
  };
  let wake;
  const transport = { write: () => wake?.(), startTls() {}, close() {}, pause() {}, resume() {} };
  const session = createSmtpServerSession(options, transport, { remoteAddress: '127.0.0.1', remotePort: 1234 });
  const answered = () => new Promise((resolve) => (wake = resolve));
  const send = async (...chunks) => {
    const reply = answered();
    for (const c of chunks) session.receive(c);
    await reply;
  };
  let reply = answered();
  await session.start();
  await reply;
  await send(Buffer.from('HELO localhost\r\n'));
  let text = 'From: <foo@localhost>\r\nTo: <foo@localhost>\r\nSubject: test\r\n\r\n';
  while (text.length < kb * 1024) text += 'x'.repeat(74) + '\r\n';
  const body = Buffer.from(text + '.\r\n');
  const pieces = [];
  for (let i = 0; i < body.length; i += 65536) pieces.push(body.subarray(i, i + 65536));
  const mail = Buffer.from('MAIL FROM:<foo@localhost>\r\n');
  const rcpt = Buffer.from('RCPT TO:<foo@localhost>\r\n');
  const data = Buffer.from('DATA\r\n');
  const one = async () => {
    await send(mail);
    await send(rcpt);
    await send(data);
    await send(...pieces);
  };
  for (let i = 0; i < messages / 4; i++) await one(); // warm-up
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < messages; i++) await one();
  const cpu = process.cpuUsage(cpu0);
  process.stdout.write(`${(cpu.user + cpu.system) / messages}\n`);
  process.exit(0); // the session's DATA timer would keep the process alive
}
