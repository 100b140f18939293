import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { Pop3ClientConnection } from '../../src/client/connection.js';
import type { ClientTransport } from '../../src/client/connection.js';
import { Pop3ClientError } from '../../src/errors.js';

/**
 * A scripted server: the greeting, a CAPA without PIPELINING, then for each
 * command written the next of `answers`, handed to the client `chunk` bytes
 * at a time (1: byte by byte).
 */
function scripted(answers: string[], chunk = Infinity): ClientTransport {
  const pending: Buffer[] = [];
  let wake: (() => void) | undefined;
  const queue = (text: string): void => {
    const bytes = Buffer.from(text, 'utf8');
    for (let i = 0; i < bytes.length; i += Math.min(chunk, bytes.length)) pending.push(bytes.subarray(i, i + Math.min(chunk, bytes.length)));
    wake?.();
  };
  queue('+OK ready\r\n');
  const replies = ['+OK\r\nUSER\r\n.\r\n', ...answers];
  return {
    secure: false,
    async read(): Promise<Uint8Array | null> {
      while (pending.length === 0) await new Promise<void>((resolve) => (wake = resolve));
      return pending.shift()!;
    },
    write(): Promise<void> {
      const reply = replies.shift();
      if (reply !== undefined) queue(reply);
      return Promise.resolve();
    },
    end: () => Promise.resolve(),
    destroy: () => undefined,
  };
}

async function open(answers: string[], chunk?: number, maxListingLines?: number): Promise<Pop3ClientConnection> {
  return Pop3ClientConnection.open(scripted(answers, chunk), { clock: new VirtualClock(0), ...(maxListingLines === undefined ? {} : { limits: { maxListingLines } }) });
}

async function failure(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!Pop3ClientError.isInstance(error)) throw new Error(`expected a Pop3ClientError, got ${String(error)}`);
  return { code: error.code, message: error.message };
}

describe('LIST and UIDL listings', () => {
  const list = '+OK 4 messages\r\n1 120\r\n2 3400 extra words\r\n10 7\n11 8\r\n.\r\n';
  const uidl = '+OK\r\n1 a1b2\r\n2 Zürich-9\r\n3 x!~}\tnote\r\n.\r\n';

  for (const chunk of [Infinity, 1, 5]) {
    it(`parses entries from the bytes (CRLF or LF ends, words after the value ignored), fed ${chunk === Infinity ? 'whole' : `${chunk} byte(s) at a time`}`, async () => {
      const client = await open([list, uidl], chunk);
      expect(await client.list()).toEqual([
        { number: 1, size: 120 },
        { number: 2, size: 3400 },
        { number: 10, size: 7 },
        { number: 11, size: 8 },
      ]);
      expect(await client.uidl()).toEqual([
        { number: 1, uidl: 'a1b2' },
        { number: 2, uidl: 'Zürich-9' },
        { number: 3, uidl: 'x!~}' },
      ]);
    });
  }

  it('any listing of "n value" lines comes back entry for entry, however the bytes arrive', async () => {
    const entry = fc.record({
      number: fc.integer({ min: 1, max: 2 ** 31 }),
      size: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      // RFC 1939 §7: 0x21–0x7E, 1–70 characters.
      uidl: fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 70 }),
      lf: fc.boolean(),
      extra: fc.constantFrom('', ' more', '\tnote'),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(entry, { maxLength: 40 }), fc.integer({ min: 1, max: 64 }), async (entries, chunk) => {
        const body = (value: (e: (typeof entries)[number]) => string): string =>
          entries.map((e, i) => `${e.number} ${value(e)}${e.extra}${e.lf && i < entries.length - 1 ? '\n' : '\r\n'}`).join('');
        const client = await open([`+OK\r\n${body((e) => String(e.size))}.\r\n`, `+OK\r\n${body((e) => e.uidl)}.\r\n`], chunk);
        expect(await client.list()).toEqual(entries.map((e) => ({ number: e.number, size: e.size })));
        expect(await client.uidl()).toEqual(entries.map((e) => ({ number: e.number, uidl: e.uidl })));
      }),
      { numRuns: 150 },
    );
  });

  it('an empty listing is an empty array', async () => {
    const client = await open(['+OK 0 messages\r\n.\r\n', '+OK\r\n.\r\n']);
    expect(await client.list()).toEqual([]);
    expect(await client.uidl()).toEqual([]);
  });

  it('a size that is not digits, or a line that is not "n value", is a malformed response; the connection goes on', async () => {
    const client = await open(['+OK\r\n1 12x\r\n.\r\n', '+OK\r\n1 10\r\nnot a line\r\n.\r\n', '+OK\r\n1  double-space\r\n.\r\n', '+OK\r\n1 10\r\n\r\n2 20\r\n.\r\n', '+OK\r\n1\r\n.\r\n', '+OK\r\n1 5\r\n.\r\n']);
    expect(await failure(client.list())).toEqual({ code: 'ERR_POP3_CLIENT_MALFORMED_RESPONSE', message: 'bad size "12x"' });
    expect(await failure(client.list())).toEqual({ code: 'ERR_POP3_CLIENT_MALFORMED_RESPONSE', message: 'bad listing line "not a line"' });
    expect((await failure(client.uidl())).message).toBe('bad listing line "1  double-space"');
    expect((await failure(client.list())).message).toBe('bad listing line ""');
    expect((await failure(client.list())).message).toBe('bad listing line "1"');
    // Each listing was read to its end: the next command gets its own answer.
    expect(await client.list()).toEqual([{ number: 1, size: 5 }]);
  });

  it('more lines than maxListingLines is a malformed response', async () => {
    const client = await open(['+OK\r\n1 10\r\n2 20\r\n3 30\r\n.\r\n', '+OK\r\n1 10\r\n2 20\r\n.\r\n'], undefined, 2);
    expect(await failure(client.list())).toEqual({ code: 'ERR_POP3_CLIENT_MALFORMED_RESPONSE', message: 'LIST listing has more than 2 lines' });
    expect(await client.list()).toHaveLength(2);
  });

  it('a -ERR to LIST or UIDL is ERR_POP3_CLIENT_REPLY', async () => {
    const client = await open(['-ERR no\r\n', '-ERR [SYS/TEMP] later\r\n']);
    expect((await failure(client.list())).code).toBe('ERR_POP3_CLIENT_REPLY');
    expect(await failure(client.uidl())).toEqual({ code: 'ERR_POP3_CLIENT_REPLY', message: 'UIDL: -ERR [SYS/TEMP] later' });
  });
});
