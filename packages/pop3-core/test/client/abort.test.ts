import { describe, expect, it } from 'vitest';
import { VirtualClock } from '@pigeonpost/wire/testing';
import { Pop3ClientConnection } from '../../src/client/connection.js';
import type { ClientTransport } from '../../src/client/connection.js';
import { Pop3ClientError } from '../../src/errors.js';

/** A server that answers the greeting and CAPA, then goes silent. */
function silentAfterCapa(): ClientTransport & { destroyed: boolean } {
  const replies = [Buffer.from('+OK ready\r\n'), Buffer.from('+OK\r\nUSER\r\n.\r\n')];
  let wake: (() => void) | undefined;
  const t = {
    destroyed: false,
    secure: false,
    async read(): Promise<Uint8Array | null> {
      const next = replies.shift();
      if (next !== undefined) return next;
      if (t.destroyed) return null;
      await new Promise<void>((resolve) => (wake = resolve));
      return null;
    },
    write: () => Promise.resolve(),
    end: () => Promise.resolve(),
    destroy() {
      t.destroyed = true;
      wake?.();
    },
  };
  return t;
}

describe('client cancellation and timeouts', () => {
  it('an AbortSignal fired while waiting rejects with ERR_POP3_CLIENT_ABORTED and closes the connection', async () => {
    const controller = new AbortController();
    const transport = silentAfterCapa();
    const client = await Pop3ClientConnection.open(transport, { clock: new VirtualClock(0), signal: controller.signal });
    const pending = client.stat();
    controller.abort(new Error('user cancelled'));
    const error = await pending.catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(error) && error.code).toBe('ERR_POP3_CLIENT_ABORTED');
    expect(transport.destroyed).toBe(true);
    const after = await client.noop().catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(after) && after.code).toBe('ERR_POP3_CLIENT_ABORTED');
  });

  it('a silent server runs into commandTimeoutMs on the clock', async () => {
    const clock = new VirtualClock(0);
    const transport = silentAfterCapa();
    const client = await Pop3ClientConnection.open(transport, { clock, limits: { commandTimeoutMs: 1000 } });
    const pending = client.stat().catch((e: unknown) => e);
    await new Promise((r) => setImmediate(r));
    clock.advance(1000);
    const error = await pending;
    expect(Pop3ClientError.isInstance(error) && error.code).toBe('ERR_POP3_CLIENT_TIMEOUT');
    expect(transport.destroyed).toBe(true);
  });

  it('STLS required but not offered: ERR_POP3_CLIENT_STLS_UNAVAILABLE (no downgrade)', async () => {
    const error = await Pop3ClientConnection.open(silentAfterCapa(), { clock: new VirtualClock(0), secure: 'starttls' }).catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(error) && error.code).toBe('ERR_POP3_CLIENT_STLS_UNAVAILABLE');
  });
});
