import { describe, expect, it } from 'vitest';
import { Pop3ClientError } from '../../src/errors.js';
import { createMemoryPop3Backend, createPop3Pair } from '../../src/testing/index.js';

function backendWith(...bodies: string[]): ReturnType<typeof createMemoryPop3Backend> {
  const backend = createMemoryPop3Backend();
  for (const b of bodies) backend.add('alice', b);
  return backend;
}

describe('client ↔ server in memory', () => {
  it('STLS, then the strongest SASL mechanism; every command; deletions at QUIT', async () => {
    const backend = backendWith('Subject: one\r\n\r\n.dot line\r\nbody\r\n', 'Subject: two\n\nbare LF\n');
    const { client } = await createPop3Pair({ backend });
    expect(client.secure).toBe(true);
    expect(client.authMethod).toBe('PLAIN');
    expect(client.pipelining).toBe(true);
    expect(client.capabilities.get('IMPLEMENTATION')).toEqual(['Pigeonpost']);
    expect(await client.stat()).toEqual({ count: 2, size: 33 + 25 });
    expect(await client.list()).toEqual([
      { number: 1, size: 33 },
      { number: 2, size: 25 },
    ]);
    expect(await client.list(2)).toEqual({ number: 2, size: 25 });
    expect(await client.uidl()).toEqual([
      { number: 1, uidl: 'uid1' },
      { number: 2, uidl: 'uid2' },
    ]);
    expect(await client.uidl(1)).toEqual({ number: 1, uidl: 'uid1' });
    const one = await client.retr(1);
    expect(one.status).toBe('33 octets');
    expect((await one.bytes()).toString()).toBe('Subject: one\r\n\r\n.dot line\r\nbody\r\n');
    expect((await (await client.retr(2)).bytes()).toString()).toBe('Subject: two\r\n\r\nbare LF\r\n');
    expect((await (await client.top(1, 0)).bytes()).toString()).toBe('Subject: one\r\n\r\n');
    await client.dele(1);
    await client.noop();
    await client.rset();
    await client.dele(2);
    const err = await client.retr(2).catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(err) && err.code).toBe('ERR_POP3_CLIENT_REPLY');
    await client.quit();
    expect(backend.maildrops.get('alice')!.map((m) => [m.uid, m.seen])).toEqual([[1, true]]);
  });

  it('pipelines: many commands in flight, responses in order; a stream abandoned early is drained', async () => {
    const bodies = Array.from({ length: 20 }, (_, i) => `Subject: ${i}\r\n\r\n${'x'.repeat(i * 10)}\r\n`);
    const { client } = await createPop3Pair({ backend: backendWith(...bodies) });
    const streams = await Promise.all(bodies.map((_, i) => client.retr(i + 1).then((s) => s.bytes())));
    expect(streams.map((b) => b.toString())).toEqual(bodies);
    const dels = await Promise.all(bodies.map((_, i) => client.dele(i + 1)));
    expect(dels).toHaveLength(20);
    await client.rset();
    const s = await client.retr(3);
    for await (const chunk of s) {
      expect(chunk.length).toBeGreaterThan(0);
      break;
    }
    expect(await client.stat()).toEqual({ count: 20, size: bodies.reduce((n, b) => n + b.length, 0) });
    await client.quit();
  });

  it('APOP when there is no SASL; USER/PASS when there is neither', async () => {
    const apop = await createPop3Pair({ auth: { mechanisms: ['CRAM-MD5'], backend: {} } as never }, {}).catch((e: unknown) => e);
    expect(apop).toBeInstanceOf(Error);
    const backend = backendWith('a\r\n');
    const { client } = await createPop3Pair({ backend, auth: { server: { mechanisms: [], advertise: () => [], createSession: () => { throw new Error('no'); } } } }, {});
    expect(client.authMethod).toBe('APOP');
    await client.quit();
    const noApop = createMemoryPop3Backend();
    delete (noApop as { getApopSecret?: unknown }).getApopSecret;
    const user = await createPop3Pair({ backend: noApop, auth: { server: { mechanisms: [], advertise: () => [], createSession: () => { throw new Error('no'); } } } }, {});
    expect(user.client.authMethod).toBe('USER');
    await user.client.quit();
  });

  it('typed errors: wrong password, [IN-USE], refusing plaintext without TLS, abort', async () => {
    const wrong = await createPop3Pair({ authFailureDelayMs: 0 }, { auth: { username: 'alice', password: 'nope' } }).catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(wrong) && [wrong.code, wrong.responseCode]).toEqual(['ERR_POP3_CLIENT_AUTH_FAILED', 'AUTH']);
    const backend = backendWith();
    const first = await createPop3Pair({ backend });
    const second = await createPop3Pair({ backend }).catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(second) && [second.code, second.responseCode]).toEqual(['ERR_POP3_CLIENT_AUTH_FAILED', 'IN-USE']);
    await first.client.quit();
    const insecure = await createPop3Pair({ allowInsecureAuth: true }, { secure: 'none' }).catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(insecure) && insecure.code).toBe('ERR_POP3_CLIENT_AUTH_INSECURE');
    const aborted = new AbortController();
    aborted.abort();
    const a = await createPop3Pair({}, { signal: aborted.signal }).catch((e: unknown) => e);
    expect(Pop3ClientError.isInstance(a) && a.code).toBe('ERR_POP3_CLIENT_ABORTED');
  });
});
