import dgram from 'node:dgram';
import net from 'node:net';
import * as packet from 'dns-packet';

/** A record served by the test DNS server. */
export type TestDnsRecord =
  | { readonly name: string; readonly type: 'A' | 'AAAA' | 'CNAME'; readonly data: string; readonly ttl?: number }
  | { readonly name: string; readonly type: 'MX'; readonly data: { readonly preference: number; readonly exchange: string }; readonly ttl?: number }
  | { readonly name: string; readonly type: 'TXT'; readonly data: string | readonly string[]; readonly ttl?: number };

/** What to do with one query instead of answering it from the records. */
export type TestDnsBehaviour = 'answer' | 'servfail' | 'refused' | 'drop' | 'truncate' | 'wrong-id';

export interface TestDnsQuery {
  readonly name: string;
  readonly type: string;
  readonly transport: 'udp' | 'tcp';
}

export interface StartTestDnsServerOptions {
  readonly records?: readonly TestDnsRecord[];
  /** The server is authoritative for names under these suffixes: unknown names there are NXDOMAIN. Default: every name. */
  readonly zones?: readonly string[];
  /** Per-query override (SERVFAIL, silence, truncation, a spoofed ID). Default: answer. */
  readonly behaviour?: (query: TestDnsQuery) => TestDnsBehaviour;
  /** TTL of records without one, and the SOA's negative TTL, in seconds. Default 300 and 60. */
  readonly defaultTtl?: number;
  readonly negativeTtl?: number;
  /** Loopback address to bind. Default `127.0.0.1`. */
  readonly host?: string;
  /** Port (UDP and TCP). Default 0: an ephemeral port. */
  readonly port?: number;
}

export interface TestDnsServer {
  readonly host: string;
  readonly port: number;
  /** `host:port` (or `[host]:port`), ready for the resolver's `servers`. */
  readonly address: string;
  /** Every query received, in order. */
  readonly queries: readonly TestDnsQuery[];
  /** Replace the records (a zone change between two lookups). */
  setRecords(records: readonly TestDnsRecord[]): void;
  close(): Promise<void>;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

/**
 * A small authoritative DNS server over UDP and TCP on loopback, for tests of
 * code that routes mail: MX, A, AAAA, CNAME and TXT records, NXDOMAIN and
 * no-data answers with an SOA, and failures on demand (SERVFAIL, REFUSED,
 * silence for timeouts, truncation to force TCP, a wrong query ID).
 */
export async function startTestDnsServer(options: StartTestDnsServerOptions = {}): Promise<TestDnsServer> {
  const host = options.host ?? '127.0.0.1';
  const defaultTtl = options.defaultTtl ?? 300;
  const negativeTtl = options.negativeTtl ?? 60;
  let records = options.records ?? [];
  const queries: TestDnsQuery[] = [];
  const lower = (n: string): string => n.toLowerCase().replace(/\.$/, '');

  const zoneOf = (name: string): string => {
    const zones = options.zones ?? [];
    return zones.find((z) => name === lower(z) || name.endsWith(`.${lower(z)}`)) ?? name.split('.').slice(-1)[0] ?? name;
  };

  const toAnswer = (r: TestDnsRecord): packet.Answer => {
    const ttl = r.ttl ?? defaultTtl;
    if (r.type === 'MX') return { name: r.name, type: 'MX', ttl, data: { preference: r.data.preference, exchange: r.data.exchange } };
    if (r.type === 'TXT') return { name: r.name, type: 'TXT', ttl, data: typeof r.data === 'string' ? [r.data] : [...r.data] };
    return { name: r.name, type: r.type, ttl, data: r.data };
  };

  const respond = (request: packet.DecodedPacket, transport: 'udp' | 'tcp'): Buffer | undefined => {
    const q = request.questions?.[0];
    if (q === undefined) return undefined;
    const query: TestDnsQuery = { name: lower(q.name), type: q.type, transport };
    queries.push(query);
    const behaviour = options.behaviour?.(query) ?? 'answer';
    if (behaviour === 'drop') return undefined;
    const base = { type: 'response' as const, id: behaviour === 'wrong-id' ? ((request.id ?? 0) + 1) & 0xffff : request.id, questions: [q] };
    const flags = packet.AUTHORITATIVE_ANSWER | (request.flag_rd ? packet.RECURSION_DESIRED : 0);
    if (behaviour === 'servfail' || behaviour === 'refused') {
      return packet.encode({ ...base, flags: flags | (behaviour === 'servfail' ? RCODE.SERVFAIL : RCODE.REFUSED) });
    }
    if (behaviour === 'truncate' && transport === 'udp') return packet.encode({ ...base, flags: flags | packet.TRUNCATED_RESPONSE });

    const answers: packet.Answer[] = [];
    let name = query.name;
    for (let hops = 0; hops < 16; hops++) {
      const here = records.filter((r) => lower(r.name) === name);
      const exact = here.filter((r) => r.type === q.type);
      if (exact.length > 0) {
        answers.push(...exact.map(toAnswer));
        return packet.encode({ ...base, flags, answers });
      }
      const alias = here.find((r) => r.type === 'CNAME');
      if (alias !== undefined && q.type !== 'CNAME' && alias.type === 'CNAME') {
        answers.push(toAnswer(alias));
        name = lower(alias.data);
        continue;
      }
      const zone = zoneOf(name);
      const soa: packet.Answer = {
        name: zone,
        type: 'SOA',
        ttl: negativeTtl,
        data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: negativeTtl },
      };
      const exists = here.length > 0 || records.some((r) => lower(r.name).endsWith(`.${name}`));
      return packet.encode({ ...base, flags: flags | (exists ? RCODE.NOERROR : RCODE.NXDOMAIN), answers, authorities: [soa] });
    }
    return packet.encode({ ...base, flags: flags | RCODE.SERVFAIL });
  };

  const udp = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  udp.on('message', (message, rinfo) => {
    let request: packet.DecodedPacket;
    try {
      request = packet.decode(message);
    } catch {
      return;
    }
    const reply = respond(request, 'udp');
    if (reply !== undefined) udp.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(options.port ?? 0, host, () => {
      udp.off('error', reject);
      resolve();
    });
  });
  const port = udp.address().port;

  const sockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) return;
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        let request: packet.DecodedPacket;
        try {
          request = packet.decode(message);
        } catch {
          socket.destroy();
          return;
        }
        const reply = respond(request, 'tcp');
        if (reply === undefined) continue;
        const framed = Buffer.alloc(reply.length + 2);
        framed.writeUInt16BE(reply.length, 0);
        reply.copy(framed, 2);
        socket.write(framed);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => {
      tcp.off('error', reject);
      resolve();
    });
  });

  return {
    host,
    port,
    address: net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`,
    queries,
    setRecords(next) {
      records = next;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all([new Promise<void>((resolve) => udp.close(() => resolve())), new Promise<void>((resolve) => tcp.close(() => resolve()))]);
    },
  };
}
