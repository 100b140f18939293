/**
 * The mail server's configuration, with embedded defaults so `npm start` runs
 * with no file at all. Ports are unprivileged by default (2525 for 25, …) so
 * it runs without root; set them to the standard numbers in production.
 *
 * Sources, later ones winning: the defaults below, the JSON file
 * (`$PIGEONPOST_CONFIG`, else `<dataDir>/config.json` when it exists), then
 * the environment (`PIGEONPOST_HOSTNAME`, `PIGEONPOST_LISTEN`,
 * `PIGEONPOST_DATA_DIR`, `PIGEONPOST_PORT_OFFSET`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type ServiceProtocol = 'smtp' | 'pop3' | 'imap';

/** What a service does: `mx` receives for the local domains, `submission` takes mail from authenticated users. */
export type ServiceRole = 'mx' | 'submission' | 'pop3' | 'imap';

export type ServiceName = 'smtp' | 'submission' | 'smtps' | 'pop3' | 'pop3s' | 'imap' | 'imaps';

export interface ServiceConfig {
  /** A name for logs, and the key in the config file's `ports`. */
  readonly name: ServiceName;
  readonly protocol: ServiceProtocol;
  readonly role: ServiceRole;
  /** 0 picks a free port (tests). */
  readonly port: number;
  /** Implicit TLS (465, 995, 993). Otherwise STARTTLS/STLS is offered. */
  readonly implicitTls: boolean;
}

/** A mailbox owner. The address is the login name (SMTP AUTH, POP3) and the store user. */
export interface UserConfig {
  readonly address: string;
  /** From `@pigeonpost/wire`'s `hashPassword` (`$scrypt$…`); `pigeonpost-server hash-password` prints one. */
  readonly passwordHash: string;
  /** More addresses (in the local domains) delivered to this user, and allowed as its sender. */
  readonly aliases?: readonly string[];
}

/** A next hop other than MX delivery (the relay package's `NextHop`, without credentials). */
export interface NextHopConfig {
  readonly host: string;
  readonly port?: number;
  /** Look up MX records of `host` instead of connecting to it. Default false. */
  readonly mx?: boolean;
}

export interface RelayConfig {
  /** DNS servers (`host` or `host:port`) for MX lookups. Default: the system's, from /etc/resolv.conf. */
  readonly dnsServers?: readonly string[];
  /** The port remote MX hosts listen on. Default 25. */
  readonly mxPort: number;
  /** STARTTLS towards remote MX hosts: `opportunistic` (default, unverified, RFC 7435), `starttls` (required and verified) or `none`. */
  readonly tlsPolicy: 'opportunistic' | 'starttls' | 'none';
  /** Allow MX hosts on loopback and private addresses. Default false (tests turn it on). */
  readonly allowPrivateAddresses: boolean;
  /** Per-domain next hops, Postfix `transport_maps` style (`example.com`, `.example.com`, `*`). */
  readonly transport?: Readonly<Record<string, NextHopConfig>>;
  /** Everything else goes here (Postfix `relayhost`) instead of to the MX hosts. */
  readonly relayHost?: NextHopConfig;
  /** First retry after this many ms, doubling. Default 300,000 (Postfix). */
  readonly minBackoffMs?: number;
  /** Bounce what is still undelivered after this many ms. Default 5 days. */
  readonly maxQueueLifetimeMs?: number;
}

export interface MailServerConfig {
  /** The host name in greetings, Received headers, bounces and the development certificate. */
  readonly hostname: string;
  /** Addresses to bind. */
  readonly listen: readonly string[];
  /** Where state lives: `certs/`, `mail/` (Maildir), `queue/` (relay spool), `tmp/`. */
  readonly dataDir: string;
  /** The domains this server receives mail for (lower case). */
  readonly domains: readonly string[];
  /**
   * Mailbox owners. `undefined`: development users `alice` and `bob` in the
   * first domain, with random passwords kept in `<dataDir>/dev-users.json`.
   */
  readonly users: readonly UserConfig[] | undefined;
  readonly services: readonly ServiceConfig[];
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
  /** Largest message accepted (SMTP SIZE), stored or queued. Default 25 MiB. */
  readonly maxMessageBytes: number;
  /** fsync mail and queue files before 250. Default true; never turn it off in production. */
  readonly fsync: boolean;
  readonly relay: RelayConfig;
}

