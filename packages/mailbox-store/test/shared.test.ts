import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChangeHub,
  MailboxKeywords,
  MessageSizeCounter,
  StructureCache,
  applyFlagChange,
  computeStructure,
  defaultStoreLimits,
  meterMessageSource,
  planFlagChange,
  pop3Uidl,
  readMessageSource,
  rfc822Size,
  topOfMessage,
} from '../src/index.js';
import type { StoreChange } from '../src/index.js';
import { withVersions } from '../src/flags.js';

/** Split `data` at the given cut points. */
function split(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let from = 0;
  for (const p of points) {
    out.push(data.subarray(from, p));
    from = p;
  }
  out.push(data.subarray(from));
  return out;
}

async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of chunks) parts.push(Buffer.from(c));
  return Buffer.concat(parts);
}

async function* asAsync(chunks: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) {
    await Promise.resolve();
    yield c;
  }
}

const mailBytes = fc.array(fc.constantFrom(0x0d, 0x0a, 0x61, 0x3a, 0x20, 0xe9), { maxLength: 200 }).map((a) => Uint8Array.from(a));

describe('RFC822.SIZE', () => {
  it('counts a bare LF as two bytes, CRLF as two', () => {
    expect(rfc822Size(Buffer.from('a\nb\r\nc\r'))).toBe(8);
  });

  it('gives the same size for every chunking', () => {
    fc.assert(
      fc.property(mailBytes, fc.array(fc.nat(), { maxLength: 8 }), (data, cuts) => {
        const counter = new MessageSizeCounter();
        for (const c of split(data, cuts)) counter.push(c);
        expect(counter.sizes).toEqual({ bytes: data.length, size: rfc822Size(data) });
      }),
    );
  });
});

describe('message sources', () => {
  it('reads any chunking back to the same bytes', async () => {
    await fc.assert(
      fc.asyncProperty(mailBytes, fc.array(fc.nat(), { maxLength: 8 }), async (data, cuts) => {
        const read = await readMessageSource(asAsync(split(data, cuts)), defaultStoreLimits);
        expect(Buffer.compare(read.data, Buffer.from(data))).toBe(0);
      }),
      { numRuns: 50 },
    );
  });

  it('accepts exactly maxMessageBytes and refuses one more, before buffering it', async () => {
    await expect(readMessageSource(Buffer.alloc(10), { maxMessageBytes: 10 })).resolves.toMatchObject({ bytes: 10 });
    const metered = meterMessageSource([Buffer.alloc(6), Buffer.alloc(5)], { maxMessageBytes: 10 });
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const c of metered.chunks) seen.push(c.length);
      })(),
    ).rejects.toMatchObject({ code: 'ERR_STORE_TOO_LARGE' });
    expect(seen).toEqual([6]);
    expect(metered.sizes().bytes).toBe(6);
  });

  it('refuses string chunks', async () => {
    await expect(readMessageSource(['text'] as unknown as Uint8Array[], defaultStoreLimits)).rejects.toThrow(TypeError);
  });
});

describe('flags', () => {
  it('applies add, remove and replace, and reports no-ops as undefined', () => {
    expect(applyFlagChange(['\\Seen'], 'add', ['\\seen'])).toBeUndefined();
    expect(applyFlagChange(['\\Seen'], 'add', ['X'])).toEqual(['\\Seen', 'X']);
    expect(applyFlagChange(['\\Seen', 'X'], 'remove', ['x'])).toEqual(['\\Seen']);
    expect(applyFlagChange(['A'], 'replace', ['a'])).toBeUndefined();
    expect(applyFlagChange(['A'], 'replace', ['B', 'b'])).toEqual(['B']);
  });

  it('plans UNCHANGEDSINCE conflicts even for no-op changes', () => {
    const plan = planFlagChange(
      [
        { uid: 1, modSeq: 5, flags: ['\\Seen'] },
        { uid: 2, modSeq: 2, flags: [] },
      ],
      { mode: 'add', flags: ['\\Seen'], unchangedSince: 4 },
    );
    expect(plan).toEqual({ updates: [{ uid: 2, flags: ['\\Seen'] }], conflicts: [1] });
  });

  it('keeps the first spelling of a keyword and enforces the limit atomically', () => {
    const keywords = new MailboxKeywords({ maxKeywordsPerMailbox: 2 });
    expect(keywords.register(['Work', '\\Seen'])).toEqual(['Work', '\\Seen']);
    expect(keywords.register(['WORK', 'home'])).toEqual(['Work', 'home']);
    expect(() => keywords.register(['third', 'Home'])).toThrow(expect.objectContaining({ code: 'ERR_STORE_LIMIT' }));
    expect(keywords.list()).toEqual(['Work', 'home']);
    expect(keywords.canonicalize(['never'])).toEqual(['never']);
  });
});

