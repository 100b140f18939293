import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenerError } from '../../src/errors.js';
import type { Connection } from '../../src/node/listener.js';
import { createListener } from '../../src/node/listener.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { connect, lines, Opened, settle, until } from './helpers.js';

const opened = new Opened();
afterEach(() => opened.close());

/**
 * A DATA-like exchange: BEGIN, then lines, then END. When the listener closes,
 * the session finishes the transaction in flight, then says 421 and ends.
 */
function transactionSession(log: string[]) {
  return (connection: Connection): Promise<void> => {
    let inTransaction = false;
    connection.closing.addEventListener('abort', () => {
      log.push('closing observed');
      if (!inTransaction) connection.socket.end('421 4.3.2 Shutting down\r\n');
    });
    connection.socket.write('220 ready\r\n');
    lines(connection, (line) => {
      if (line === 'BEGIN') {
        inTransaction = true;
        connection.socket.write('354 go ahead\r\n');
      } else if (line === 'END') {
        inTransaction = false;
        connection.socket.write('250 stored\r\n');
        if (connection.closing.aborted) connection.socket.end('421 4.3.2 Shutting down\r\n');
      } else if (!inTransaction) {
        connection.socket.write('500 unknown\r\n');
      }
    });
    return connection.closed.then(() => {
      log.push('session returned');
    });
  };
}

describe('graceful close', () => {
  it('lets a session in flight finish its exchange, refuses new connections, and resolves only after it ends', async () => {
    const log: string[] = [];
    const { listener, port } = await opened.listener({ onConnection: transactionSession(log) });
    const busy = await connect(opened, port);
    const idle = await connect(opened, port);
    await Promise.all([busy.waitFor('220'), idle.waitFor('220')]);
    busy.socket.write('BEGIN\r\n');
    await busy.waitFor('354');

    let closed = false;
    const closing = listener.close().then(() => {
      closed = true;
    });
    expect(listener.state).toBe('closing');
    await until(() => log.filter((l) => l === 'closing observed').length === 2, 'both sessions see closing');
    // The idle session is told at once.
    expect(await idle.closed).toBe('220 ready\r\n421 4.3.2 Shutting down\r\n');

    // New connections are refused: nothing listens any more.
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
    });
    expect(refused).toBe('ECONNREFUSED');

    busy.socket.write('line 1\r\n');
    await settle();
    busy.socket.write('line 2\r\nEND\r\n');
    await busy.waitFor('250 stored');
    expect(await busy.closed).toBe('220 ready\r\n354 go ahead\r\n250 stored\r\n421 4.3.2 Shutting down\r\n');
    await closing;
    expect(closed).toBe(true);
    expect(listener.state).toBe('closed');
    expect(log.filter((l) => l === 'session returned')).toHaveLength(2);
    expect(listener.stats()).toEqual({ total: 0, sessions: 0, perIp: new Map() });
  });

  it('waits for a session to return even after its socket closed', async () => {
    let finish!: () => void;
    const { listener, port } = await opened.listener({
      onConnection: async (connection) => {
        connection.socket.end('220 bye\r\n');
        await new Promise<void>((resolve) => {
          finish = resolve;
        });
      },
    });
    const client = await connect(opened, port);
    await client.closed;
    let closed = false;
    const closing = listener.close().then(() => {
      closed = true;
    });
    await settle();
    expect(closed).toBe(false);
    finish();
    await closing;
  });

  it('destroys a stuck session after closeTimeoutMs', async () => {
    const clock = new VirtualClock();
    let sawClosing = false;
    const { listener, port } = await opened.listener({
      clock,
      closeTimeoutMs: 1000,
      onConnection: (connection) => {
        connection.socket.write('220 ready\r\n');
        connection.closing.addEventListener('abort', () => {
          sawClosing = true; // and does nothing about it
        });
      },
    });
    const client = await connect(opened, port);
    await client.waitFor('220');
    let closed = false;
    const first = listener.close();
    expect(listener.close()).toBe(first);
    void first.then(() => {
      closed = true;
    });
    await settle();
    expect(sawClosing).toBe(true);
    clock.advance(999);
    await settle();
    expect(closed).toBe(false);
    expect(client.isClosed()).toBe(false);
    clock.advance(1);
    await first;
    expect(await client.closed).toBe('220 ready\r\n');
    expect(listener.stats().total).toBe(0);
    const err = await listener.listen({ host: '127.0.0.1', port: 0 }).catch((e: unknown) => e);
    expect(ListenerError.isInstance(err) && err.code).toBe('ERR_LISTENER_CLOSED');
  });

  it('works with await using', async () => {
    let outer: { state: string } | undefined;
    {
      await using listener = createListener({ onConnection: (c) => void c.socket.end('220 bye\r\n') });
      outer = listener;
      const { port } = await listener.listen({ host: '127.0.0.1', port: 0 });
      const client = await connect(opened, port);
      expect(await client.closed).toBe('220 bye\r\n');
    }
    expect(outer.state).toBe('closed');
  });
});
