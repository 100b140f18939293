/**
 * A private Postfix instance for interop tests: its own `config_directory`,
 * `queue_directory`, `data_directory` and log file in a fresh temp folder,
 * `smtpd` on 127.0.0.1 high ports, nothing chrooted. Mail is discarded after
 * acceptance, or relayed to a given host:port (our own server). SASL goes
 * through a private Dovecot's auth socket. `postfix start` needs root. See
 * PEERS.md for the facts behind the configuration.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, copyFile, mkdir, mkdtemp, open, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findPeer } from '@pigeonpost/wire/testing';
import type { PeerStatus } from '@pigeonpost/wire/testing';
import { endGroup, killGroup, processAlive as alive, registerForExit } from './cleanup.js';
import { startDovecot } from './dovecot.js';
import type { DovecotUser, RunningDovecot } from './dovecot.js';
import { freePorts } from './ports.js';

/** The `smtpd` ports; `submission` is `0` when that service is off. */
export interface PostfixPorts {
  readonly smtp: number;
  readonly submission: number;
}

/** PEM files for `smtpd` STARTTLS (copied into the instance's folder). */
export interface PostfixTlsFiles {
  /** Certificate chain, PEM. */
  readonly cert: string;
  /** Private key, PEM, unencrypted. */
  readonly key: string;
}

/** Postfix's `smtp_tls_security_level`. */
export type PostfixTlsLevel = 'none' | 'may' | 'encrypt' | 'dane' | 'verify' | 'secure';

/** Where Postfix relays everything that is not for `mydestination`: `relayhost = [host]:port`. */
export interface PostfixRelay {
  readonly host: string;
  readonly port: number;
  /** `smtp_tls_security_level` towards the relay. Default `'may'`. */
  readonly tlsLevel?: PostfixTlsLevel;
  /** `smtp_tls_CAfile`: the CA (PEM path) that makes the relay's certificate trusted (and verified at `verify`/`secure`). */
  readonly caFile?: string;
  /** `smtp_tls_verify_cert_match` / `smtp_tls_secure_cert_match`, for `verify` and `secure`. Default `nexthop`. */
  readonly certMatch?: string;
}

export interface StartPostfixOptions {
  /** `myhostname`, also the banner and EHLO name. Default `postfix.test`. */
  readonly hostname?: string;
  /** Fixed ports. Unset ones are chosen free; a clash is retried. */
  readonly ports?: Partial<PostfixPorts>;
  /** Add a submission-style `smtpd`: `smtpd_tls_security_level = encrypt`, SASL required (needs `tls` and `sasl`). Default false. */
  readonly submission?: boolean;
  /** Relay all non-local mail to this host:port with the `smtp` client. Default: `default_transport = discard`. */
  readonly relay?: PostfixRelay;
  /** `mydestination` (mail for these is accepted and discarded). Default none. */
  readonly mydestination?: readonly string[];
  /** `relay_domains`. Default none. */
  readonly relayDomains?: readonly string[];
  /** `mynetworks`: clients that may relay without AUTH. Default `['127.0.0.0/8']`. */
  readonly mynetworks?: readonly string[];
  /** `smtpd` STARTTLS with these PEM files (`smtpd_tls_security_level = may`). Default: no TLS. */
  readonly tls?: PostfixTlsFiles;
  /** SASL through a private Dovecot's auth socket (`smtpd_sasl_type = dovecot`). `true` for Dovecot's default users. Default off. */
  readonly sasl?: true | { readonly users?: readonly DovecotUser[] };
  /** `smtpd_tls_auth_only`: offer AUTH only after STARTTLS. Default true when `tls` is given. */
  readonly authOnlyOverTls?: boolean;
  /** `message_size_limit` in bytes. Default 10240000 (Postfix's). */
  readonly messageSizeLimit?: number;
  /** Extra `main.cf` lines, appended last (a later setting wins). */
  readonly mainCf?: string | readonly string[];
  /** Extra `master.cf` lines, appended last. */
  readonly masterCf?: string | readonly string[];
  /** `debug_peer_list = 127.0.0.1` (verbose smtpd/smtp logs). Default false. */
  readonly debug?: boolean;
  /** Keep the instance folder after `stop()`. Default false. */
  readonly keep?: boolean;
  /** Parent of the instance folder. Default `os.tmpdir()`; keep it short (unix socket paths ≤ 107 bytes). */
  readonly tmpDir?: string;
  /** The `postfix` command. Default `postfix` on PATH, else `/usr/sbin/postfix`. */
  readonly binary?: string;
  /** How long to wait for the `220` greeting. Default 15000 ms. */
  readonly startTimeoutMs?: number;
}

