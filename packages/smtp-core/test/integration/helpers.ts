import * as net from 'node:net';
import * as tls from 'node:tls';

/** A raw client that keeps every received byte, for exact-bytes assertions. */
export interface RawClient {
  socket: net.Socket;
  received: () => string;
  send(text: string): void;
  /** Wait until the received text matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  startTls(ca: string): Promise<void>;
  closed: Promise<void>;
}

export async function rawConnect(port: number, host = '127.0.0.1'): Promise<RawClient> {
  const socket = net.connect({ port, host });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return wrap(socket);
}

function wrap(initial: net.Socket): RawClient {
  let text = '';
  let current: net.Socket = initial;
  const waiters = new Set<() => void>();
  const onData = (chunk: Buffer): void => {
    text += chunk.toString('utf8');
    for (const w of waiters) w();
  };
  initial.on('data', onData);
  initial.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => initial.once('close', () => resolve()));
  return {
    get socket() {
      return current;
    },
    received: () => text,
    send: (t) => void current.write(t),
    closed,
    waitFor(pattern, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (pattern.test(text)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(text);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timeout waiting for ${String(pattern)}; got ${JSON.stringify(text)}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async startTls(ca) {
      initial.removeListener('data', onData);
      const secure = tls.connect({ socket: initial, ca, servername: 'localhost' });
      await new Promise<void>((resolve, reject) => {
        secure.once('secureConnect', resolve);
        secure.once('error', reject);
      });
      secure.on('data', onData);
      current = secure;
    },
  };
}
