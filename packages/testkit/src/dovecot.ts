/**
 * A private Dovecot instance for interop tests: its own config, state, logs,
 * passwd-file and mail root in a fresh temp folder, listening on 127.0.0.1
 * ephemeral ports, run as an unprivileged user. See PEERS.md for the facts
 * behind every setting.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, lchown, lstat, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { findPeer } from '@pigeonpost/wire/testing';
import type { PeerStatus } from '@pigeonpost/wire/testing';
import { endGroup, killGroup, registerForExit } from './cleanup.js';
import { freePorts } from './ports.js';

/** The protocols a Dovecot instance can serve. */
export type DovecotProtocol = 'imap' | 'pop3' | 'lmtp';

/** A mail user of the instance (passwd-file, `{PLAIN}` password). */
export interface DovecotUser {
  readonly name: string;
  readonly password: string;
}

/** The listening ports; `0` means "not listening" (protocol off, or no TLS configured). */
export interface DovecotPorts {
  readonly imap: number;
  readonly pop3: number;
  readonly lmtp: number;
  readonly imaps: number;
  readonly pop3s: number;
}

/** The unprivileged identity Dovecot runs as, and that owns every file it must read or write. */
export interface DovecotRunAs {
  readonly user: string;
  readonly group: string;
  readonly uid: number;
  readonly gid: number;
}

/** PEM files for `ssl = yes` and the implicit-TLS ports (copied into the instance's folder). */
export interface DovecotTlsFiles {
  /** Certificate chain, PEM. */
  readonly cert: string;
  /** Private key, PEM, unencrypted. */
  readonly key: string;
}

export interface StartDovecotOptions {
  /** Mail users. Default: `alice` / `alice-password` and `bob` / `bob-password`. */
  readonly users?: readonly DovecotUser[];
  /** Protocols to serve. Default all: `['imap', 'pop3', 'lmtp']`. */
  readonly protocols?: readonly DovecotProtocol[];
  /**
   * Folder holding one home per user, `<mailRoot>/<user>/Maildir`. Default: `mail` inside the
   * instance folder. Give your own to point Dovecot at Maildirs your code wrote: it is created
   * and (when running as root) chown'd recursively to `runAs`. Its parents must be searchable
   * (`o+x`) by that user.
   */
  readonly mailRoot?: string;
  /** Where Dovecot keeps its index files: `:INDEX=<indexRoot>/%u`. Default: inside each Maildir. */
  readonly indexRoot?: string;
  /** The whole `mail_location`, overriding `mailRoot`/`indexRoot` (homes stay `<mailRoot>/<user>`). */
  readonly mailLocation?: string;
  /** Fixed ports (e.g. from a benchmark config). Unset ones are chosen free; a clash is retried. */
  readonly ports?: Partial<DovecotPorts>;
  /** Turn on `ssl = yes` with these PEM files, and the imaps/pop3s ports. Default: `ssl = no`. */
  readonly ssl?: DovecotTlsFiles;
  /** `default_process_limit` (one process per IMAP/POP3 session). Default 256 (Dovecot: 100). */
  readonly processLimit?: number;
  /** `default_client_limit`. Default 2048 (Dovecot: 1000). */
  readonly clientLimit?: number;
  /** `mail_max_userip_connections` for imap and pop3. Default 512 (Dovecot: 10). */
  readonly maxUserIpConnections?: number;
  /** `mail_fsync`. Default `'optimized'` (Dovecot's default). */
  readonly mailFsync?: 'optimized' | 'always' | 'never';
  /** `maildir_very_dirty_syncs`. Default false. */
  readonly maildirVeryDirtySyncs?: boolean;
  /** Keep Dovecot's auth penalty (a failed login delays the next ones from that IP by 2–15 s). Default false: off. */
  readonly authPenalty?: boolean;
  /** `auth_debug`, `mail_debug`, `verbose_ssl` into the log. Default false. */
  readonly debug?: boolean;
  /** Config lines appended last (a later setting wins; a repeated `service x { }` block merges). */
  readonly extraConfig?: string | readonly string[];
  /** When root, run Dovecot as this user and group. Default `nobody` / `nogroup`. Ignored when not root. */
  readonly runAs?: { readonly user: string; readonly group: string };
  /** Keep the instance folder after `stop()` (to read logs or the Maildir). Default false. */
  readonly keep?: boolean;
  /** Parent of the instance folder. Default `os.tmpdir()`. Keep it short: unix socket paths are limited to 107 bytes. */
  readonly tmpDir?: string;
  /** The `dovecot` binary. Default: `dovecot` on PATH, else `/usr/sbin/dovecot`. */
  readonly binary?: string;
  /** How long to wait for the greeting. Default 15000 ms. */
  readonly startTimeoutMs?: number;
}