/** A started instance. Stop it with `stop()` or `await using`. */
export interface RunningPostfix extends AsyncDisposable {
  readonly host: '127.0.0.1';
  readonly ports: PostfixPorts;
  readonly hostname: string;
  /** The instance folder. */
  readonly dir: string;
  /** `config_directory` (main.cf, master.cf): pass it to `postfix -c`, `postconf -c`, `sendmail -C`. */
  readonly configDir: string;
  readonly queueDir: string;
  /** `maillog_file`. */
  readonly logPath: string;
  /** PID of the Postfix master (also its process group id). */
  readonly pid: number;
  /** The Dovecot that answers SASL, when `sasl` is on. */
  readonly dovecot: RunningDovecot | undefined;
  /** The SASL users (empty without `sasl`). */
  readonly users: readonly DovecotUser[];
  /** Submit a message with `sendmail -C <configDir> -f from -i -- to…` (Postfix's pickup path). */
  sendmail(from: string, to: readonly string[], message: Uint8Array | string): Promise<void>;
  /** Wait until the log matches `pattern`; rejects with the log after `timeoutMs` (default 15000). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** The maillog, plus what `postfix start` printed (and Dovecot's log, with `sasl`). */
  logs(): string;
  /** SIGTERM to the master (as `postfix stop` does), wait for it (SIGKILL after 5 s), kill stragglers of its group, stop Dovecot, remove the folder unless `keep`. Idempotent. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const START_ATTEMPTS = 5;
const STOP_TIMEOUT_MS = 5000;
const DEFAULT_SASL_USERS: readonly DovecotUser[] = [
  { name: 'alice', password: 'alice-password' },
  { name: 'bob', password: 'bob-password' },
];

function postfixBinary(options: { readonly binary?: string }): string {
  if (options.binary !== undefined) return options.binary;
  const which = spawnSync('sh', ['-c', 'command -v postfix'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin` } });
  const found = which.status === 0 ? which.stdout.trim() : '';
  return found !== '' ? found : '/usr/sbin/postfix';
}

/**
 * Whether a private Postfix can run here, for `describe.skipIf(!status.available)`:
 * `findPeer` for `postfix` (absolute path: /usr/sbin is often missing from a
 * non-root PATH), and root, which `postfix start` needs. Outside CI a missing
 * Postfix or a non-root user gives `{ available: false, reason }`; under
 * `CI=true` either throws.
 */
export function postfixAvailable(options: { readonly env?: NodeJS.ProcessEnv; readonly binary?: string } = {}): PeerStatus {
  const env = options.env ?? process.env;
  const status = findPeer(postfixBinary(options), { versionArgs: ['-c', '/nonexistent', 'status'], debianPackage: 'postfix', env });
  if (!status.available) return status;
  if (process.getuid?.() !== 0) {
    const reason = 'postfix start needs root (run the interop tests as root)';
    if (env['CI'] === 'true') throw new Error(`interop peer missing under CI=true: ${reason}`);
    return { available: false, name: status.name, reason };
  }
  return status;
}

function lines(value: string | readonly string[] | undefined): readonly string[] {
  return value === undefined ? [] : typeof value === 'string' ? [value] : value;
}

interface ConfigInput {
  readonly dir: string;
  readonly ports: PostfixPorts;
  readonly hostname: string;
  readonly tls: boolean;
  readonly saslPath: string | undefined;
  readonly options: StartPostfixOptions;
}

function buildMainCf(c: ConfigInput): string {
  const o = c.options;
  const relay = o.relay;
  return [
    '# Written by @pigeonpost/testkit: a private test instance.',
    'compatibility_level = 3.6',
    `config_directory = ${c.dir}/etc`,
    `queue_directory = ${c.dir}/queue`,
    `data_directory = ${c.dir}/data`,
    // Postfix >= 3.4 logs to a file through postlogd (the postlog service below).
    `maillog_file = ${c.dir}/maillog`,
    `maillog_file_prefixes = ${c.dir}`,
    `myhostname = ${c.hostname}`,
    'mydomain = test',
    `myorigin = ${c.hostname}`,
    'inet_interfaces = 127.0.0.1',
    'inet_protocols = ipv4',
    `mynetworks = ${(o.mynetworks ?? ['127.0.0.0/8']).join(' ')}`,
    `mydestination = ${(o.mydestination ?? []).join(' ')}`,
    `relay_domains = ${(o.relayDomains ?? []).join(' ')}`,
    // Local mail (mydestination) is accepted for any local part and thrown away.
    'local_recipient_maps =',
    'local_transport = discard',
    'alias_maps =',
    'alias_database =',
    'biff = no',
    'append_dot_mydomain = no',
    // No header rewriting or added Message-ID/Date for clients on 127.0.0.1: a relayed message stays as sent.
    'local_header_rewrite_clients =',
    `message_size_limit = ${o.messageSizeLimit ?? 10240000}`,
    'smtpd_banner = $myhostname ESMTP',
    ...(relay === undefined
      ? ['default_transport = discard', 'relayhost =']
      : [
          'default_transport = smtp',
          `relayhost = [${relay.host}]:${relay.port}`,
          // /etc/hosts, not DNS, for a relay given by name (e.g. [localhost] for a certificate name match).
          'smtp_host_lookup = native',
          `smtp_tls_security_level = ${relay.tlsLevel ?? 'may'}`,
          ...(relay.caFile !== undefined ? [`smtp_tls_CAfile = ${c.dir}/tls/relay-ca.pem`] : []),
          `smtp_tls_verify_cert_match = ${relay.certMatch ?? 'nexthop'}`,
          `smtp_tls_secure_cert_match = ${relay.certMatch ?? 'nexthop'}`,
          'smtp_tls_loglevel = 1',
          'smtp_tls_session_cache_database =',
        ]),
    // Retry quickly: a test waits seconds, not minutes.
    'queue_run_delay = 1s',
    'minimal_backoff_time = 1s',
    'maximal_backoff_time = 2s',
    ...(c.tls
      ? [
          `smtpd_tls_cert_file = ${c.dir}/tls/cert.pem`,
          `smtpd_tls_key_file = ${c.dir}/tls/key.pem`,
          'smtpd_tls_security_level = may',
          `smtpd_tls_auth_only = ${(o.authOnlyOverTls ?? true) ? 'yes' : 'no'}`,
          'smtpd_tls_loglevel = 1',
          'smtpd_tls_received_header = yes',
          'smtpd_tls_session_cache_database =',
        ]
      : ['smtpd_tls_security_level = none']),
    ...(c.saslPath !== undefined ? ['smtpd_sasl_auth_enable = yes', 'smtpd_sasl_type = dovecot', `smtpd_sasl_path = ${c.saslPath}`, 'broken_sasl_auth_clients = no'] : []),
    'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination',
    ...(o.debug === true ? ['debug_peer_list = 127.0.0.1'] : []),
    ...lines(o.mainCf),
    '',
  ].join('\n');
}

function buildMasterCf(c: ConfigInput): string {
  const o = c.options;
  // Nothing chrooted: the instance folder is not a chroot jail.
  return [
    '# service type  private unpriv  chroot  wakeup  maxproc command + args',
    `${HOST}:${c.ports.smtp} inet n - n - - smtpd`,
    ...(c.ports.submission !== 0
      ? [
          `${HOST}:${c.ports.submission} inet n - n - - smtpd`,
          '  -o syslog_name=postfix/submission',
          '  -o smtpd_tls_security_level=encrypt',
          '  -o smtpd_sasl_auth_enable=yes',
          '  -o smtpd_tls_auth_only=yes',
          '  -o smtpd_client_restrictions=permit_sasl_authenticated,reject',
          '  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject',
        ]
      : []),
    'pickup unix n - n 60 1 pickup',
    'cleanup unix n - n - 0 cleanup',
    'qmgr unix n - n 300 1 qmgr',
    'tlsmgr unix - - n 1000? 1 tlsmgr',
    'rewrite unix - - n - - trivial-rewrite',
    'bounce unix - - n - 0 bounce',
    'defer unix - - n - 0 bounce',
    'trace unix - - n - 0 bounce',
    'verify unix - - n - 1 verify',
    'flush unix n - n 1000? 0 flush',
    'proxymap unix - - n - - proxymap',
    'proxywrite unix - - n - 1 proxymap',
    'smtp unix - - n - - smtp',
    'relay unix - - n - - smtp',
    'showq unix n - n - - showq',
    'error unix - - n - - error',
    'retry unix - - n - - error',
    'discard unix - - n - - discard',
    'anvil unix - - n - 1 anvil',
    'scache unix - - n - 1 scache',
    'postlog unix-dgram n - n - 1 postlogd',
    ...lines(o.masterCf),
    '',
  ].join('\n');
}

function run(command: string, args: readonly string[], input?: Uint8Array | string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, out }));
    child.stdin.end(input);
  });
}

