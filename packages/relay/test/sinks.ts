// Test MX hosts: smtp-core servers on 127.0.0.x, all on one port (the relay's SMTP port).
import { smtpReply } from '@pigeonpost/smtp-core';
import { createSmtpServer, type SmtpServer } from '@pigeonpost/smtp-core/node';

export interface Received {
  readonly host: string;
  readonly from: string;
  readonly to: readonly string[];
  readonly body: string;
  readonly params: { readonly ret?: string; readonly envid?: string; readonly notify?: readonly (readonly string[] | undefined)[] };
}

export interface SinkBehaviour {
  /** Greet with 421 (busy). */
  readonly greet421?: boolean;
  /** Refuse recipients whose local part starts with `bad` (550 5.1.1) or `later` (450 4.2.1). */
  readonly refuseByName?: boolean;
}

export interface Sinks {
  readonly port: number;
  readonly received: Received[];
  readonly connections: Map<string, number>;
  close(): Promise<void>;
}

export async function startSinks(hosts: Readonly<Record<string, SinkBehaviour>>): Promise<Sinks> {
  const received: Received[] = [];
  const connections = new Map<string, number>();
  for (let attempt = 0; attempt < 10; attempt++) {
    const servers: SmtpServer[] = [];
    let port = 0;
    try {
      for (const [host, behaviour] of Object.entries(hosts)) {
        const server = createSmtpServer({
          hostname: `sink-${host}`,
          extensions: { dsn: true },
          onConnect: () => {
            connections.set(host, (connections.get(host) ?? 0) + 1);
            return behaviour.greet421 === true ? Promise.reject(smtpReply(421, '4.3.2', 'busy, try later')) : Promise.resolve();
          },
          onRcptTo: (to) => {
            if (behaviour.refuseByName === true && to.localPart.startsWith('bad')) return Promise.reject(smtpReply(550, '5.1.1', `no such user ${to.address}`));
            if (behaviour.refuseByName === true && to.localPart.startsWith('later')) return Promise.reject(smtpReply(450, '4.2.1', 'mailbox busy'));
            return Promise.resolve();
          },
          onData: async (envelope, body) => {
            const chunks: Buffer[] = [];
            for await (const c of body) chunks.push(Buffer.from(c));
            received.push({
              host,
              from: envelope.mailFrom?.address ?? '',
              to: envelope.rcptTo.map((r) => r.address.address),
              body: Buffer.concat(chunks).toString('utf8'),
              params: { ...(envelope.mailParams.ret ? { ret: envelope.mailParams.ret } : {}), ...(envelope.mailParams.envid ? { envid: envelope.mailParams.envid } : {}), notify: envelope.rcptTo.map((r) => r.params.notify as readonly string[] | undefined) },
            });
            return { text: 'queued' };
          },
        });
        servers.push(server);
        const address = await server.listen({ host, port });
        port = address.port;
      }
      return {
        port,
        received,
        connections,
        async close() {
          await Promise.all(servers.map((s) => s.close()));
        },
      };
    } catch (error) {
      await Promise.all(servers.map((s) => s.close()));
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
  throw new Error('no common free port for the sinks');
}
