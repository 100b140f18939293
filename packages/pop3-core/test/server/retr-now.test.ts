/**
 * RETR answered from memory (`Pop3ServerMaildrop.readNow`): the same bytes
 * as the streaming path for any mix of pipelined commands, in-memory,
 * streamed, vanished, deleted and large messages, any input chunking and
 * any back-pressure; and a pipelined group of such RETRs in one write,
 * without touching `read()`.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeData } from '@pigeonpost/wire';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { createPop3ServerSession } from '../../src/server/session.js';
import type { Pop3Backend, Pop3ServerMaildrop, Pop3ServerTransport } from '../../src/server/types.js';
import { createMemoryPop3Backend } from '../../src/testing/index.js';
import type { MemoryPop3Backend } from '../../src/testing/index.js';

const LOGIN = 'USER alice\r\nPASS alice-password\r\n';

interface Spy {
  readNow: number;
  answered: number;
  read: number;
}

/**
 * The memory backend, its maildrop given `readNow` for the messages `inMemory`
 * picks (the others: undefined, as a store that has not read them yet).
 * A message removed from the maildrop meanwhile is never answered by readNow.
 */
function withReadNow(inner: MemoryPop3Backend, inMemory: (n: number) => boolean, spy: Spy): Pop3Backend {
  return {
    ...inner,
    async openMaildrop(user, session) {
      const drop = await inner.openMaildrop(user, session);
      const snapshot = [...(inner.maildrops.get(user) ?? [])];
      const wrapped: Pop3ServerMaildrop = {
        messages: drop.messages,
        read: (n, options) => {
          spy.read++;
          return drop.read(n, options);
        },
        readNow: (n) => {
          spy.readNow++;
          const m = snapshot[n - 1];
          if (m === undefined || !inMemory(n) || !(inner.maildrops.get(user) ?? []).includes(m)) return undefined;
          spy.answered++;
          return m.body;
        },
        commit: (changes) => drop.commit(changes),
        release: () => drop.release(),
      };
      return wrapped;
    },
  };
}

/**
 * Run one session over `chunks`; every written byte (latin1), and how many
 * writes. `behind`: every other write asks for a drain. `written`: the
 * transport copies what it is given and says so (`written()`), so the
 * session may reuse its memory; without it the transport keeps the very
 * buffers it was given (a slow socket does), which must stay intact.
 */
async function run(backend: Pop3Backend, chunks: readonly Buffer[], options: { behind?: boolean; written?: boolean; afterLogin?: () => void } = {}): Promise<{ out: string; writes: number; drains: number }> {
  const out: Uint8Array[] = [];
  let drains = 0;
  const transport: Pop3ServerTransport = {
    write: (bytes) => {
      out.push(options.written === true ? Buffer.from(bytes) : bytes);
      return options.behind !== true || out.length % 2 === 0;
    },
    ...(options.written === true ? { written: () => true } : {}),
    drain: () => {
      drains++;
      return new Promise((resolve) => setImmediate(resolve));
    },
    startTls: () => undefined,
    close: () => undefined,
    pause: () => undefined,
    resume: () => undefined,
  };
  const session = createPop3ServerSession({ backend, clock: new VirtualClock(0), allowInsecureAuth: true, apopTimestamp: '<1.2@localhost>' }, transport, { remoteAddress: '192.0.2.1' });
  session.start();
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      while (session.busy) await new Promise((resolve) => setImmediate(resolve));
    }
  };
  session.receive(Buffer.from(LOGIN));
  await settle();
  options.afterLogin?.();
  for (const chunk of chunks) {
    session.receive(chunk);
    await Promise.race([session.whenIdle(), new Promise((resolve) => setImmediate(resolve))]);
  }
  await settle();
  session.end();
  return { out: Buffer.concat(out).toString('latin1'), writes: out.length, drains };
}

/** Cut `input` at the given points. */
function split(input: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p > prev) chunks.push(input.subarray(prev, p));
    prev = p;
  }
  if (prev < input.length) chunks.push(input.subarray(prev));
  return chunks;
}

/** RETR's answer to `body` as the memory backend sizes it (a bare LF counts as two octets). */
function answer(body: string | Buffer): string {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'latin1') : body;
  let size = bytes.length;
  for (let i = 0; i < bytes.length; i++) if (bytes[i] === 0x0a && (i === 0 || bytes[i - 1] !== 0x0d)) size++;
  return `+OK ${size} octets\r\n${encodeData(bytes).toString('latin1')}`;
}

const LARGE = Buffer.from(`Subject: large\n\n${'.a line of a large message, with a dot at its start\n'.repeat(4000)}`, 'latin1');