describe('ChangeHub', () => {
  const append = (uid: number): StoreChange => ({ type: 'append', mailboxId: 'm', mailbox: 'INBOX', uids: [uid], modSeq: uid + 1 });

  it('collapses a full queue into one resync hint and keeps queueing behind it', async () => {
    const hub = new ChangeHub({ maxQueuedChanges: 3 });
    const watcher = hub.watch('u');
    for (let i = 1; i <= 4; i++) hub.publish('u', append(i));
    hub.publish('u', append(5));
    expect((await watcher.next()).value).toEqual({ type: 'resync', dropped: 4 });
    expect((await watcher.next()).value).toEqual(append(5));
    for (let i = 6; i <= 20; i++) hub.publish('u', append(i));
    const hint = (await watcher.next()).value as StoreChange;
    expect(hint.type).toBe('resync');
    hub.close();
    expect((await watcher.next()).done).toBe(true);
  });

  it('bounds memory for a watcher that never reads', () => {
    const hub = new ChangeHub({ maxQueuedChanges: 10 });
    hub.watch('u');
    for (let i = 0; i < 100_000; i++) hub.publish('u', append(i));
    expect(hub.watcherCount).toBe(1);
    hub.close();
    expect(hub.watcherCount).toBe(0);
  });

  it('unregisters on break and on abort', async () => {
    const hub = new ChangeHub();
    const controller = new AbortController();
    hub.watch('u', { signal: controller.signal });
    const other = hub.watch('u');
    hub.publish('u', append(1));
    for await (const _ of other) break;
    expect(hub.watcherCount).toBe(1);
    controller.abort();
    expect(hub.watcherCount).toBe(0);
  });

  it('filters by mailbox, renames included', async () => {
    const hub = new ChangeHub();
    const watcher = hub.watch('u', { mailbox: 'Old' });
    hub.publish('u', append(1));
    hub.publish('u', { type: 'mailbox-renamed', mailboxId: 'm', mailbox: 'New', oldName: 'Old' });
    expect((await watcher.next()).value).toMatchObject({ type: 'mailbox-renamed' });
    hub.close();
  });
});

describe('POP3 helpers', () => {
  it('formats UIDLs as Dovecot does by default: %08Xu%08Xv (UID, then UIDVALIDITY)', () => {
    expect(pop3Uidl(0x1234abcd, 42)).toBe('0000002a1234abcd');
  });

  it('cuts TOP the same for every chunking, bare LF or CRLF', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('\r\n', '\n'), fc.nat({ max: 5 }), fc.array(fc.nat(), { maxLength: 6 }), async (eol, lines, cuts) => {
        const header = `Subject: t${eol}From: a@b${eol}${eol}`;
        const body = ['one', 'two', 'three', 'four'].map((l) => l + eol).join('');
        const data = Buffer.from(header + body);
        const expected = header + body.split(eol).slice(0, lines).map((l) => l + eol).join('');
        const got = await collect(topOfMessage(asAsync(split(data, cuts)), lines));
        expect(got.toString()).toBe(lines >= 4 ? header + body : expected);
      }),
      { numRuns: 100 },
    );
  });
});

describe('structure', () => {
  it('computes the structure with @pigeonpost/mime, the same for bytes and for chunks', async () => {
    const message = Buffer.from('Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\ntwo\n--b--\r\n');
    const whole = await computeStructure(message);
    expect(whole).toMatchObject({ size: message.length, virtualSize: message.length + 1 });
    // A part without Content-Type is text/plain by default (RFC 2045 §5.2); the compact structure leaves the default out.
    expect(whole.root.children?.map((p) => `${p.type ?? "text"}/${p.subtype ?? "plain"}`)).toEqual(["text/plain", "text/html"]);
    expect(await computeStructure(asAsync(split(message, [3, 17, 40, 41])))).toEqual(whole);
  });

  it('caches, shares concurrent computations, evicts the least recently used and retries failures', async () => {
    const cache = new StructureCache({ maxEntries: 2 });
    let runs = 0;
    const compute = () => {
      runs++;
      return computeStructure(Buffer.from('A: b\r\n\r\n'));
    };
    await Promise.all([cache.get('a', compute), cache.get('a', compute)]);
    expect(runs).toBe(1);
    await cache.get('b', compute);
    await cache.get('a', compute);
    await cache.get('c', compute);
    expect(cache.size).toBe(2);
    await cache.get('a', compute);
    expect(runs).toBe(3);
    await expect(cache.get('x', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    await Promise.resolve();
    expect(await cache.get('x', compute)).toMatchObject({ size: 8 });
  });
});

describe('withVersions', () => {
  const view = Array.from({ length: 1000 }, (_, i) => ({ uid: 2 * i + 1, v: 0 }));
  it.each([
    ['a few (copied, each found by halving)', [1, 77, 1999]],
    ['many (merged)', Array.from({ length: 150 }, (_, i) => 4 * i + 1)],
  ])('puts the new versions in place and leaves the rest: %s', (_, uids) => {
    // Versions of messages the view holds, and of some it does not (even UIDs): those stay out.
    const updated = [...uids.map((uid) => ({ uid, v: 1 })), { uid: 100, v: 1 }, { uid: 2000, v: 1 }, { uid: 3000, v: 1 }].sort((a, b) => a.uid - b.uid);
    const out = withVersions(view, updated);
    expect(out.length).toBe(view.length);
    expect(out.map((m) => m.uid)).toEqual(view.map((m) => m.uid));
    expect(out.filter((m) => m.v === 1).map((m) => m.uid)).toEqual(uids);
    expect(view.every((m) => m.v === 0)).toBe(true);
  });
});
