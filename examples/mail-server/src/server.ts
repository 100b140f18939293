import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createMaildirStore } from '@pigeonpost/mailbox-store';
import type { MailStore } from '@pigeonpost/mailbox-store';
import { createMxResolver } from '@pigeonpost/mx-resolver/node';
import { mailStoreBackend } from '@pigeonpost/pop3-core';
import { createPop3Server } from '@pigeonpost/pop3-core/node';
import type { Pop3Server } from '@pigeonpost/pop3-core/node';
import { Relay, SmtpDeliverer } from '@pigeonpost/relay';
import type { NextHop, RelayEvent, RoutingOptions } from '@pigeonpost/relay';
import { smtpReply } from '@pigeonpost/smtp-core';
import type { SmtpServerOptions } from '@pigeonpost/smtp-core/node';
import { createSmtpServer } from '@pigeonpost/smtp-core/node';
import type { SmtpServer } from '@pigeonpost/smtp-core/node';
import type { Logger, SaslBackend } from '@pigeonpost/wire';
import { silentLogger } from '@pigeonpost/wire';
import type { Listener, RejectInfo } from '@pigeonpost/wire/node';
import { createListener, createServerTlsOptions, ensureDevCertificates, systemClock } from '@pigeonpost/wire/node';
import type { MailServerConfig, NextHopConfig, ServiceConfig, UserConfig } from './config.js';
import type { AcceptContext } from './delivery.js';
import { acceptMessage, LocalFirstDeliverer, lookupAddress } from './delivery.js';
import type { DevUser } from './users.js';
import { ensureDevUsers, hashDevUsers, UserDirectory } from './users.js';

/**
 * IMAP stays a placeholder until @pigeonpost/imap-core exists: its ports
 * accept connections (TLS, limits, idle timeouts and graceful close all
 * real) and answer `* BYE [UNAVAILABLE]` (RFC 5530), so clients fail cleanly
 * and say why.
 */
const imapUnavailable = '* BYE [UNAVAILABLE] Pigeonpost: IMAP is not available yet (imap-core is not built); use POP3\r\n';
const imapTooMany = '* BYE [UNAVAILABLE] Too many connections, try again later\r\n';

export interface RunningService {
  readonly config: ServiceConfig;
  readonly addresses: readonly AddressInfo[];
}

export interface RunningMailServer extends AsyncDisposable {
  readonly services: readonly RunningService[];
  /** The development CA certificate (PEM) that clients trust to reach the TLS ports. */
  readonly caCert: string;
  readonly caCertPath: string;
  /** The mailbox store (Maildir under `<dataDir>/mail`). */
  readonly store: MailStore;
  /** The outbound queue (spool under `<dataDir>/queue`). */
  readonly relay: Relay;
  readonly directory: UserDirectory;
  /** The development users with their passwords, when the config names no users. */
  readonly devUsers: readonly DevUser[] | undefined;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Called for every relay outcome (tests wait on it); the server logs them too. */
  readonly onRelayEvent?: (event: RelayEvent) => void;
}

function nextHop(h: NextHopConfig): NextHop {
  return { host: h.host, ...(h.port === undefined ? {} : { port: h.port }), ...(h.mx === undefined ? {} : { mx: h.mx }) };
}