/** A started instance. Stop it with `stop()` or `await using`. */
export interface RunningDovecot extends AsyncDisposable {
  readonly host: '127.0.0.1';
  readonly ports: DovecotPorts;
  readonly protocols: readonly DovecotProtocol[];
  readonly users: readonly DovecotUser[];
  /** `<mailRoot>/<user>` is each user's home, `<mailRoot>/<user>/Maildir` the Maildir (unless `mailLocation` says otherwise). */
  readonly mailRoot: string;
  /** The instance folder (config, base_dir, state, logs, passwd-file). */
  readonly dir: string;
  readonly configPath: string;
  readonly logPath: string;
  /** PID of the Dovecot master, also its process group id. */
  readonly pid: number;
  /** Who Dovecot runs as: files it reads must be readable by this uid/gid. */
  readonly runAs: DovecotRunAs;
  /** `<mailRoot>/<user>/Maildir`. */
  maildir(user: string): string;
  /** Give `path` (recursively) to `runAs`, so Dovecot can read and write what the test wrote. A no-op when not root. */
  chownForDovecot(path: string): Promise<void>;
  /** Dovecot's log file, plus anything the master printed on stderr. */
  logs(): string;
  /** SIGTERM to Dovecot's process group, wait for exit (SIGKILL after 5 s), kill any straggler of the group, remove the folder unless `keep`. Idempotent. */
  stop(): Promise<void>;
}

const DEFAULT_USERS: readonly DovecotUser[] = [
  { name: 'alice', password: 'alice-password' },
  { name: 'bob', password: 'bob-password' },
];
const ALL_PROTOCOLS: readonly DovecotProtocol[] = ['imap', 'pop3', 'lmtp'];
const HOST = '127.0.0.1';
const START_ATTEMPTS = 5;
const STOP_TIMEOUT_MS = 5000;

/**
 * Whether Dovecot can run here, for `describe.skipIf(!status.available)`:
 * outside CI a missing Dovecot is reported with the Debian packages to
 * install; under `CI=true` it throws (see `findPeer`).
 */
export function dovecotAvailable(options: { readonly env?: NodeJS.ProcessEnv; readonly binary?: string } = {}): PeerStatus {
  // An absolute path: /usr/sbin is often missing from a non-root PATH.
  return findPeer(dovecotBinary(options), {
    versionArgs: ['--version'],
    debianPackage: 'dovecot-imapd dovecot-pop3d dovecot-lmtpd',
    env: options.env ?? process.env,
  });
}