/**
 * Run a command that leaves a daemon behind (`postfix start`): its output goes
 * to a file, not a pipe, because the daemon may hold a pipe open for seconds
 * after the command itself has exited.
 */
async function runDaemonizing(command: string, args: readonly string[], outPath: string): Promise<{ code: number | null; out: string }> {
  const out = await open(outPath, 'w');
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(command, [...args], { stdio: ['ignore', out.fd, out.fd] });
      child.once('error', reject);
      child.once('exit', (exitCode) => resolve(exitCode));
    });
    return { code, out: await readFile(outPath, 'latin1') };
  } finally {
    await out.close();
  }
}

/** Read the greeting from host:port; resolves true on a `220`, false otherwise. */
function probeGreeting(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: HOST, port });
    let received = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n')) {
        if (received.startsWith('220')) socket.end('QUIT\r\n');
        done(received.startsWith('220'));
      }
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Wait until a process has exited (a zombie counts as exited). */
async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(25);
  }
  return true;
}

function readPid(queueDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(queueDir, 'pid', 'master.pid'), 'latin1').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function uidOf(user: string): number {
  const res = spawnSync('id', ['-u', user], { encoding: 'utf8' });
  const uid = Number(res.stdout.trim());
  if (res.status !== 0 || !Number.isInteger(uid)) throw new Error(`user ${user} not found`);
  return uid;
}

