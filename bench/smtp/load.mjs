/**
 * bench/smtp/load.mjs — the load client of bench/smtp/run.mjs, in its own
 * Node process so that its CPU never competes inside the orchestrator and is
 * measured on its own.
 *
 * Driven over IPC: `{ run: { id, port, sessions, tls, ca, kb, count, depth, chunking } }`
 * → `{ done: id, wallMs, cpuUs }` (or `{ done: id, error }`). Each session is
 * one `SmtpClient` connection with `pipelineDepth: depth` and `depth`
 * concurrent `send()` loops on it: with DATA the next message's MAIL/RCPT/DATA
 * leave behind the previous body's end (one round trip per message); with
 * CHUNKING (when the server offers it and `chunking` is on) whole messages
 * are pipelined, `depth` ahead of their replies. The body is built once per
 * size and reused (the encoder passes CRLF text without copying).
 */
import { join, resolve, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { SmtpClient } = await import(join(repo, 'packages/smtp-core/dist/node.js'));

/** A message of `kb` KB: a few headers and 76-column CRLF lines. */
export function makeMessage(kb) {
  const head = 'From: <a@bench.test>\r\nTo: <b@bench.test>\r\nSubject: bench\r\nMessage-ID: <bench@bench.test>\r\n\r\n';
  const line = 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm\r\n';
  let body = head;
  while (body.length + line.length <= kb * 1024) body += line;
  return Buffer.from(body);
}

const messages = new Map();
const envelope = { from: 'a@bench.test', to: ['b@bench.test'] };

async function run({ port, sessions, tls, ca, kb, count, depth, chunking }) {
  let message = messages.get(kb);
  if (message === undefined) messages.set(kb, (message = makeMessage(kb)));
  let left = count;
  const session = async () => {
    const client = await SmtpClient.connect({
      host: '127.0.0.1',
      port,
      name: 'client.bench.test',
      secure: tls ? 'starttls' : 'none',
      chunking,
      pipelineDepth: depth,
      ...(tls ? { tls: { ca, servername: '127.0.0.1' } } : {}),
    });
    try {
      const loop = async () => {
        while (left > 0) {
          left--;
          await client.send(envelope, message);
        }
      };
      await Promise.all(Array.from({ length: depth }, loop));
    } finally {
      await client.quit().catch(() => client.close());
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: sessions }, session));
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, cpuUs: cpu.user + cpu.system };
}

process.on('message', (msg) => {
  if (msg?.run !== undefined) {
    run(msg.run).then(
      (r) => process.send({ done: msg.run.id, ...r }),
      (err) => process.send({ done: msg.run.id, error: String(err?.stack ?? err) }),
    );
  } else if (msg?.stop) {
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
process.send?.({ ready: true });
