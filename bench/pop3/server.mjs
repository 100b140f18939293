/**
 * bench/pop3/server.mjs — our POP3 server in its own process (as Dovecot is),
 * for bench/pop3/run.mjs.
 *
 *   node --expose-gc bench/pop3/server.mjs MAILDIR_ROOT USER:PASSWORD...
 *
 * createPop3Server over createMaildirStore(MAILDIR_ROOT), plaintext on
 * 127.0.0.1:0 (loopback only, USER/PASS allowed). Sends `{ port }` over IPC,
 * POP3_BENCH_READ_MODE picks the store's readMode. Then answers `{ memory: 'reset' | 'read' }` with its heap+external and RSS
 * (the peak of live memory between a reset and the next read: a full GC,
 * then a sample, every 5 ms) and `{ stop: true }`.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { createMaildirStore } = await import(join(repo, 'packages/mailbox-store/dist/index.js'));
const { mailStoreBackend } = await import(join(repo, 'packages/pop3-core/dist/index.js'));
const { createPop3Server } = await import(join(repo, 'packages/pop3-core/dist/node.js'));

const [root, ...pairs] = process.argv.slice(2);
const users = Object.fromEntries(pairs.map((p) => p.split(':')));
// POP3_BENCH_READ_MODE=worker|sync-batched: the store's readMode (default: the store's default).
const readMode = process.env.POP3_BENCH_READ_MODE || undefined;
const store = createMaildirStore({ root, ...(readMode ? { readMode } : {}) });
const server = createPop3Server({ backend: mailStoreBackend({ store, users }), allowInsecureAuth: true, maxConnectionsPerIp: 1000 });
const { port } = await server.listen({ host: '127.0.0.1', port: 0 });

const level = (m) => m.heapUsed + m.external + m.arrayBuffers;
let peak = { heap: 0, rss: 0 };
let sampling;
// A full GC before each sample: the peak is of memory still referenced (what
// the server holds on to), not of garbage the collector has not reached yet.
const sample = () => {
  globalThis.gc?.();
  const m = process.memoryUsage();
  peak = { heap: Math.max(peak.heap, level(m)), rss: Math.max(peak.rss, m.rss) };
};
process.on('message', async (message) => {
  if (message.memory === 'reset') {
    globalThis.gc?.();
    globalThis.gc?.();
    const m = process.memoryUsage();
    peak = { heap: level(m), rss: m.rss };
    // Sample only while a measurement runs: memoryUsage() is not free.
    clearInterval(sampling);
    sampling = setInterval(sample, 5);
    process.send({ memory: { ...peak } });
  } else if (message.memory === 'read') {
    clearInterval(sampling);
    sample();
    process.send({ memory: { ...peak } });
  } else if (message.stop) {
    await server.close({ timeoutMs: 0 });
    await store.close();
    process.exit(0);
  }
});
process.send({ port });
