import { afterEach, describe, expect, it } from 'vitest';
import { channels } from '../../src/diagnostics.js';
import type { Connection } from '../../src/node/listener.js';
import { VirtualClock } from '../../src/testing/virtual-clock.js';
import { connect, lines, Opened, settle, until } from './helpers.js';

const opened = new Opened();
afterEach(() => opened.close());

/** A session that says goodbye on idle and counts the lines it has read. */
function idleSession(received: string[], onLine?: (line: string, connection: Connection) => void) {
  return (connection: Connection): void => {
    connection.onIdle = () => {
      connection.socket.write('421 4.4.2 Idle timeout\r\n');
    };
    connection.socket.write('220 ready\r\n');
    lines(connection, (line) => {
      received.push(line);
      onLine?.(line, connection);
    });
  };
}

describe('idle timeout on a virtual clock', () => {
  it('keeps the connection below the timeout, restarts on data, closes after onIdle wrote its goodbye', async () => {
    const clock = new VirtualClock();
    const received: string[] = [];
    const idleEvents = opened.channel(channels.idle);
    const { listener, port } = await opened.listener({ clock, idleTimeoutMs: 1000, onConnection: idleSession(received) });
    const client = await connect(opened, port);
    await client.waitFor('220 ready\r\n');

    clock.advance(999);
    await settle();
    expect(client.isClosed()).toBe(false);

    client.socket.write('NOOP\r\n'); // at t=999: the deadline moves to 1999
    await until(() => received.length === 1, 'NOOP read');
    clock.advance(999); // t=1998
    await settle();
    expect(client.isClosed()).toBe(false);
    expect(idleEvents).toHaveLength(0);

    clock.advance(1); // t=1999
    expect(await client.closed).toBe('220 ready\r\n421 4.4.2 Idle timeout\r\n');
    expect(idleEvents).toHaveLength(1);
    await until(() => listener.stats().total === 0, 'slot freed');
    expect(clock.pending).toBe(0);
  });

  it('counts bytes the session has not read yet as activity', async () => {
    const clock = new VirtualClock();
    let server: Connection['socket'] | undefined;
    const { port } = await opened.listener({
      clock,
      idleTimeoutMs: 1000,
      onConnection: (connection) => {
        // This session never reads: the bytes stay in the socket's buffer, untouched by the listener.
        server = connection.socket;
        connection.socket.write('220 ready\r\n');
      },
    });
    const client = await connect(opened, port);
    await client.waitFor('220');
    clock.advance(500);
    client.socket.write('early bytes\r\n');
    // Node has pushed them into the server socket's buffer (where the listener notes them), at t=500.
    await until(() => (server?.readableLength ?? 0) > 0, 'bytes buffered');
    clock.advance(900);
    await settle();
    expect(client.isClosed()).toBe(false);
    clock.advance(100);
    await client.closed;
  });

  it('setIdleTimeout lengthens the timeout (IMAP IDLE), touch() restarts it, 0 turns it off', async () => {
    const clock = new VirtualClock();
    const received: string[] = [];
    let session: Connection | undefined;
    const { port } = await opened.listener({
      clock,
      idleTimeoutMs: 1000,
      onConnection: idleSession(received, (line, connection) => {
        session = connection;
        if (line === 'IDLE') connection.setIdleTimeout(30_000);
        if (line === 'FOREVER') connection.setIdleTimeout(0);
      }),
    });
    const client = await connect(opened, port);
    await client.waitFor('220');
    client.socket.write('IDLE\r\n');
    await until(() => received.length === 1, 'IDLE read');
    clock.advance(29_999);
    await settle();
    expect(client.isClosed()).toBe(false);
    session!.touch(); // t=29999: the deadline moves to 59999
    clock.advance(29_999);
    await settle();
    expect(client.isClosed()).toBe(false);
    client.socket.write('FOREVER\r\n');
    await until(() => received.length === 2, 'FOREVER read');
    clock.advance(10_000_000);
    await settle();
    expect(client.isClosed()).toBe(false);
    session!.setIdleTimeout(10);
    clock.advance(10);
    expect(await client.closed).toContain('421 4.4.2 Idle timeout\r\n');
  });

  it('off and on again (a session pausing around a hook) keeps one timer and the right deadline', async () => {
    const clock = new VirtualClock();
    const received: string[] = [];
    let session: Connection | undefined;
    const { port } = await opened.listener({
      clock,
      idleTimeoutMs: 1000,
      onConnection: idleSession(received, (_line, connection) => {
        session = connection;
      }),
    });
    const client = await connect(opened, port);
    await client.waitFor('220');
    client.socket.write('HOOK\r\n');
    await until(() => received.length === 1, 'line read');
    const pending = clock.pending;
    clock.advance(500);
    for (let i = 0; i < 100; i++) {
      session!.setIdleTimeout(0);
      session!.setIdleTimeout(1000);
    }
    expect(clock.pending).toBe(pending); // no timer churn
    session!.setIdleTimeout(0);
    clock.advance(5000); // off: the old timer fires and stops
    await settle();
    expect(client.isClosed()).toBe(false);
    session!.setIdleTimeout(1000); // t=5500: deadline 6500
    clock.advance(999);
    await settle();
    expect(client.isClosed()).toBe(false);
    session!.setIdleTimeout(100); // a nearer deadline: t=6599
    clock.advance(100);
    expect(await client.closed).toContain('421 4.4.2 Idle timeout\r\n');
  });

  it('destroys the socket when the goodbye takes longer than goodbyeTimeoutMs', async () => {
    const clock = new VirtualClock();
    let hookCalled = false;
    const { listener, port } = await opened.listener({
      clock,
      idleTimeoutMs: 100,
      goodbyeTimeoutMs: 50,
      onConnection: (connection) => {
        connection.socket.write('220 ready\r\n');
        connection.onIdle = () => {
          hookCalled = true;
          return new Promise<void>(() => {}); // never finishes
        };
      },
    });
    const client = await connect(opened, port);
    await client.waitFor('220');
    clock.advance(100);
    await settle();
    expect(hookCalled).toBe(true);
    expect(client.isClosed()).toBe(false);
    clock.advance(50);
    await client.closed;
    await until(() => listener.stats().total === 0, 'slot freed');
  });
});
