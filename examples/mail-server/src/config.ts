/**
 * The mail server's configuration, with embedded defaults so `npm start` runs
 * with no file at all. Ports are unprivileged by default (2525 for 25, …) so
 * it runs without root; set them to the standard numbers in production.
 */
export type ServiceProtocol = 'smtp' | 'pop3' | 'imap';

export interface ServiceConfig {
  /** A name for logs: `smtp`, `submission`, `smtps`, `pop3`, `pop3s`, `imap`, `imaps`. */
  readonly name: string;
  readonly protocol: ServiceProtocol;
  readonly port: number;
  /** Implicit TLS (465, 995, 993). Otherwise the service offers STARTTLS/STLS once its protocol package lands. */
  readonly implicitTls: boolean;
}

export interface MailServerConfig {
  /** The host name in greetings and in the development certificate. */
  readonly hostname: string;
  /** Addresses to bind. */
  readonly listen: readonly string[];
  /** Where state lives: development certificates now, mailboxes and the queue later. */
  readonly dataDir: string;
  readonly services: readonly ServiceConfig[];
  readonly maxConnections: number;
  readonly maxConnectionsPerIp: number;
}

export const defaultConfig: MailServerConfig = Object.freeze<MailServerConfig>({
  hostname: 'localhost',
  listen: ['127.0.0.1'],
  dataDir: '.pigeonpost',
  services: [
    { name: 'smtp', protocol: 'smtp', port: 2525, implicitTls: false },
    { name: 'submission', protocol: 'smtp', port: 2587, implicitTls: false },
    { name: 'smtps', protocol: 'smtp', port: 2465, implicitTls: true },
    { name: 'pop3', protocol: 'pop3', port: 2110, implicitTls: false },
    { name: 'pop3s', protocol: 'pop3', port: 2995, implicitTls: true },
    { name: 'imap', protocol: 'imap', port: 2143, implicitTls: false },
    { name: 'imaps', protocol: 'imap', port: 2993, implicitTls: true },
  ],
  maxConnections: 1000,
  maxConnectionsPerIp: 20,
});

/**
 * The defaults with the environment's overrides: `PIGEONPOST_HOSTNAME`,
 * `PIGEONPOST_LISTEN` (comma-separated addresses), `PIGEONPOST_DATA_DIR`,
 * `PIGEONPOST_PORT_OFFSET` (added to every default port, for running two).
 */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env, base: MailServerConfig = defaultConfig): MailServerConfig {
  const offset = env['PIGEONPOST_PORT_OFFSET'] === undefined ? 0 : Number(env['PIGEONPOST_PORT_OFFSET']);
  if (!Number.isInteger(offset) || offset < -1024 || offset > 60_000) {
    throw new RangeError(`PIGEONPOST_PORT_OFFSET must be an integer, got ${env['PIGEONPOST_PORT_OFFSET']}`);
  }
  return {
    ...base,
    hostname: env['PIGEONPOST_HOSTNAME'] ?? base.hostname,
    listen: env['PIGEONPOST_LISTEN']?.split(',').map((s) => s.trim()).filter(Boolean) ?? base.listen,
    dataDir: env['PIGEONPOST_DATA_DIR'] ?? base.dataDir,
    services: base.services.map((s) => ({ ...s, port: s.port === 0 ? 0 : s.port + offset })),
  };
}