function gidOf(group: string): number {
  const res = spawnSync('getent', ['group', group], { encoding: 'utf8' });
  const gid = Number(res.stdout.split(':')[2]);
  if (res.status !== 0 || !Number.isInteger(gid)) throw new Error(`group ${group} not found`);
  return gid;
}

/**
 * The folders `post-install create-missing` would make (Debian's postfix-files):
 * the data directory and the queue, owned by `postfix` (maildrop and public
 * group `postdrop`, for sendmail/postdrop).
 */
async function createQueue(dir: string): Promise<void> {
  const owner = uidOf('postfix');
  const postdrop = gidOf('postdrop');
  const make = async (path: string, mode: number, uid: number, gid: number): Promise<void> => {
    await mkdir(path, { recursive: true });
    await chown(path, uid, gid);
    await chmod(path, mode);
  };
  await make(join(dir, 'data'), 0o700, owner, gidOf('postfix'));
  for (const sub of ['active', 'bounce', 'corrupt', 'defer', 'deferred', 'flush', 'hold', 'incoming', 'private', 'saved', 'trace']) {
    await make(join(dir, 'queue', sub), 0o700, owner, 0);
  }
  await make(join(dir, 'queue', 'maildrop'), 0o730, owner, postdrop);
  await make(join(dir, 'queue', 'public'), 0o710, owner, postdrop);
  await make(join(dir, 'queue', 'pid'), 0o755, 0, 0);
}

