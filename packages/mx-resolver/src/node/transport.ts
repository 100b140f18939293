import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { getServers } from 'node:dns';
import net from 'node:net';
import * as packet from 'dns-packet';
import type { Clock } from '@pigeonpost/wire';
import { systemClock } from '@pigeonpost/wire/node';
import type { DnsRecord, DnsRecordType, DnsResponse, DnsTransport } from '../dns.js';
import { DnsError } from '../errors.js';

export interface DnsServerAddress {
  readonly host: string;
  readonly port: number;
}

export interface UdpDnsTransportOptions {
  /** Servers as `'127.0.0.1'`, `'127.0.0.1:15353'`, `'::1'` or `'[::1]:15353'`. Default: the system's (`dns.getServers()`, read from /etc/resolv.conf; only the list is taken, queries never go through the system resolver). */
  readonly servers?: readonly string[];
  /** Time to wait for one server's answer, in ms. Default 5,000 (glibc's resolver default). */
  readonly timeoutMs?: number;
  /** Rounds over the server list. Default 2 (glibc's `attempts`). */
  readonly tries?: number;
  /** EDNS0 UDP payload size advertised (RFC 6891). Default 1,232 (DNS Flag Day 2020). */
  readonly udpPayloadSize?: number;
  readonly clock?: Clock;
}

export const udpDnsTransportDefaults = Object.freeze({
  timeoutMs: 5_000,
  tries: 2,
  udpPayloadSize: 1_232,
});

/** Parses `host`, `host:port`, `[v6]:port`; port 53 by default. Throws `TypeError` for anything else. */
export function parseDnsServer(spec: string): DnsServerAddress {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(spec);
  if (bracket) return checked(bracket[1] ?? '', bracket[2], spec);
  if (net.isIP(spec) !== 0) return { host: spec, port: 53 };
  const hostPort = /^([^:]+):(\d+)$/.exec(spec);
  if (hostPort) return checked(hostPort[1] ?? '', hostPort[2], spec);
  throw new TypeError(`invalid DNS server ${JSON.stringify(spec)}: expected an IP address with an optional port`);
}

function checked(host: string, port: string | undefined, spec: string): DnsServerAddress {
  const n = port === undefined ? 53 : Number(port);
  if (net.isIP(host) === 0 || !Number.isInteger(n) || n < 1 || n > 65_535) {
    throw new TypeError(`invalid DNS server ${JSON.stringify(spec)}: expected an IP address with an optional port`);
  }
  return { host, port: n };
}

type Decoded = ReturnType<typeof packet.decode> & { rcode?: string };

function convert(answers: readonly packet.Answer[] | undefined): DnsRecord[] {
  const out: DnsRecord[] = [];
  for (const a of answers ?? []) {
    const ttl = 'ttl' in a && typeof a.ttl === 'number' ? a.ttl : 0;
    switch (a.type) {
      case 'A':
      case 'AAAA':
      case 'CNAME':
        out.push({ name: a.name, type: a.type, ttl, data: a.data });
        break;
      case 'MX':
        out.push({ name: a.name, type: 'MX', ttl, data: { preference: a.data.preference ?? 0, exchange: a.data.exchange } });
        break;
      case 'TXT': {
        const parts = Array.isArray(a.data) ? a.data : [a.data];
        out.push({ name: a.name, type: 'TXT', ttl, data: parts.map((p) => (typeof p === 'string' ? p : p.toString('utf8'))).join('') });
        break;
      }
      case 'SOA':
        out.push({ name: a.name, type: 'SOA', ttl, data: { minimum: a.data.minimum ?? 0 } });
        break;
      default:
        break;
    }
  }
  return out;
}

function sameQuestion(response: Decoded, name: string, type: DnsRecordType): boolean {
  const q = response.questions?.[0];
  if (q === undefined || response.questions?.length !== 1) return false;
  return q.type === type && q.name.replace(/\.$/, '').toLowerCase() === name.toLowerCase();
}

/**
 * A stub resolver client: UDP with a random query ID from a random source
 * port, responses checked against the server address, the ID and the
 * question (RFC 5452), TCP when a response is truncated (RFC 7766), EDNS0,
 * servers tried in turn, `tries` rounds, per-query timeout on a `Clock`.
 */
export class UdpDnsTransport implements DnsTransport {
  readonly #servers: readonly DnsServerAddress[];
  readonly #timeoutMs: number;
  readonly #tries: number;
  readonly #payload: number;
  readonly #clock: Clock;

  constructor(options: UdpDnsTransportOptions = {}) {
    const servers = (options.servers ?? getServers()).map(parseDnsServer);
    if (servers.length === 0) throw new TypeError('no DNS servers: pass `servers`');
    this.#servers = servers;
    this.#timeoutMs = options.timeoutMs ?? udpDnsTransportDefaults.timeoutMs;
    this.#tries = Math.max(1, options.tries ?? udpDnsTransportDefaults.tries);
    this.#payload = options.udpPayloadSize ?? udpDnsTransportDefaults.udpPayloadSize;
    this.#clock = options.clock ?? systemClock;
  }

  get servers(): readonly DnsServerAddress[] {
    return this.#servers;
  }