export async function startMailServer(config: MailServerConfig, logger: Logger = silentLogger, options: StartOptions = {}): Promise<RunningMailServer> {
  const dataDir = resolve(config.dataDir);
  const certs = await ensureDevCertificates({
    dir: join(dataDir, 'certs'),
    hostnames: [...new Set([config.hostname, 'localhost'])],
    ipAddresses: [...new Set(['127.0.0.1', '::1', ...config.listen.filter((a) => a.includes('.') || a.includes(':'))])],
    logger,
  });
  const tls = createServerTlsOptions({ key: certs.key, cert: certs.cert });

  let devUsers: readonly DevUser[] | undefined;
  let users: readonly UserConfig[];
  if (config.users === undefined) {
    devUsers = await ensureDevUsers(dataDir, config.domains[0]!);
    users = await hashDevUsers(devUsers, config.domains);
  } else {
    users = config.users;
  }
  const directory = new UserDirectory(config.domains, users);

  // Listeners close first, together (each session finishes what it is doing),
  // then the relay (attempts in flight end as deferred), then the store.
  const listeners: { close(): Promise<void> }[] = [];
  const cleanups: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    const results = await Promise.allSettled(listeners.splice(0).map((l) => l.close()));
    for (const r of results) if (r.status === 'rejected') logger.error({ err: r.reason as unknown }, 'close failed');
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch (error) {
        logger.error({ err: error }, 'close failed');
      }
    }
  };

  try {
    const store = createMaildirStore({ root: join(dataDir, 'mail'), fsync: config.fsync, limits: { maxMessageBytes: config.maxMessageBytes + 64 * 1024 }, logger: logger.child({ component: 'store' }) });
    cleanups.push(() => store.close());
    for (const u of users) if (!(await store.hasUser(u.address))) await store.createUser(u.address);

    const resolver = createMxResolver({
      ...(config.relay.dnsServers ? { servers: config.relay.dnsServers } : {}),
      allowPrivateAddresses: config.relay.allowPrivateAddresses,
      localHostnames: [config.hostname],
    });
    const routing: RoutingOptions = {
      port: config.relay.mxPort,
      ...(config.relay.transport ? { transport: Object.fromEntries(Object.entries(config.relay.transport).map(([k, v]) => [k, nextHop(v)])) } : {}),
      ...(config.relay.relayHost ? { relayHost: nextHop(config.relay.relayHost) } : {}),
    };
    const smtpDeliverer = new SmtpDeliverer({
      mx: resolver.mx,
      mtaSts: resolver.mtaSts,
      hostname: config.hostname,
      routing,
      tlsPolicy: config.relay.tlsPolicy,
      logger: logger.child({ component: 'deliverer' }),
    });
    const relayLog = logger.child({ component: 'relay' });
    const relay = await Relay.open({
      spoolDir: join(dataDir, 'queue'),
      deliverer: new LocalFirstDeliverer(directory, store, smtpDeliverer),
      hostname: config.hostname,
      fsync: config.fsync,
      maxMessageBytes: config.maxMessageBytes + 64 * 1024,
      ...(config.relay.minBackoffMs === undefined ? {} : { minBackoffMs: config.relay.minBackoffMs }),
      ...(config.relay.maxQueueLifetimeMs === undefined ? {} : { maxQueueLifetimeMs: config.relay.maxQueueLifetimeMs }),
      logger: relayLog,
      onEvent: (event) => {
        const { type, ...rest } = event;
        relayLog.info(rest, `relay ${type}`);
        options.onRelayEvent?.(event);
      },
    });
    cleanups.push(() => relay.close());

    // Bodies spooled for several destinations live in tmp/ only while their message is handled: leftovers of a crash go.
    await rm(join(dataDir, 'tmp'), { recursive: true, force: true });
    const ctx: AcceptContext = { directory, store, relay, hostname: config.hostname, tmpDir: join(dataDir, 'tmp'), logger, now: () => systemClock.now() };
    const saslBackend: SaslBackend = {
      verifyPassword: ({ authcid, password }) => directory.verify(authcid, password),
    };

    const smtpCommon = (service: ServiceConfig): SmtpServerOptions => ({
      name: service.name,
      hostname: config.hostname,
      tls,
      secure: service.implicitTls,
      maxMessageBytes: config.maxMessageBytes,
      maxConnections: config.maxConnections,
      maxConnectionsPerIp: config.maxConnectionsPerIp,
      logger: logger.child({ service: service.name }),
      onData: (envelope, body, session) => acceptMessage(ctx, envelope, body, session),
    });

    const mxOptions = (service: ServiceConfig): SmtpServerOptions => ({
      ...smtpCommon(service),
      // Mail for the local domains' users only; nothing is relayed from here (no AUTH on the MX port).
      onRcptTo: (to) => {
        if (!directory.isLocalDomain(to.asciiDomain)) return Promise.reject(smtpReply(550, '5.7.1', 'Relaying denied: not a local domain'));
        if (directory.storeUserFor(lookupAddress(to)) === undefined) return Promise.reject(smtpReply(550, '5.1.1', 'No such user here'));
        return Promise.resolve();
      },
    });

    const submissionOptions = (service: ServiceConfig): SmtpServerOptions => ({
      ...smtpCommon(service),
      submission: true,
      auth: { mechanisms: ['PLAIN', 'LOGIN'], backend: saslBackend },
      // The envelope sender must be one of the user's own addresses (Postfix reject_sender_login_mismatch).
      onMailFrom: (from, _params, session) => {
        const login = session.user?.authzid ?? '';
        if (from === null || !directory.mayUseSender(login, lookupAddress(from))) {
          return Promise.reject(smtpReply(553, '5.7.1', `Sender address not owned by ${login}`));
        }
        return Promise.resolve();
      },
      // Local recipients must exist; anywhere else is relayed for an authenticated user.
      onRcptTo: (to) => {
        if (directory.isLocalDomain(to.asciiDomain) && directory.storeUserFor(lookupAddress(to)) === undefined) {
          return Promise.reject(smtpReply(550, '5.1.1', 'No such user here'));
        }
        return Promise.resolve();
      },
    });

    const pop3Backend = mailStoreBackend({
      store,
      verifyPassword: (login, password) => directory.verify(login, password),
      storeUser: (login) => directory.storeUserForLogin(login),
    });

    const services: RunningService[] = [];
    for (const service of config.services) {
      let server: SmtpServer | Pop3Server | Listener;
      if (service.role === 'mx') server = createSmtpServer(mxOptions(service));
      else if (service.role === 'submission') server = createSmtpServer(submissionOptions(service));
      else if (service.role === 'pop3') {
        server = createPop3Server({
          name: service.name,
          hostname: config.hostname,
          backend: pop3Backend,
          tls,
          secure: service.implicitTls,
          maxConnections: config.maxConnections,
          maxConnectionsPerIp: config.maxConnectionsPerIp,
          logger: logger.child({ service: service.name }),
        });
      } else {
        server = createListener({
          name: service.name,
          logger: logger.child({ service: service.name }),
          maxConnections: config.maxConnections,
          maxConnectionsPerIp: config.maxConnectionsPerIp,
          ...(service.implicitTls ? { tls } : {}),
          rejectMessage: (_info: RejectInfo) => imapTooMany,
          onConnection: (connection) => {
            connection.socket.end(imapUnavailable);
          },
        });
      }
      const s = server;
      listeners.push(s);
      const addresses: AddressInfo[] = [];
      for (const host of config.listen) addresses.push(await s.listen({ host, port: service.port }));
      services.push({ config: service, addresses });
    }

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= closeAll());
    return {
      services,
      caCert: certs.caCert,
      caCertPath: certs.paths.caCert,
      store,
      relay,
      directory,
      devUsers,
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}