export const defaultConfig: MailServerConfig = Object.freeze<MailServerConfig>({
  hostname: 'localhost',
  listen: ['127.0.0.1'],
  dataDir: '.pigeonpost',
  domains: ['localhost.test'],
  users: undefined,
  services: [
    { name: 'smtp', protocol: 'smtp', role: 'mx', port: 2525, implicitTls: false },
    { name: 'submission', protocol: 'smtp', role: 'submission', port: 2587, implicitTls: false },
    { name: 'smtps', protocol: 'smtp', role: 'submission', port: 2465, implicitTls: true },
    { name: 'pop3', protocol: 'pop3', role: 'pop3', port: 2110, implicitTls: false },
    { name: 'pop3s', protocol: 'pop3', role: 'pop3', port: 2995, implicitTls: true },
    { name: 'imap', protocol: 'imap', role: 'imap', port: 2143, implicitTls: false },
    { name: 'imaps', protocol: 'imap', role: 'imap', port: 2993, implicitTls: true },
  ],
  maxConnections: 1000,
  maxConnectionsPerIp: 20,
  maxMessageBytes: 25 * 1024 * 1024,
  fsync: true,
  relay: { mxPort: 25, tlsPolicy: 'opportunistic', allowPrivateAddresses: false },
});

/** A configuration file or variable that cannot be used; `message` names the field. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function onlyKeys(obj: Json, where: string, keys: readonly string[]): void {
  for (const k of Object.keys(obj)) if (!keys.includes(k)) throw new ConfigError(`${where}: unknown key "${k}" (known: ${keys.join(', ')})`);
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.length === 0) throw new ConfigError(`${where}: must be a non-empty string`);
  return v;
}

function strings(v: unknown, where: string): string[] {
  if (!Array.isArray(v)) throw new ConfigError(`${where}: must be an array of strings`);
  return v.map((s, i) => str(s, `${where}[${i}]`));
}

function int(v: unknown, where: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new ConfigError(`${where}: must be an integer from ${min} to ${max}`);
  return v;
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') throw new ConfigError(`${where}: must be true or false`);
  return v;
}

const domainPattern = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$/;

function domain(v: unknown, where: string): string {
  const d = str(v, where).toLowerCase();
  if (!domainPattern.test(d)) throw new ConfigError(`${where}: "${d}" is not a domain name (ASCII labels; use A-labels for IDN)`);
  return d;
}

/** An address in one of `domains`, lower-cased. */
function localAddress(v: unknown, where: string, domains: readonly string[]): string {
  const a = str(v, where).toLowerCase();
  const at = a.lastIndexOf('@');
  const local = a.slice(0, at);
  if (at <= 0 || !/^[a-z0-9!#$%&'*+\-/=?^_`{|}~.]+$/.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    throw new ConfigError(`${where}: "${a}" is not a plain address (local@domain, dot-atom local part)`);
  }
  if (!domains.includes(a.slice(at + 1))) throw new ConfigError(`${where}: "${a}" is not in the local domains (${domains.join(', ')})`);
  return a;
}

function nextHop(v: unknown, where: string): NextHopConfig {
  if (!isObject(v)) throw new ConfigError(`${where}: must be an object { host, port?, mx? }`);
  onlyKeys(v, where, ['host', 'port', 'mx']);
  return {
    host: str(v['host'], `${where}.host`),
    ...(v['port'] === undefined ? {} : { port: int(v['port'], `${where}.port`, 1, 65535) }),
    ...(v['mx'] === undefined ? {} : { mx: bool(v['mx'], `${where}.mx`) }),
  };
}

/**
 * Apply a parsed config file (JSON) to `base`. Every key is optional; unknown
 * keys and wrong types are refused with a `ConfigError` naming the field.
 */
export function applyConfigFile(file: unknown, base: MailServerConfig = defaultConfig): MailServerConfig {
  if (!isObject(file)) throw new ConfigError('config: must be a JSON object');
  onlyKeys(file, 'config', ['hostname', 'listen', 'dataDir', 'domains', 'users', 'ports', 'maxConnections', 'maxConnectionsPerIp', 'maxMessageBytes', 'fsync', 'relay']);
  const domains = file['domains'] === undefined ? base.domains : strings(file['domains'], 'domains').map((d, i) => domain(d, `domains[${i}]`));
  if (domains.length === 0) throw new ConfigError('domains: name at least one local domain');
  let users = base.users;
  if (file['users'] !== undefined) {
    if (!Array.isArray(file['users'])) throw new ConfigError('users: must be an array of { address, passwordHash, aliases? }');
    const seen = new Set<string>();
    users = file['users'].map((u: unknown, i) => {
      const where = `users[${i}]`;
      if (!isObject(u)) throw new ConfigError(`${where}: must be an object { address, passwordHash, aliases? }`);
      onlyKeys(u, where, ['address', 'passwordHash', 'aliases']);
      const address = localAddress(u['address'], `${where}.address`, domains);
      const passwordHash = str(u['passwordHash'], `${where}.passwordHash`);
      if (!passwordHash.startsWith('$scrypt$')) throw new ConfigError(`${where}.passwordHash: must come from hashPassword ($scrypt$…); run "pigeonpost-server hash-password"`);
      const aliases = u['aliases'] === undefined ? [] : strings(u['aliases'], `${where}.aliases`).map((a, j) => localAddress(a, `${where}.aliases[${j}]`, domains));
      for (const a of [address, ...aliases]) {
        if (seen.has(a)) throw new ConfigError(`${where}: address "${a}" belongs to two users`);
        seen.add(a);
      }
      return { address, passwordHash, ...(aliases.length > 0 ? { aliases } : {}) };
    });
  }
  let services = base.services;
  const ports = file['ports'];
  if (ports !== undefined) {
    if (!isObject(ports)) throw new ConfigError('ports: must be an object such as { "smtp": 25 }');
    const names = base.services.map((s) => s.name);
    onlyKeys(ports, 'ports', names);
    services = base.services.map((s) => (ports[s.name] === undefined ? s : { ...s, port: int(ports[s.name], `ports.${s.name}`, 0, 65535) }));
  }
  let relay = base.relay;
  const r = file['relay'];
  if (r !== undefined) {
    if (!isObject(r)) throw new ConfigError('relay: must be an object');
    onlyKeys(r, 'relay', ['dnsServers', 'mxPort', 'tlsPolicy', 'allowPrivateAddresses', 'transport', 'relayHost', 'minBackoffMs', 'maxQueueLifetimeMs']);
    const tlsPolicy = r['tlsPolicy'];
    if (tlsPolicy !== undefined && tlsPolicy !== 'opportunistic' && tlsPolicy !== 'starttls' && tlsPolicy !== 'none') {
      throw new ConfigError('relay.tlsPolicy: must be "opportunistic", "starttls" or "none"');
    }
    let transport = relay.transport;
    if (r['transport'] !== undefined) {
      const t = r['transport'];
      if (!isObject(t)) throw new ConfigError('relay.transport: must be an object { "domain": { host, port?, mx? } }');
      transport = Object.fromEntries(Object.entries(t).map(([k, v]) => [k.toLowerCase(), nextHop(v, `relay.transport["${k}"]`)]));
    }
    relay = {
      ...relay,
      ...(r['dnsServers'] === undefined ? {} : { dnsServers: strings(r['dnsServers'], 'relay.dnsServers') }),
      ...(r['mxPort'] === undefined ? {} : { mxPort: int(r['mxPort'], 'relay.mxPort', 1, 65535) }),
      ...(tlsPolicy === undefined ? {} : { tlsPolicy }),
      ...(r['allowPrivateAddresses'] === undefined ? {} : { allowPrivateAddresses: bool(r['allowPrivateAddresses'], 'relay.allowPrivateAddresses') }),
      ...(transport === undefined ? {} : { transport }),
      ...(r['relayHost'] === undefined ? {} : { relayHost: nextHop(r['relayHost'], 'relay.relayHost') }),
      ...(r['minBackoffMs'] === undefined ? {} : { minBackoffMs: int(r['minBackoffMs'], 'relay.minBackoffMs', 1000, 86_400_000) }),
      ...(r['maxQueueLifetimeMs'] === undefined ? {} : { maxQueueLifetimeMs: int(r['maxQueueLifetimeMs'], 'relay.maxQueueLifetimeMs', 0, 60 * 86_400_000) }),
    };
  }
  if (users !== base.users || domains !== base.domains) {
    // Users given earlier must still be in the (possibly new) local domains.
    users?.forEach((u, i) => localAddress(u.address, `users[${i}].address`, domains));
  }
  return {
    ...base,
    ...(file['hostname'] === undefined ? {} : { hostname: domainOrLocalhost(file['hostname']) }),
    ...(file['listen'] === undefined ? {} : { listen: strings(file['listen'], 'listen') }),
    ...(file['dataDir'] === undefined ? {} : { dataDir: str(file['dataDir'], 'dataDir') }),
    ...(file['maxConnections'] === undefined ? {} : { maxConnections: int(file['maxConnections'], 'maxConnections', 1, 1_000_000) }),
    ...(file['maxConnectionsPerIp'] === undefined ? {} : { maxConnectionsPerIp: int(file['maxConnectionsPerIp'], 'maxConnectionsPerIp', 1, 1_000_000) }),
    ...(file['maxMessageBytes'] === undefined ? {} : { maxMessageBytes: int(file['maxMessageBytes'], 'maxMessageBytes', 1024, 1024 * 1024 * 1024) }),
    ...(file['fsync'] === undefined ? {} : { fsync: bool(file['fsync'], 'fsync') }),
    domains,
    users,
    services,
    relay,
  };
}

function domainOrLocalhost(v: unknown): string {
  const h = str(v, 'hostname').toLowerCase();
  return h === 'localhost' ? h : domain(h, 'hostname');
}

/**
 * The defaults with the environment's overrides: `PIGEONPOST_HOSTNAME`,
 * `PIGEONPOST_LISTEN` (comma-separated addresses), `PIGEONPOST_DATA_DIR`,
 * `PIGEONPOST_PORT_OFFSET` (added to every non-zero port, for running two).
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env, base: MailServerConfig = defaultConfig): MailServerConfig {
  const offset = env['PIGEONPOST_PORT_OFFSET'] === undefined ? 0 : Number(env['PIGEONPOST_PORT_OFFSET']);
  if (!Number.isInteger(offset) || offset < -1024 || offset > 60_000) {
    throw new ConfigError(`PIGEONPOST_PORT_OFFSET must be an integer, got ${env['PIGEONPOST_PORT_OFFSET']}`);
  }
  return {
    ...base,
    hostname: env['PIGEONPOST_HOSTNAME'] ?? base.hostname,
    listen: env['PIGEONPOST_LISTEN']?.split(',').map((s) => s.trim()).filter(Boolean) ?? base.listen,
    dataDir: env['PIGEONPOST_DATA_DIR'] ?? base.dataDir,
    services: base.services.map((s) => ({ ...s, port: s.port === 0 ? 0 : s.port + offset })),
  };
}

/** Where the config file is looked for: `$PIGEONPOST_CONFIG`, else `<dataDir>/config.json`. */
export function configFilePath(env: NodeJS.ProcessEnv = process.env): { readonly path: string; readonly explicit: boolean } {
  const explicit = env['PIGEONPOST_CONFIG'];
  if (explicit !== undefined && explicit !== '') return { path: explicit, explicit: true };
  return { path: join(env['PIGEONPOST_DATA_DIR'] ?? defaultConfig.dataDir, 'config.json'), explicit: false };
}

/**
 * The configuration `npm start` runs with: defaults, the config file when
 * there is one (an explicit `$PIGEONPOST_CONFIG` must exist), then the
 * environment. `file` is the path read, if any.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): { readonly config: MailServerConfig; readonly file: string | undefined } {
  const { path, explicit } = configFilePath(env);
  let config = defaultConfig;
  let file: string | undefined;
  if (explicit || existsSync(path)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new ConfigError(`${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
    try {
      config = applyConfigFile(parsed, config);
    } catch (error) {
      if (error instanceof ConfigError) throw new ConfigError(`${path}: ${error.message}`);
      throw error;
    }
    file = path;
  }
  return { config: configFromEnv(env, config), file };
}