  async query(name: string, type: DnsRecordType, signal?: AbortSignal): Promise<DnsResponse> {
    const question = `${name} ${type}`;
    let lastError: unknown;
    for (let round = 0; round < this.#tries; round++) {
      for (const server of this.#servers) {
        if (signal?.aborted === true) throw new DnsError('ERR_DNS_ABORTED', question, `DNS query ${question} aborted`, { cause: signal.reason });
        try {
          let response = await this.#udp(server, name, type, signal);
          if (response.flag_tc) response = await this.#tcp(server, name, type, signal);
          return { rcode: response.rcode ?? 'NOERROR', answers: convert(response.answers), authorities: convert(response.authorities) };
        } catch (error) {
          if (DnsError.isInstance(error) && error.code === 'ERR_DNS_ABORTED') throw error;
          lastError = error;
        }
      }
    }
    if (DnsError.isInstance(lastError)) throw lastError;
    throw new DnsError('ERR_DNS_NETWORK', question, `DNS query ${question} failed: ${String(lastError)}`, { cause: lastError });
  }

  #encode(name: string, type: DnsRecordType, id: number): Buffer {
    return packet.encode({
      type: 'query',
      id,
      flags: packet.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: this.#payload, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    });
  }

  #udp(server: DnsServerAddress, name: string, type: DnsRecordType, signal?: AbortSignal): Promise<Decoded> {
    const question = `${name} ${type}`;
    const id = randomInt(0, 65_536);
    const query = this.#encode(name, type, id);
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    return new Promise<Decoded>((resolve, reject) => {
      let done = false;
      const finish = (error: Error | undefined, value?: Decoded): void => {
        if (done) return;
        done = true;
        this.#clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.close();
        if (error !== undefined) reject(error);
        else if (value !== undefined) resolve(value);
      };
      const onAbort = (): void => finish(new DnsError('ERR_DNS_ABORTED', question, `DNS query ${question} aborted`, { cause: signal?.reason }));
      const timer = this.#clock.setTimeout(
        () => finish(new DnsError('ERR_DNS_TIMEOUT', question, `no answer from ${server.host}:${server.port} for ${question} within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.on('error', (error) => finish(new DnsError('ERR_DNS_NETWORK', question, `DNS over UDP to ${server.host}:${server.port}: ${error.message}`, { cause: error })));
      socket.on('message', (message, rinfo) => {
        // Off-path spoofing defences: the answer must come from the server we asked, carry our ID and echo our question.
        if (rinfo.port !== server.port || normalizeIp(rinfo.address) !== normalizeIp(server.host)) return;
        let decoded: Decoded;
        try {
          decoded = packet.decode(message);
        } catch {
          return;
        }
        if (decoded.id !== id || decoded.type !== 'response' || !sameQuestion(decoded, name, type)) return;
        finish(undefined, decoded);
      });
      socket.connect(server.port, server.host, () => {
        socket.send(query, (error) => {
          if (error) finish(new DnsError('ERR_DNS_NETWORK', question, `DNS over UDP to ${server.host}:${server.port}: ${error.message}`, { cause: error }));
        });
      });
    });
  }

  #tcp(server: DnsServerAddress, name: string, type: DnsRecordType, signal?: AbortSignal): Promise<Decoded> {
    const question = `${name} ${type}`;
    const id = randomInt(0, 65_536);
    const query = this.#encode(name, type, id);
    const framed = Buffer.alloc(query.length + 2);
    framed.writeUInt16BE(query.length, 0);
    query.copy(framed, 2);
    return new Promise<Decoded>((resolve, reject) => {
      let done = false;
      let buffered = Buffer.alloc(0);
      const socket = net.connect({ host: server.host, port: server.port });
      const finish = (error: Error | undefined, value?: Decoded): void => {
        if (done) return;
        done = true;
        this.#clock.clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        if (error !== undefined) reject(error);
        else if (value !== undefined) resolve(value);
      };
      const onAbort = (): void => finish(new DnsError('ERR_DNS_ABORTED', question, `DNS query ${question} aborted`, { cause: signal?.reason }));
      const timer = this.#clock.setTimeout(
        () => finish(new DnsError('ERR_DNS_TIMEOUT', question, `no answer over TCP from ${server.host}:${server.port} for ${question} within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
      signal?.addEventListener('abort', onAbort, { once: true });
      socket.on('error', (error) => finish(new DnsError('ERR_DNS_NETWORK', question, `DNS over TCP to ${server.host}:${server.port}: ${error.message}`, { cause: error })));
      socket.on('connect', () => socket.write(framed));
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2) return;
        const length = buffered.readUInt16BE(0);
        if (buffered.length < length + 2) return;
        let decoded: Decoded;
        try {
          decoded = packet.decode(buffered.subarray(2, 2 + length));
        } catch (error) {
          finish(new DnsError('ERR_DNS_BAD_RESPONSE', question, `malformed DNS response over TCP for ${question}`, { cause: error }));
          return;
        }
        if (decoded.id !== id || !sameQuestion(decoded, name, type)) {
          finish(new DnsError('ERR_DNS_BAD_RESPONSE', question, `DNS response over TCP does not match ${question}`));
          return;
        }
        finish(undefined, decoded);
      });
      socket.on('end', () => finish(new DnsError('ERR_DNS_BAD_RESPONSE', question, `DNS server closed TCP before answering ${question}`)));
    });
  }
}

function normalizeIp(address: string): string {
  const a = address.toLowerCase();
  return a.startsWith('::ffff:') && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}