describe('RETR from memory (readNow)', () => {
  it('answers a pipelined burst with exactly the bytes of the streaming path: in-memory, streamed, vanished, deleted and large messages mixed', async () => {
    const bodies: (string | Buffer)[] = ['Subject: one\n\n.dot first\nplain\n', 'Subject: two\r\n\r\nCRLF text\r\n..two dots\r\n', LARGE, 'Subject: four\n\nbare\rCR and no final line end', 'Subject: five\n\nvanishes\n', 'Subject: six\n\n.\n'];
    const fill = (): MemoryPop3Backend => {
      const b = createMemoryPop3Backend();
      for (const body of bodies) b.add('alice', body);
      return b;
    };
    const commands = 'RETR 1\r\nRETR 2\r\nDELE 6\r\nRETR 3\r\nRETR 5\r\nTOP 2 0\r\nRETR 4\r\nRETR 6\r\nretr 1\r\nRETR  2\r\nRETR 7\r\nRETR 0\r\nQUIT\r\n';
    const vanish = (b: MemoryPop3Backend) => () => b.maildrops.set('alice', (b.maildrops.get('alice') ?? []).filter((m) => m.uid !== 5));
    const plain = fill();
    const reference = await run(plain, [Buffer.from(commands)], { afterLogin: vanish(plain) });
    const spy: Spy = { readNow: 0, answered: 0, read: 0 };
    const memory = fill();
    // Message 3 (large) is never in memory: it streams through read().
    // And the peer is behind: every other write asks for a drain.
    const fast = await run(withReadNow(memory, (n) => n !== 3, spy), [Buffer.from(commands)], { afterLogin: vanish(memory), behind: true });
    expect(fast.out).toBe(reference.out);
    expect(fast.drains).toBeGreaterThan(0);
    // The answers themselves: each message encoded as DATA (CRLF, dot-stuffed, terminated).
    const expected = (n: number): string => answer(bodies[n - 1]!);
    expect(fast.out).toContain(`${expected(1)}${expected(2)}+OK Message 6 deleted\r\n${expected(3)}-ERR`);
    expect(fast.out).toContain(`${expected(4)}-ERR Message 6 already deleted\r\n${expected(1)}${expected(2)}-ERR No such message\r\n-ERR Invalid message number\r\n+OK`);
    // RETR 1, 2, 4 and the lower-case / double-space forms came from memory; 3 (large) and 5 (vanished) did not.
    expect(spy.answered).toBe(5);
    expect(memory.maildrops.get('alice')!.filter((m) => m.seen).map((m) => m.uid)).toEqual([1, 2, 3, 4]);
  });

  it('sends a pipelined group of in-memory RETRs in one write, without read()', async () => {
    const backend = createMemoryPop3Backend();
    for (let i = 1; i <= 3; i++) backend.add('alice', `Subject: ${i}\n\nbody ${i}\n`);
    const spy: Spy = { readNow: 0, answered: 0, read: 0 };
    const { out, writes } = await run(withReadNow(backend, () => true, spy), [Buffer.from('RETR 1\r\nRETR 2\r\nRETR 3\r\n')]);
    // The greeting, the answers to USER and PASS (pipelined: one write), then the three messages at once.
    expect(writes).toBe(3);
    expect(spy).toEqual({ readNow: 3, answered: 3, read: 0 });
    expect(out.endsWith('+OK 22 octets\r\nSubject: 1\r\n\r\nbody 1\r\n.\r\n+OK 22 octets\r\nSubject: 2\r\n\r\nbody 2\r\n.\r\n+OK 22 octets\r\nSubject: 3\r\n\r\nbody 3\r\n.\r\n')).toBe(true);
  });

  it('a readNow that throws is taken as "not in memory": read() answers', async () => {
    const backend = createMemoryPop3Backend();
    backend.add('alice', 'Subject: x\n\nx\n');
    const inner = backend.openMaildrop.bind(backend);
    const throwing: Pop3Backend = {
      ...backend,
      openMaildrop: async (user, session) => ({
        ...(await inner(user, session)),
        readNow: () => {
          throw new Error('backend bug');
        },
      }),
    };
    const { out } = await run(throwing, [Buffer.from('RETR 1\r\nQUIT\r\n')]);
    expect(out).toContain(`${answer('Subject: x\n\nx\n')}+OK`);
  });

  it('gives the same bytes as the streaming path for any commands, messages, chunking and back-pressure', async () => {
    const piece = fc.constantFrom('a', '.', '..', '\r', '\n', '\r\n', ' ', '.\r\n', '\r.\r', '\n.\n', 'x'.repeat(40), `${'y'.repeat(70)}\n`);
    const body = fc.array(piece, { maxLength: 30 }).map((parts) => `Subject: p\n\n${parts.join('')}`);
    const command = fc.oneof(
      fc.integer({ min: 0, max: 9 }).map((n) => `RETR ${n}`),
      fc.integer({ min: 1, max: 8 }).map((n) => `retr ${n}`),
      fc.tuple(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 3 })).map(([n, l]) => `TOP ${n} ${l}`),
      fc.integer({ min: 1, max: 8 }).map((n) => `DELE ${n}`),
      fc.constantFrom('NOOP', 'STAT', 'RSET', 'RETR x', 'RETR 1 2'),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(body, { minLength: 1, maxLength: 7 }),
        fc.boolean(),
        fc.array(command, { minLength: 1, maxLength: 16 }),
        fc.array(fc.nat({ max: 400 }), { maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 9, maxLength: 9 }),
        fc.integer({ min: 0, max: 9 }),
        fc.boolean(),
        fc.boolean(),
        async (messages, withLarge, commands, cuts, inMemory, vanished, behind, written) => {
          const fill = (): MemoryPop3Backend => {
            const b = createMemoryPop3Backend();
            for (const m of messages) b.add('alice', m);
            if (withLarge) b.add('alice', LARGE);
            return b;
          };
          const input = Buffer.from(`${commands.join('\r\n')}\r\nQUIT\r\n`);
          const vanish = (b: MemoryPop3Backend) => () => b.maildrops.set('alice', (b.maildrops.get('alice') ?? []).filter((m) => m.uid !== vanished));
          const plain = fill();
          const reference = await run(plain, split(input, cuts), { afterLogin: vanish(plain) });
          const memory = fill();
          const spy: Spy = { readNow: 0, answered: 0, read: 0 };
          const fast = await run(withReadNow(memory, (n) => inMemory[n] === true, spy), split(input, cuts), { afterLogin: vanish(memory), behind, written });
          expect(fast.out).toBe(reference.out);
          expect(memory.maildrops.get('alice')!.map((m) => [m.uid, m.seen])).toEqual(plain.maildrops.get('alice')!.map((m) => [m.uid, m.seen]));
        },
      ),
      { numRuns: 150 },
    );
  });
});
