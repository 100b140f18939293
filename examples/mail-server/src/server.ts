import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@pigeonpost/wire';
import { silentLogger } from '@pigeonpost/wire';
import type { Listener, RejectInfo } from '@pigeonpost/wire/node';
import { createListener, createServerTlsOptions, ensureDevCertificates } from '@pigeonpost/wire/node';
import type { MailServerConfig, ServiceConfig, ServiceProtocol } from './config.js';

/**
 * Interim: until @pigeonpost/smtp-core, pop3-core and imap-core land, each
 * service accepts connections (TLS, limits, idle timeouts and graceful close
 * all real) and answers with its protocol's own "service not available" reply
 * — SMTP 421 (RFC 5321 §3.8), POP3 -ERR [SYS/TEMP] (RFC 3206), IMAP
 * * BYE [UNAVAILABLE] (RFC 5530) — so clients fail cleanly and say why.
 */
const unavailable: Record<ServiceProtocol, (hostname: string) => string> = {
  smtp: (h) => `421 4.3.2 ${h} Pigeonpost: SMTP service not available yet\r\n`,
  pop3: () => `-ERR [SYS/TEMP] Pigeonpost: POP3 service not available yet\r\n`,
  imap: () => `* BYE [UNAVAILABLE] Pigeonpost: IMAP service not available yet\r\n`,
};

const tooMany: Record<ServiceProtocol, string> = {
  smtp: '421 4.7.0 Too many connections, try again later\r\n',
  pop3: '-ERR [SYS/TEMP] Too many connections, try again later\r\n',
  imap: '* BYE [UNAVAILABLE] Too many connections, try again later\r\n',
};

export interface RunningService {
  readonly config: ServiceConfig;
  readonly addresses: readonly AddressInfo[];
}

export interface RunningMailServer extends AsyncDisposable {
  readonly services: readonly RunningService[];
  /** The development CA certificate (PEM) that clients trust to reach the TLS ports. */
  readonly caCert: string;
  readonly caCertPath: string;
  close(): Promise<void>;
}

export async function startMailServer(config: MailServerConfig, logger: Logger = silentLogger): Promise<RunningMailServer> {
  const certs = await ensureDevCertificates({
    dir: join(resolve(config.dataDir), 'certs'),
    hostnames: [config.hostname, 'localhost'],
    ipAddresses: ['127.0.0.1', '::1', ...config.listen.filter((a) => a.includes('.') || a.includes(':'))],
    logger,
  });
  const tls = createServerTlsOptions({ key: certs.key, cert: certs.cert });
  const listeners: Listener[] = [];
  const services: RunningService[] = [];
  try {
    for (const service of config.services) {
      const greeting = unavailable[service.protocol](config.hostname);
      const listener = createListener({
        name: service.name,
        logger: logger.child({ service: service.name }),
        maxConnections: config.maxConnections,
        maxConnectionsPerIp: config.maxConnectionsPerIp,
        ...(service.implicitTls ? { tls } : {}),
        rejectMessage: (_info: RejectInfo) => tooMany[service.protocol],
        onConnection: (connection) => {
          connection.socket.end(greeting);
        },
      });
      listeners.push(listener);
      const addresses: AddressInfo[] = [];
      for (const host of config.listen) addresses.push(await listener.listen({ host, port: service.port }));
      services.push({ config: service, addresses });
    }
  } catch (error) {
    await Promise.all(listeners.map((l) => l.close()));
    throw error;
  }
  const close = async (): Promise<void> => {
    await Promise.all(listeners.map((l) => l.close()));
  };
  return { services, caCert: certs.caCert, caCertPath: certs.paths.caCert, close, [Symbol.asyncDispose]: close };
}
