/**
 * Crash safety of deliver(): a child process delivers in a loop and is
 * killed with SIGKILL at random moments; after every kill a fresh store opens
 * the Maildir (sometimes with its index deleted, truncated or damaged) and
 * every delivery that had resolved must be there, intact, with the UID it
 * was given; nothing partial is visible; UIDs are unique and increasing.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, truncate, unlink, writeFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMaildirStore } from '../../src/maildir/index.js';

const KILLS = Number(process.env['PIGEONPOST_CRASH_KILLS'] ?? 50);
const here = fileURLToPath(new URL('.', import.meta.url));

async function bytesOf(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

describe('deliver() under SIGKILL', () => {
  let dir: string;
  let childScript: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pp-crash-'));
    // Bundle the child (TypeScript) with the esbuild that tsup ships, so the test needs no prior build.
    const requireFromTsup = createRequire(createRequire(import.meta.url).resolve('tsup'));
    const esbuild = requireFromTsup('esbuild') as { build(options: Record<string, unknown>): Promise<unknown> };
    // Written under the package's node_modules so the workspace packages (@pigeonpost/wire …) resolve from it.
    childScript = join(here, '../../node_modules/.cache/pigeonpost-crash', `child-${process.pid}.mjs`);
    await esbuild.build({ entryPoints: [join(here, 'child.ts')], bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node20', outfile: childScript, logLevel: 'silent' });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(childScript, { force: true });
  });

  it(`keeps every resolved delivery across ${KILLS} kills`, async () => {
    const root = join(dir, 'root');
    const setup = createMaildirStore({ root, fsync: false });
    await setup.createUser('crash', { mailboxes: [] });
    await setup.close();
    const maildir = join(root, 'crash/Maildir');
    const resolved = new Map<number, string>();
    let lastUid = 0;
    let damaged = 0;
    for (let kill = 0; kill < KILLS; kill++) {
      const child = spawn(process.execPath, [childScript, root], { stdio: ['ignore', 'pipe', 'inherit'] });
      let buffered = '';
      let ready: () => void = () => undefined;
      const isReady = new Promise<void>((r) => (ready = r));
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        buffered += d;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line === 'ready') {
            ready();
            continue;
          }
          const [uid, sum] = line.split(' ');
          expect(resolved.has(Number(uid))).toBe(false);
          resolved.set(Number(uid), sum!);
        }
      });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await Promise.race([isReady, exited]);
      await new Promise((r) => setTimeout(r, 10 + Math.random() * 150));
      child.kill('SIGKILL');
      await exited;

      // Damage the index now and then: it must rebuild from the files.
      const index = join(maildir, 'pigeonpost-index.log');
      const roll = Math.random();
      const size = (await stat(index).catch(() => undefined))?.size ?? 0;
      if (size > 0 && roll < 0.1) await unlink(index);
      else if (size > 0 && roll < 0.2) await truncate(index, Math.floor(Math.random() * size));
      else if (size > 0 && roll < 0.3) {
        const data = await readFile(index);
        const at = Math.floor(Math.random() * data.length);
        data[at] = data[at]! ^ 0x20;
        await writeFile(index, data);
      }
      if (roll < 0.3 && size > 0) damaged++;

      const store = createMaildirStore({ root, fsync: false });
      const h = await (await store.user('crash')).open('INBOX');
      const messages = h.messages();
      const uids = messages.map((m) => m.uid);
      for (let i = 1; i < uids.length; i++) expect(uids[i]!).toBeGreaterThan(uids[i - 1]!);
      for (const [uid, sum] of resolved) {
        expect(uids).toContain(uid);
        expect(createHash('sha256').update(await bytesOf(h.read(uid))).digest('hex')).toBe(sum);
      }
      // Nothing partial: every visible message checks out, even the ones whose deliver() never resolved.
      for (const m of messages) {
        const data = await bytesOf(h.read(m.uid));
        const nl = data.indexOf('\r\n');
        const check = /^X-Check: ([0-9a-f]{64})$/.exec(data.subarray(0, nl).toString('latin1'));
        expect(check).not.toBeNull();
        expect(createHash('sha256').update(data.subarray(nl + 2)).digest('hex')).toBe(check![1]);
      }
      // Every file in cur/ and new/ has a UID (no orphan, no duplicate).
      const files = [...(await readdir(join(maildir, 'cur'))), ...(await readdir(join(maildir, 'new')))];
      expect(files.length).toBe(messages.length);
      if (uids.length > 0) {
        expect(uids[uids.length - 1]!).toBeGreaterThanOrEqual(lastUid);
        lastUid = uids[uids.length - 1]!;
      }
      await h.close();
      await store.close();
    }
    // Enough resolved deliveries to have checked something: one per five kills (~425 ms of delivering) at
    // least. Usually hundreds; a machine busy with other fsyncs makes fewer, which is no failure of the store.
    expect(resolved.size).toBeGreaterThanOrEqual(KILLS / 5);
    console.log(`crash test: ${KILLS} kills, ${resolved.size} resolved deliveries verified, index damaged ${damaged} times`);
  }, 120_000);
});
