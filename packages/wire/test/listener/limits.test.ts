import { afterEach, describe, expect, it } from 'vitest';
import { channels } from '../../src/diagnostics.js';
import { ListenerError } from '../../src/errors.js';
import type { Connection, RejectInfo } from '../../src/node/listener.js';
import { createListener } from '../../src/node/listener.js';
import { connect, lines, Opened, recordingLogger, settle, until } from './helpers.js';

const opened = new Opened();
afterEach(() => opened.close());

const tooMany = (info: RejectInfo): string => `421 4.7.0 Too many connections (${info.reason})\r\n`;

/** A session that greets, answers QUIT, and otherwise stays open. */
function greeter(connection: Connection): void {
  connection.socket.write('220 ready\r\n');
  lines(connection, (line) => {
    if (line === 'QUIT') connection.socket.end('221 bye\r\n');
  });
}

describe('connection limits', () => {
  it('refuses a client over maxConnectionsPerIp with the reject message, and frees the slot when a connection ends', async () => {
    const { listener, port } = await opened.listener({ onConnection: greeter, maxConnectionsPerIp: 2, rejectMessage: tooMany });
    const a = await connect(opened, port);
    const b = await connect(opened, port);
    await Promise.all([a.waitFor('220'), b.waitFor('220')]);

    const refused = await connect(opened, port);
    expect(await refused.closed).toBe('421 4.7.0 Too many connections (max-connections-per-ip)\r\n');

    const other = await connect(opened, port, '127.0.0.2');
    await other.waitFor('220 ready');
    expect(listener.stats().perIp).toEqual(new Map([['127.0.0.1', 2], ['127.0.0.2', 1]]));
    expect(listener.stats().total).toBe(3);
    expect(listener.connections.size).toBe(3);

    a.socket.write('QUIT\r\n');
    await a.closed;
    await until(() => listener.stats().perIp.get('127.0.0.1') === 1, 'slot freed');
    const c = await connect(opened, port);
    await c.waitFor('220 ready');
  });

  it('refuses over maxConnections whatever the address', async () => {
    const reasons: RejectInfo[] = [];
    const { listener, port } = await opened.listener({
      onConnection: greeter,
      maxConnections: 2,
      rejectMessage: (info) => {
        reasons.push(info);
        return tooMany(info);
      },
    });
    const a = await connect(opened, port);
    const b = await connect(opened, port, '127.0.0.2');
    await Promise.all([a.waitFor('220'), b.waitFor('220')]);
    const refused = await connect(opened, port, '127.0.0.3');
    expect(await refused.closed).toBe('421 4.7.0 Too many connections (max-connections)\r\n');
    expect(reasons).toMatchObject([{ reason: 'max-connections', remoteAddress: '127.0.0.3' }]);
    expect(listener.stats().total).toBe(2);
  });

  it('maxConnectionsPerIp 0 refuses everybody; a rejectMessage returning undefined closes silently', async () => {
    const { listener, port } = await opened.listener({ onConnection: greeter, maxConnectionsPerIp: 0, rejectMessage: () => undefined });
    const refused = await connect(opened, port);
    expect(await refused.closed).toBe('');
    expect(listener.stats()).toEqual({ total: 0, sessions: 0, perIp: new Map() });
  });

  it('keeps exact counts over many connect/disconnect cycles ending every way', async () => {
    const { listener, port } = await opened.listener({
      onConnection: (connection) => {
        greeter(connection);
        lines(connection, (line) => {
          if (line === 'DESTROY') connection.destroy();
          if (line === 'THROW') throw new Error('session bug');
        });
      },
      maxConnectionsPerIp: 4,
      rejectMessage: tooMany,
    });
    for (let round = 0; round < 6; round++) {
      // 6 clients at once from one address, 4 allowed: exactly 2 refused per round.
      const clients = await Promise.all(Array.from({ length: 6 }, () => connect(opened, port)));
      const outcomes = await Promise.all(clients.map((c) => c.waitFor('220').then(
          () => 'ok',
          () => 'refused',
        )));
      expect(outcomes.filter((o) => o === 'ok')).toHaveLength(4);
      const ok = clients.filter((_, i) => outcomes[i] === 'ok');
      ok[0]!.socket.write('QUIT\r\n'); // server ends
      ok[1]!.socket.end(); // client ends
      ok[2]!.socket.resetAndDestroy(); // client resets
      ok[3]!.socket.write('DESTROY\r\n'); // server destroys
      await Promise.all(clients.map((c) => c.closed));
      await until(() => listener.stats().total === 0, `round ${round} drained`);
    }
    expect(listener.stats()).toEqual({ total: 0, sessions: 0, perIp: new Map() });
    expect(listener.connections.size).toBe(0);
  });

  it('catches a session that throws or rejects: logged, connection destroyed, slot freed', async () => {
    const logger = recordingLogger();
    let calls = 0;
    const { listener, port } = await opened.listener({
      logger,
      onConnection: async (connection) => {
        calls++;
        connection.socket.write('220 ready\r\n');
        if (calls === 1) throw new Error('sync-looking failure');
        await settle(5);
        throw new Error('async failure');
      },
    });
    for (let i = 0; i < 2; i++) {
      const client = await connect(opened, port);
      expect(await client.closed).toBe('220 ready\r\n');
    }
    await until(() => listener.stats().total === 0, 'drained');
    expect(logger.records.filter((r) => r.level === 'error' && r.msg === 'session failed')).toHaveLength(2);
  });

  it('publishes connection, reject and close on diagnostics channels', async () => {
    const connectionEvents = opened.channel(channels.connection);
    const rejectEvents = opened.channel(channels.reject);
    const closeEvents = opened.channel(channels.close);
    const { listener, port } = await opened.listener({ onConnection: greeter, maxConnectionsPerIp: 1 });
    const a = await connect(opened, port);
    await a.waitFor('220');
    const refused = await connect(opened, port);
    await refused.closed;
    a.socket.write('QUIT\r\n');
    await a.closed;
    await until(() => closeEvents.length === 1, 'close event');
    expect(connectionEvents).toHaveLength(1);
    expect(connectionEvents[0]).toMatchObject({ listener, connection: { remoteAddress: '127.0.0.1' } });
    expect(rejectEvents).toMatchObject([{ listener, remoteAddress: '127.0.0.1', reason: 'max-connections-per-ip' }]);
    expect(closeEvents[0]).toMatchObject({ listener, reason: 'closed' });
  });

  it('binds several addresses, and checks its options', async () => {
    const listener = createListener({ onConnection: greeter });
    try {
      const first = await listener.listen({ host: '127.0.0.1', port: 0 });
      const second = await listener.listen({ host: '127.0.0.1', port: 0 });
      expect(first.port).not.toBe(second.port);
      expect(listener.addresses()).toHaveLength(2);
      expect(listener.address()).toEqual(first);
      const client = await connect(opened, second.port);
      await client.waitFor('220');
      const err = await listener.listen({ host: '127.0.0.1', port: first.port }).catch((e: unknown) => e);
      expect(ListenerError.isInstance(err) && err.code).toBe('ERR_LISTENER_LISTEN');
    } finally {
      await listener.close({ timeoutMs: 0 });
    }
    expect(() => createListener({ onConnection: greeter, maxConnections: -1 })).toThrow(RangeError);
    expect(() => createListener({ onConnection: greeter, proxyProtocol: { trustedProxies: ['10.0.0.0/33'] } })).toThrow(/not an IP address or CIDR/);
    expect(() => createListener({ onConnection: greeter, proxyProtocol: { trustedProxies: ['proxy.example'] } })).toThrow(ListenerError);
  });
});
