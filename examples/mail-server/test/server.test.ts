import { mkdtemp, rm, stat } from 'node:fs/promises';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import type { RunningMailServer } from '../src/server.js';
import { startMailServer } from '../src/server.js';

function readAll(socket: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
  });
}

describe('example mail server (interim)', () => {
  let dir: string;
  let server: RunningMailServer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pigeonpost-server-'));
    server = await startMailServer({
      ...defaultConfig,
      dataDir: dir,
      services: defaultConfig.services.map((s) => ({ ...s, port: 0 })),
    });
  });

  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes development certificates with a private key only its owner reads', async () => {
    const mode = (await stat(join(dir, 'certs', 'key.pem'))).mode & 0o777;
    expect(mode).toBe(0o600);
    expect(server.caCert).toContain('BEGIN CERTIFICATE');
  });

  it('answers each plaintext service with its protocol’s "not available" reply', async () => {
    const expected: Record<string, RegExp> = { smtp: /^421 4\.3\.2 /, pop3: /^-ERR \[SYS\/TEMP\] /, imap: /^\* BYE \[UNAVAILABLE\] / };
    for (const service of server.services.filter((s) => !s.config.implicitTls)) {
      const socket = netConnect(service.addresses[0]!.port, '127.0.0.1');
      const text = await readAll(socket);
      expect(text, service.config.name).toMatch(expected[service.config.protocol]!);
      expect(text.endsWith('\r\n')).toBe(true);
    }
  });

  it('serves the implicit-TLS ports with a certificate the development CA verifies', async () => {
    const smtps = server.services.find((s) => s.config.name === 'smtps')!;
    const socket = tlsConnect({ port: smtps.addresses[0]!.port, host: '127.0.0.1', servername: 'localhost', ca: server.caCert });
    await new Promise<void>((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
    expect(socket.authorized).toBe(true);
    expect(socket.getProtocol()).toMatch(/^TLSv1\.[23]$/);
    expect(await readAll(socket)).toMatch(/^421 4\.3\.2 localhost /);
  });
});