/**
 * Start a private Postfix (as root). Resolves once `smtpd` answers `220`;
 * rejects with the logs if `postfix start` fails or the greeting times out.
 */
export async function startPostfix(options: StartPostfixOptions = {}): Promise<RunningPostfix> {
  if (process.getuid?.() !== 0) throw new Error('startPostfix: postfix start needs root');
  const binary = postfixBinary(options);
  const sbin = binary.includes('/') ? binary.slice(0, binary.lastIndexOf('/')) : '/usr/sbin';
  const hostname = options.hostname ?? 'postfix.test';
  if (options.submission === true && (options.tls === undefined || options.sasl === undefined)) {
    throw new Error('startPostfix: submission needs tls and sasl');
  }
  const users = options.sasl === undefined ? [] : options.sasl === true ? DEFAULT_SASL_USERS : (options.sasl.users ?? DEFAULT_SASL_USERS);

  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'pp-postfix-'));
  // smtpd runs as `postfix` and Dovecot as `nobody`: both must reach the SASL socket inside.
  await chmod(dir, 0o755);
  const configDir = join(dir, 'etc');
  const queueDir = join(dir, 'queue');
  const logPath = join(dir, 'maillog');
  let startOutput = '';
  let dovecot: RunningDovecot | undefined;
  const readLogs = (): string => {
    const file = existsSync(logPath) ? readFileSync(logPath, 'latin1') : '';
    const parts = [file];
    if (startOutput !== '') parts.push(`--- postfix start ---\n${startOutput}`);
    if (dovecot !== undefined) parts.push(`--- dovecot (SASL) ---\n${dovecot.logs()}`);
    return parts.join('');
  };

  try {
    for (const sub of ['etc', 'queue', 'tls']) await mkdir(join(dir, sub));
    await createQueue(dir);
    if (options.tls !== undefined) {
      await copyFile(options.tls.cert, join(dir, 'tls', 'cert.pem'));
      await copyFile(options.tls.key, join(dir, 'tls', 'key.pem'));
      await chmod(join(dir, 'tls', 'key.pem'), 0o600);
    }
    if (options.relay?.caFile !== undefined) await copyFile(options.relay.caFile, join(dir, 'tls', 'relay-ca.pem'));

    let saslPath: string | undefined;
    if (options.sasl !== undefined) {
      const saslDir = join(dir, 'sasl');
      await mkdir(saslDir, { mode: 0o755 });
      // Dovecot runs as nobody/nogroup (startDovecot's default when root) and creates the socket here.
      await chown(saslDir, uidOf('nobody'), gidOf('nogroup'));
      saslPath = join(saslDir, 'auth');
      const socketPath = saslPath;
      dovecot = await startDovecot({
        users,
        protocols: ['lmtp'],
        ...(options.tmpDir !== undefined ? { tmpDir: options.tmpDir } : {}),
        extraConfig: ['service auth {', `  unix_listener ${socketPath} {`, '    mode = 0666', '  }', '}'],
      });
      if (!existsSync(saslPath)) {
        await dovecot.stop();
        dovecot = undefined;
        throw new Error(`startPostfix: Dovecot did not create the SASL socket ${socketPath}`);
      }
    }

    for (let attempt = 1; ; attempt++) {
      const wanted = { smtp: true, submission: options.submission === true };
      const keys = (Object.keys(wanted) as (keyof PostfixPorts)[]).filter((k) => wanted[k] && options.ports?.[k] === undefined);
      const picked = await freePorts(keys.length);
      const portOf = (k: keyof PostfixPorts): number => (wanted[k] ? (options.ports?.[k] ?? picked[keys.indexOf(k)] ?? 0) : 0);
      const ports: PostfixPorts = { smtp: portOf('smtp'), submission: portOf('submission') };
      const input: ConfigInput = { dir, ports, hostname, tls: options.tls !== undefined, saslPath, options };
      await writeFile(join(configDir, 'main.cf'), buildMainCf(input));
      await writeFile(join(configDir, 'master.cf'), buildMasterCf(input));
      // Postfix re-reads a config file until its mtime is more than a second or two in the
      // past (in case an editor is still writing it): backdate both, to start at once.
      const past = new Date(Date.now() - 60_000);
      for (const name of ['main.cf', 'master.cf']) await utimes(join(configDir, name), past, past);

      // With `quick-start` (the folders above exist), `postfix start` skips postfix-script's
      // checks (seconds of postconf calls) and runs `master -w`, which returns once the master
      // has bound every service (or failed to).
      await writeFile(join(queueDir, 'quick-start'), '');
      const started = await runDaemonizing(binary, ['-c', configDir, 'start'], join(dir, 'postfix-start.out'));
      startOutput += started.out;
      const pid = readPid(queueDir);
      const unregister = pid !== undefined ? registerForExit(pid, options.keep === true ? undefined : dir) : () => undefined;

      const kill = async (): Promise<void> => {
        const master = readPid(queueDir) ?? pid;
        if (master !== undefined && alive(master)) {
          // What `postfix stop` does, without its one-second polling.
          process.kill(master, 'SIGTERM');
          if (!(await waitGone(master, STOP_TIMEOUT_MS))) {
            killGroup(master, 'SIGKILL');
            await waitGone(master, 2000);
          }
        }
        if (master !== undefined) await endGroup(master);
        unregister();
      };

      let ready = false;
      if (started.code === 0 && pid !== undefined) {
        const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
        while (Date.now() < deadline && alive(pid)) {
          if (await probeGreeting(ports.smtp, 2000)) {
            ready = true;
            break;
          }
          await sleep(50);
        }
      }
      if (!ready) {
        await kill();
        const log = readLogs();
        if (/Address already in use/i.test(log) && keys.length > 0 && attempt < START_ATTEMPTS) continue;
        throw new Error(`Postfix did not start (postfix start exited with ${started.code}); log:\n${log}`);
      }
      if (pid === undefined) throw new Error('unreachable');

      let stopping: Promise<void> | undefined;
      const stop = (): Promise<void> =>
        (stopping ??= (async () => {
          try {
            await kill();
          } finally {
            await dovecot?.stop();
            if (options.keep !== true) await rm(dir, { recursive: true, force: true });
          }
        })());
      const running: RunningPostfix = {
        host: HOST,
        ports,
        hostname,
        dir,
        configDir,
        queueDir,
        logPath,
        pid,
        dovecot,
        users,
        sendmail: async (from, to, message) => {
          const res = await run(join(sbin, 'sendmail'), ['-C', configDir, '-f', from, '-i', '--', ...to], message);
          if (res.code !== 0) throw new Error(`sendmail exited with ${res.code}: ${res.out}`);
        },
        waitForLog: async (pattern, timeoutMs = 15_000) => {
          const deadline = Date.now() + timeoutMs;
          for (;;) {
            const match = (existsSync(logPath) ? readFileSync(logPath, 'latin1') : '').match(pattern);
            if (match !== null) return match;
            if (Date.now() >= deadline) throw new Error(`Postfix log did not match ${String(pattern)} within ${timeoutMs} ms; log:\n${readLogs()}`);
            await sleep(50);
          }
        },
        logs: readLogs,
        stop,
        [Symbol.asyncDispose]: stop,
      };
      return running;
    }
  } catch (error) {
    await dovecot?.stop();
    if (options.keep !== true) await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
