// The thread's scratch buffer for whole files decoded at once (checkpoint, dovecot-uidlist): one buffer
// taken and given back, a fresh one for a second reader meanwhile, dropped after an idle while.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readWholeIntoScratch, releaseScratch, SCRATCH_IDLE_MS, SCRATCH_MAX_BYTES, takeScratch } from '../src/maildir/scratch.js';

afterEach(() => {
  vi.useRealTimers();
});

describe('scratch buffer', () => {
  it('is the same memory at the next take once given back, and a fresh buffer while it is taken', () => {
    const a = takeScratch(100_000);
    expect(a.length).toBeGreaterThanOrEqual(100_000);
    const b = takeScratch(1000);
    expect(b.buffer).not.toBe(a.buffer);
    releaseScratch(b); // a fresh one: does not give the scratch back
    expect(takeScratch(10).buffer).not.toBe(a.buffer);
    releaseScratch(a.subarray(5, 50)); // a part of it gives it back
    const c = takeScratch(50_000);
    expect(c.buffer).toBe(a.buffer);
    releaseScratch(c);
    releaseScratch(c); // twice: harmless
    // Larger than it is: a larger one, kept from then on.
    const d = takeScratch(a.length + 1);
    expect(d.length).toBeGreaterThan(a.length);
    releaseScratch(d);
    expect(takeScratch(a.length + 1).buffer).toBe(d.buffer);
    releaseScratch(d);
    // Beyond the limit: never kept.
    const huge = takeScratch(SCRATCH_MAX_BYTES + 1);
    expect(huge.buffer).not.toBe(d.buffer);
    releaseScratch(huge);
    expect(takeScratch(10).buffer).toBe(d.buffer);
    releaseScratch(d);
  });

  it('is dropped after SCRATCH_IDLE_MS without a take, not while taken', async () => {
    vi.useFakeTimers();
    // A fresh module (its idle timer made under the fake clock, not left by the test before).
    vi.resetModules();
    const { releaseScratch, scratchBytes, takeScratch } = await import('../src/maildir/scratch.js');
    expect(scratchBytes()).toBe(0);
    releaseScratch(takeScratch(4096));
    expect(scratchBytes()).toBeGreaterThan(0);
    vi.advanceTimersByTime(SCRATCH_IDLE_MS - 1);
    const kept = takeScratch(4096);
    vi.advanceTimersByTime(SCRATCH_IDLE_MS + 1);
    expect(scratchBytes()).toBeGreaterThan(0); // taken when the timer fired: kept
    releaseScratch(kept);
    vi.advanceTimersByTime(SCRATCH_IDLE_MS - 1);
    expect(scratchBytes()).toBeGreaterThan(0);
    vi.advanceTimersByTime(2);
    expect(scratchBytes()).toBe(0);
  });

  for (const sync of [true, false]) {
    it(`reads a whole file into it (${sync ? 'synchronous calls' : 'through libuv'}), or says it is missing`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'pp-scratch-'));
      try {
        const small = Buffer.from('small file\n');
        const large = Buffer.alloc(3 * 1024 * 1024, 'x');
        large.write('end', large.length - 3);
        await writeFile(join(dir, 'small'), small);
        await writeFile(join(dir, 'large'), large);
        for (const [name, bytes] of [['small', small], ['large', large], ['small', small]] as const) {
          const got = await readWholeIntoScratch(join(dir, name), sync);
          expect(got?.equals(bytes)).toBe(true);
          releaseScratch(got!);
        }
        // Two at once: each its own bytes.
        const [x, y] = await Promise.all([readWholeIntoScratch(join(dir, 'small'), sync), readWholeIntoScratch(join(dir, 'large'), sync)]);
        expect(x?.equals(small)).toBe(true);
        expect(y?.equals(large)).toBe(true);
        releaseScratch(x!);
        releaseScratch(y!);
        expect(await readWholeIntoScratch(join(dir, 'missing'), sync)).toBeUndefined();
        await expect(readWholeIntoScratch(dir, sync)).rejects.toMatchObject({ code: 'EISDIR' });
        // A failed read gave it back.
        const after = takeScratch(10);
        releaseScratch(after);
        expect(takeScratch(10).buffer).toBe(after.buffer);
        releaseScratch(after);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