function dovecotBinary(options: { readonly binary?: string }): string {
  if (options.binary !== undefined) return options.binary;
  const which = spawnSync('sh', ['-c', 'command -v dovecot'], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin` } });
  const found = which.status === 0 ? which.stdout.trim() : '';
  return found !== '' ? found : '/usr/sbin/dovecot';
}

function idOf(args: readonly string[]): string {
  const res = spawnSync('id', [...args], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`id ${args.join(' ')} failed: ${res.stderr.trim()}`);
  return res.stdout.trim();
}

function resolveRunAs(options: StartDovecotOptions): DovecotRunAs {
  const uid = process.getuid?.() ?? -1;
  if (uid !== 0) {
    return { user: userInfo().username, group: idOf(['-gn']), uid, gid: process.getgid?.() ?? -1 };
  }
  const user = options.runAs?.user ?? 'nobody';
  const group = options.runAs?.group ?? 'nogroup';
  const res = spawnSync('getent', ['group', group], { encoding: 'utf8' });
  const gid = Number(res.stdout.split(':')[2]);
  if (res.status !== 0 || !Number.isInteger(gid)) throw new Error(`group ${group} not found (getent group ${group})`);
  return { user, group, uid: Number(idOf(['-u', user])), gid };
}

/** Give a tree to uid/gid, without following symlinks. */
async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  const stat = await lstat(path);
  await lchown(path, uid, gid);
  if (stat.isDirectory()) {
    for (const name of await readdir(path)) await chownTree(join(path, name), uid, gid);
  }
}

function checkField(kind: string, value: string): void {
  if (value === '' || /[:\r\n\s]/.test(value)) throw new Error(`Dovecot ${kind} must be non-empty without ':' or whitespace: ${JSON.stringify(value)}`);
}

interface ConfigInput {
  readonly dir: string;
  readonly mailRoot: string;
  readonly mailLocation: string;
  readonly protocols: readonly DovecotProtocol[];
  readonly ports: DovecotPorts;
  readonly runAs: DovecotRunAs;
  readonly tls: boolean;
  readonly options: StartDovecotOptions;
  readonly instanceName: string;
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

function listener(name: string, port: number): string {
  // Dovecot: port 0 disables an inet listener.
  return port === 0 ? `  inet_listener ${name} {\n    port = 0\n  }` : `  inet_listener ${name} {\n    address = ${HOST}\n    port = ${port}\n  }`;
}

function buildConfig(c: ConfigInput): string {
  const o = c.options;
  const extra = o.extraConfig === undefined ? [] : typeof o.extraConfig === 'string' ? [o.extraConfig] : o.extraConfig;
  const lines = [
    '# Written by @pigeonpost/testkit: a private test instance.',
    `instance_name = ${c.instanceName}`,
    `base_dir = ${c.dir}/run`,
    `state_dir = ${c.dir}/state`,
    `log_path = ${c.dir}/log/dovecot.log`,
    `info_log_path = ${c.dir}/log/dovecot.log`,
    `debug_log_path = ${c.dir}/log/dovecot.log`,
    `protocols = ${c.protocols.join(' ')}`,
    `listen = ${HOST}`,
    // Everything runs as one unprivileged user: the internal, login and mail users.
    `default_internal_user = ${c.runAs.user}`,
    `default_internal_group = ${c.runAs.group}`,
    `default_login_user = ${c.runAs.user}`,
    'first_valid_uid = 1',
    'first_valid_gid = 1',
    'disable_plaintext_auth = no',
    'auth_mechanisms = plain login',
    // A failed login otherwise waits 2 s (and more with repeated failures).
    'auth_failure_delay = 0',
    `mail_location = ${c.mailLocation}`,
    `mail_fsync = ${o.mailFsync ?? 'optimized'}`,
    `maildir_very_dirty_syncs = ${yesNo(o.maildirVeryDirtySyncs ?? false)}`,
    'lda_mailbox_autocreate = yes',
    'postmaster_address = postmaster@localhost',
    'hostname = localhost',
    `default_process_limit = ${o.processLimit ?? 256}`,
    `default_client_limit = ${o.clientLimit ?? 2048}`,
    `mail_max_userip_connections = ${o.maxUserIpConnections ?? 512}`,
    `auth_debug = ${yesNo(o.debug ?? false)}`,
    `mail_debug = ${yesNo(o.debug ?? false)}`,
    ...(c.tls
      ? ['ssl = yes', `ssl_cert = <${c.dir}/tls/cert.pem`, `ssl_key = <${c.dir}/tls/key.pem`, 'ssl_min_protocol = TLSv1.2', `verbose_ssl = ${yesNo(o.debug ?? false)}`]
      : ['ssl = no']),
    'passdb {',
    '  driver = passwd-file',
    `  args = scheme=PLAIN username_format=%u ${c.dir}/passwd`,
    '}',
    'userdb {',
    '  driver = passwd-file',
    `  args = username_format=%u ${c.dir}/passwd`,
    '}',
    // Login services chroot to a root-owned folder by default: impossible unprivileged.
    'service imap-login {',
    '  chroot =',
    listener('imap', c.ports.imap),
    listener('imaps', c.ports.imaps),
    '}',
    'service pop3-login {',
    '  chroot =',
    listener('pop3', c.ports.pop3),
    listener('pop3s', c.ports.pop3s),
    '}',
    'service lmtp {',
    listener('lmtp', c.ports.lmtp),
    '}',
    'service anvil {',
    '  chroot =',
    // Without this, each failed login delays the next one from the same IP (2, 4, 8… s).
    ...(o.authPenalty === true ? [] : ['  unix_listener anvil-auth-penalty {', '    mode = 0', '  }']),
    '}',
    // auth-worker runs as root by default.
    'service auth-worker {',
    '  user = $default_internal_user',
    '}',
    'protocol imap {',
    `  mail_max_userip_connections = ${o.maxUserIpConnections ?? 512}`,
    '}',
    'protocol pop3 {',
    `  mail_max_userip_connections = ${o.maxUserIpConnections ?? 512}`,
    '}',
    ...extra,
    '',
  ];
  return lines.join('\n');
}

/** Read a greeting line from host:port; resolves true on the expected prefix, false on refusal. */
function probeGreeting(port: number, prefix: string, timeoutMs: number): Promise<boolean> {
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
      if (received.includes('\r\n')) done(received.startsWith(prefix));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, timeoutMs);
    const onExit = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    child.once('exit', onExit);
  });
}

let instanceCounter = 0;

/**
 * Start a private Dovecot. Resolves once the first enabled protocol's port
 * answers with a greeting; rejects (with the log) if Dovecot exits or times out.
 */
export async function startDovecot(options: StartDovecotOptions = {}): Promise<RunningDovecot> {
  const users = options.users ?? DEFAULT_USERS;
  for (const user of users) {
    checkField('user name', user.name);
    checkField('password', user.password);
  }
  const protocols = [...new Set(options.protocols ?? ALL_PROTOCOLS)];
  if (protocols.length === 0) throw new Error('startDovecot: at least one protocol');
  const runAs = resolveRunAs(options);
  const asRoot = process.getuid?.() === 0;
  const binary = dovecotBinary(options);
  const tls = options.ssl !== undefined;

  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'pp-dovecot-'));
  const mailRoot = resolvePath(options.mailRoot ?? join(dir, 'mail'));
  const logPath = join(dir, 'log', 'dovecot.log');
  const configPath = join(dir, 'dovecot.conf');
  let stderr = '';
  const readLogs = (): string => {
    const file = existsSync(logPath) ? readFileSync(logPath, 'latin1') : '';
    return stderr === '' ? file : `${file}--- master stderr ---\n${stderr}`;
  };

  try {
    for (const sub of ['run', 'state', 'log', 'tls']) await mkdir(join(dir, sub));
    await mkdir(mailRoot, { recursive: true });
    if (options.ssl !== undefined) {
      await copyFile(options.ssl.cert, join(dir, 'tls', 'cert.pem'));
      await copyFile(options.ssl.key, join(dir, 'tls', 'key.pem'));
      await chmod(join(dir, 'tls', 'key.pem'), 0o600);
    }
    await writeFile(
      join(dir, 'passwd'),
      users.map((u) => `${u.name}:{PLAIN}${u.password}:${runAs.uid}:${runAs.gid}::${mailRoot}/${u.name}::\n`).join(''),
      { mode: 0o600 },
    );
    const mailLocation = options.mailLocation ?? `maildir:${mailRoot}/%u/Maildir${options.indexRoot !== undefined ? `:INDEX=${resolvePath(options.indexRoot)}/%u` : ''}`;
    if (options.indexRoot !== undefined) await mkdir(options.indexRoot, { recursive: true });
    instanceCounter += 1;
    const instanceName = `pp-dovecot-${process.pid}-${instanceCounter}`;

    for (let attempt = 1; ; attempt++) {
      const wanted: Record<keyof DovecotPorts, boolean> = {
        imap: protocols.includes('imap'),
        pop3: protocols.includes('pop3'),
        lmtp: protocols.includes('lmtp'),
        imaps: tls && protocols.includes('imap'),
        pop3s: tls && protocols.includes('pop3'),
      };
      const keys = (Object.keys(wanted) as (keyof DovecotPorts)[]).filter((k) => wanted[k] && options.ports?.[k] === undefined);
      const picked = await freePorts(keys.length);
      const portOf = (k: keyof DovecotPorts): number => (wanted[k] ? (options.ports?.[k] ?? picked[keys.indexOf(k)] ?? 0) : 0);
      const ports: DovecotPorts = { imap: portOf('imap'), pop3: portOf('pop3'), lmtp: portOf('lmtp'), imaps: portOf('imaps'), pop3s: portOf('pop3s') };

      await writeFile(configPath, buildConfig({ dir, mailRoot, mailLocation, protocols, ports, runAs, tls, options, instanceName }));
      if (asRoot) {
        await chownTree(dir, runAs.uid, runAs.gid);
        if (!mailRoot.startsWith(`${dir}/`)) await chownTree(mailRoot, runAs.uid, runAs.gid);
        if (options.indexRoot !== undefined) await chownTree(resolvePath(options.indexRoot), runAs.uid, runAs.gid);
      }

      const [command, args] = asRoot
        ? ['setpriv', [`--reuid=${runAs.uid}`, `--regid=${runAs.gid}`, '--clear-groups', '--', binary, '-F', '-c', configPath]]
        : [binary, ['-F', '-c', configPath]];
      stderr = '';
      // detached: Dovecot leads its own process group, so stop() and the exit handler reach every child.
      const child = spawn(command, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout?.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
      child.stderr?.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
      const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
      const pid = child.pid;
      if (pid === undefined) throw new Error(`could not start ${command}: ${(await spawnError).message}`);
      const unregister = registerForExit(pid, options.keep === true ? undefined : dir);

      const probe = protocols.includes('imap')
        ? { port: ports.imap, prefix: '* OK' }
        : protocols.includes('pop3')
          ? { port: ports.pop3, prefix: '+OK' }
          : { port: ports.lmtp, prefix: '220' };
      const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
      let ready = false;
      while (Date.now() < deadline && child.exitCode === null && child.signalCode === null) {
        if (await probeGreeting(probe.port, probe.prefix, 2000)) {
          ready = true;
          break;
        }
        await sleep(50);
      }

      const kill = async (): Promise<void> => {
        if (child.exitCode === null && child.signalCode === null) {
          // The whole group at once: SIGTERM to the master alone takes over a second
          // (it shuts its children down one by one), to the group about 0.1 s.
          killGroup(pid, 'SIGTERM');
          if (!(await waitExit(child, STOP_TIMEOUT_MS))) {
            killGroup(pid, 'SIGKILL');
            await waitExit(child, 2000);
          }
        }
        // Children left behind by a master that died (or was killed) first.
        await endGroup(pid);
        unregister();
      };

      if (!ready) {
        const exited = child.exitCode !== null || child.signalCode !== null;
        await kill();
        const log = readLogs();
        if (exited && /Address already in use/i.test(log) && keys.length > 0 && attempt < START_ATTEMPTS) continue;
        throw new Error(`Dovecot did not start (${exited ? `exited with ${child.exitCode ?? child.signalCode}` : 'timed out'}); log:\n${log}`);
      }

      let stopping: Promise<void> | undefined;
      const stop = (): Promise<void> =>
        (stopping ??= (async () => {
          await kill();
          if (options.keep !== true) await rm(dir, { recursive: true, force: true });
        })());
      const running: RunningDovecot = {
        host: HOST,
        ports,
        protocols,
        users,
        mailRoot,
        dir,
        configPath,
        logPath,
        pid,
        runAs,
        maildir: (user) => join(mailRoot, user, 'Maildir'),
        chownForDovecot: async (path) => {
          if (asRoot) await chownTree(path, runAs.uid, runAs.gid);
        },
        logs: readLogs,
        stop,
        [Symbol.asyncDispose]: stop,
      };
      return running;
    }
  } catch (error) {
    if (options.keep !== true) await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
