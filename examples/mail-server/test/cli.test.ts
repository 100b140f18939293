import { EventEmitter } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword, Secret, verifyPassword } from '@pigeonpost/wire';
import type { CliIo } from '../src/cli.js';
import { runCli, serve } from '../src/cli.js';

function fakeIo(env: NodeJS.ProcessEnv, stdin = ''): CliIo & { out: string[]; err: string[]; signals: EventEmitter; exits: number[]; exited: Promise<number> } {
  const out: string[] = [];
  const err: string[] = [];
  const exits: number[] = [];
  let onExit: (code: number) => void = () => {};
  const exited = new Promise<number>((resolve) => (onExit = resolve));
  return {
    env,
    stdin: Readable.from([stdin]),
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    signals: new EventEmitter(),
    exit: (code) => {
      exits.push(code);
      onExit(code);
    },
    out,
    err,
    exits,
    exited,
  };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect(port, '127.0.0.1');
    s.once('error', () => resolve(true)).once('connect', () => {
      s.destroy();
      resolve(false);
    });
  });
}

describe('the command line (what npm start runs)', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pigeonpost-cli-'));
    const ports = Object.fromEntries(['smtp', 'submission', 'smtps', 'pop3', 'pop3s', 'imap', 'imaps'].map((n) => [n, 0]));
    const users = [{ address: 'tim@example.test', passwordHash: await hashPassword(new Secret('pw'), { ln: 10 }) }];
    await writeFile(join(dir, 'config.json'), JSON.stringify({ domains: ['example.test'], users, ports, fsync: false }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hash-password prints a hash of the password on stdin that verifies', async () => {
    const io = fakeIo({}, 'correct horse\n');
    expect(await runCli(['hash-password'], io)).toBe(0);
    const hash = io.out.join('').trim();
    expect(hash).toMatch(/^\$scrypt\$/);
    expect(await verifyPassword(new Secret('correct horse'), hash)).toBe(true);
  });

  it('stops on a bad config file with the field named and exit code 78, and on an unknown command with 2', async () => {
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ ports: { smtp: 'twenty-five' } }));
    const io = fakeIo({ PIGEONPOST_CONFIG: join(dir, 'bad.json') });
    expect(await runCli([], io)).toBe(78);
    expect(io.err.join('')).toMatch(/bad\.json: ports\.smtp: must be an integer/);
    expect(await runCli(['frobnicate'], fakeIo({}))).toBe(2);
  });

  it('serves on the config file, logs JSON lines, and closes everything on SIGTERM with exit code 0', async () => {
    const io = fakeIo({ PIGEONPOST_DATA_DIR: dir });
    const server = await serve(io);
    const lines = io.out.join('').trim().split('\n').map((l) => JSON.parse(l) as { msg: string; ports?: Record<string, number> });
    const ready = lines.find((l) => l.msg.startsWith('ready'));
    expect(ready?.ports && Object.keys(ready.ports)).toEqual(['smtp', 'submission', 'smtps', 'pop3', 'pop3s', 'imap', 'imaps']);
    expect(lines.some((l) => l.msg.startsWith('development user'))).toBe(false); // users come from the file
    expect(await refused(ready!.ports!['smtp']!)).toBe(false);

    const second = fakeIo({ PIGEONPOST_DATA_DIR: dir });
    expect(await runCli([], second)).toBe(1); // the queue belongs to the running server
    expect(second.err.join('')).toMatch(/^pigeonpost: cannot start: ERR_RELAY_SPOOL_LOCKED: /);

    io.signals.emit('SIGTERM');
    expect(await io.exited).toBe(0);
    for (const s of server.services) expect(await refused(s.addresses[0]!.port), s.config.name).toBe(true);
    expect(io.out.join('')).toContain('"msg":"closed"');
  });

  it('a second signal while closing exits at once with 1', async () => {
    const io = fakeIo({ PIGEONPOST_DATA_DIR: dir });
    const server = await serve(io);
    io.signals.emit('SIGINT');
    io.signals.emit('SIGINT');
    expect(io.exits[0]).toBe(1);
    await server.close(); // the fake exit does not end the process: finish the close
  });
});
