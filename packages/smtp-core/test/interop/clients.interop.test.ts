/**
 * Interop: real SMTP clients from Debian against our server — swaks, curl and
 * Python's smtplib. Each is found with `findPeer`: outside CI a missing one
 * skips with the reason, under CI=true it fails the run.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '@pigeonpost/wire';
import { createDevCertificates, createServerTlsOptions } from '@pigeonpost/wire/node';
import { findPeer } from '@pigeonpost/wire/testing';
import { createSmtpServer } from '../../src/node/server.js';
import type { SmtpServer } from '../../src/node/server.js';
import type { SmtpEnvelope, SmtpSessionInfo } from '../../src/server/types.js';

const swaks = findPeer('swaks', { versionArgs: ['--version'], debianPackage: 'swaks' });
const curl = findPeer('curl', { versionArgs: ['--version'], debianPackage: 'curl' });
const python = findPeer('python3', { versionArgs: ['--version'], debianPackage: 'python3' });

interface Received {
  envelope: SmtpEnvelope;
  session: SmtpSessionInfo;
  body: string;
}

let dir: string;
let caFile: string;
let plain: { server: SmtpServer; port: number; received: Received[] };
let submission: { server: SmtpServer; port: number; received: Received[] };
let implicit: { server: SmtpServer; port: number; received: Received[] };

function run(command: string, args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(command, args, { timeout: 30_000, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'smtp-interop-'));
  const certs = await createDevCertificates();
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, certs.caCert);
  const tls = createServerTlsOptions({ key: certs.key, cert: certs.cert });
  const make = async (extra: Partial<Parameters<typeof createSmtpServer>[0]>) => {
    const received: Received[] = [];
    const server = createSmtpServer({
      hostname: 'mx.example.org',
      tls,
      authFailureDelayMs: 0,
      onRcptTo: (to) => (to.asciiDomain === 'example.org' ? Promise.resolve() : Promise.reject(new Error('x'))),
      onData: async (envelope, body, session) => {
        const chunks: Buffer[] = [];
        for await (const c of body) chunks.push(Buffer.from(c));
        received.push({ envelope, session, body: Buffer.concat(chunks).toString('utf8') });
      },
      ...extra,
    });
    const { port } = await server.listen({ host: '127.0.0.1', port: 0 });
    return { server, port, received };
  };
  const auth = {
    mechanisms: ['CRAM-MD5', 'PLAIN', 'LOGIN'] as const,
    backend: {
      verifyPassword: ({ authcid, password }: { authcid: string; password: Secret }) => Promise.resolve(authcid === 'tim' && password.expose() === 'pass'),
      getCramMd5Secret: ({ authcid }: { authcid: string }) => Promise.resolve(authcid === 'tim' ? new Secret('pass') : undefined),
    },
  };
  plain = await make({});
  submission = await make({ submission: true, auth });
  implicit = await make({ secure: true });
});

afterAll(async () => {
  await Promise.all([plain, submission, implicit].filter(Boolean).map((s) => s.server.close({ timeoutMs: 0 })));
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(!swaks.available)(`swaks${swaks.available ? '' : ` (skipped: ${swaks.reason})`}`, () => {
  it('plain, pipelined', async () => {
    const r = await run('swaks', ['--server', `127.0.0.1:${plain.port}`, '--from', 'a@client.example', '--to', 'b@example.org', '--pipeline', '--header', 'Subject: swaks', '--body', 'hello from swaks']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(plain.received.at(-1)?.body).toContain('hello from swaks');
  });

  it('STARTTLS and AUTH on a submission server', async () => {
    for (const method of ['PLAIN', 'LOGIN', 'CRAM-MD5']) {
      const r = await run('swaks', ['--server', `127.0.0.1:${submission.port}`, '--tls', '--auth', method, '--auth-user', 'tim', '--auth-password', 'pass', '--from', 'tim@client.example', '--to', 'b@example.org']);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(submission.received.at(-1)?.session).toMatchObject({ secure: true, user: { mechanism: method } });
    }
  });

  it('AUTH before STARTTLS is refused with 538', async () => {
    const r = await run('swaks', ['--server', `127.0.0.1:${submission.port}`, '--auth', 'PLAIN', '--auth-user', 'tim', '--auth-password', 'pass', '--from', 'tim@client.example', '--to', 'b@example.org']);
    expect(r.code).not.toBe(0);
    // AUTH is not even advertised before TLS (RFC 4954 §4); swaks gives up.
    expect(r.stdout).toMatch(/250-STARTTLS/);
    expect(r.stdout).not.toMatch(/250-AUTH/);
  });

  it('implicit TLS', async () => {
    const r = await run('swaks', ['--server', `127.0.0.1:${implicit.port}`, '--tls-on-connect', '--from', 'a@client.example', '--to', 'b@example.org']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(implicit.received.at(-1)?.session.secure).toBe(true);
  });
});

describe.skipIf(!curl.available)(`curl${curl.available ? '' : ` (skipped: ${curl.reason})`}`, () => {
  const message = 'Subject: curl\r\n\r\nhello from curl\r\n.leading dot\r\n';
  it('smtp://', async () => {
    const r = await run('curl', ['-sS', `smtp://127.0.0.1:${plain.port}`, '--mail-from', 'a@client.example', '--mail-rcpt', 'b@example.org', '-T', '-'], message);
    expect(r.code, r.stderr).toBe(0);
    expect(plain.received.at(-1)?.body).toContain('\r\n.leading dot\r\n');
  });

  it('STARTTLS (--ssl-reqd) with AUTH', async () => {
    const r = await run(
      'curl',
      ['-sS', `smtp://localhost:${submission.port}`, '--resolve', `localhost:${submission.port}:127.0.0.1`, '--ssl-reqd', '--cacert', caFile, '--user', 'tim:pass', '--mail-from', 'tim@client.example', '--mail-rcpt', 'b@example.org', '-T', '-'],
      message,
    );
    expect(r.code, r.stderr).toBe(0);
    expect(submission.received.at(-1)?.session.secure).toBe(true);
  });

  it('smtps://', async () => {
    const r = await run('curl', ['-sS', `smtps://localhost:${implicit.port}`, '--resolve', `localhost:${implicit.port}:127.0.0.1`, '--cacert', caFile, '--mail-from', 'a@client.example', '--mail-rcpt', 'b@example.org', '-T', '-'], message);
    expect(r.code, r.stderr).toBe(0);
  });

  it('a refused recipient fails the transfer', async () => {
    const r = await run('curl', ['-sS', `smtp://127.0.0.1:${plain.port}`, '--mail-from', 'a@client.example', '--mail-rcpt', 'x@elsewhere.example', '-T', '-'], message);
    expect(r.code).not.toBe(0);
  });
});

const smtplibScript = `
import smtplib, ssl, sys
port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = smtplib.SMTP('127.0.0.1', port, local_hostname='py.example')
code, _ = s.ehlo()
assert code == 250
print('vrfy', s.verify('alice')[0])
print('noop', s.noop()[0])
print('help', s.docmd('HELP')[0])
if mode == 'submission':
    s.starttls(context=ssl.create_default_context(cafile=ca))
    s.ehlo()
    s.login('tim', 'pass')
    print('auth', 'ok')
if mode == 'utf8':
    s.sendmail('jösé@bücher.example', ['ünï@example.org'], 'Subject: py\\r\\n\\r\\nutf8 body\\r\\n'.encode('utf-8'), mail_options=['SMTPUTF8'])
else:
    s.sendmail('a@client.example', ['b@example.org', 'c@example.org'], 'Subject: py\\r\\n\\r\\nfrom smtplib\\r\\n')
print('quit', s.quit()[0])
`;

describe.skipIf(!python.available)(`python3 smtplib${python.available ? '' : ` (skipped: ${python.reason})`}`, () => {
  it('plain, with VRFY/NOOP/HELP', async () => {
    const r = await run('python3', ['-c', smtplibScript, String(plain.port), caFile, 'plain']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('vrfy 252\nnoop 250\nhelp 214\nquit 221\n');
    expect(plain.received.at(-1)?.envelope.rcptTo).toHaveLength(2);
  });

  it('STARTTLS + login (smtplib picks CRAM-MD5)', async () => {
    const r = await run('python3', ['-c', smtplibScript, String(submission.port), caFile, 'submission']);
    expect(r.code, r.stderr).toBe(0);
    expect(submission.received.at(-1)?.session.user?.mechanism).toBe('CRAM-MD5');
  });

  it('SMTPUTF8', async () => {
    const r = await run('python3', ['-c', smtplibScript, String(plain.port), caFile, 'utf8']);
    expect(r.code, r.stderr).toBe(0);
    expect(plain.received.at(-1)?.envelope.mailFrom?.address).toBe('jösé@bücher.example');
  });
});
