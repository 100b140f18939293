import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import { addressScope } from '../addresses.js';
import type { DnsLookup } from '../dns.js';
import { MtaStsError } from '../errors.js';
import { mtaStsDefaults, type MtaStsFetcher } from '../mta-sts.js';

export interface MtaStsFetchOptions {
  /** Resolves `mta-sts.<domain>`: the connection goes to the address found, never through the system resolver. */
  readonly dns: DnsLookup;
  /** HTTPS port. Default 443 (tests use a high port). */
  readonly port?: number;
  /** Trusted CAs instead of Node's bundled roots (tests pass a dev CA). */
  readonly ca?: SecureContextOptions['ca'];
  /** Largest policy body accepted, in bytes. Default 65,536 (RFC 8461 §3.3). */
  readonly maxPolicyBytes?: number;
  /** Whole fetch timeout, in ms. Default 10,000. */
  readonly timeoutMs?: number;
  /** Allow loopback/private addresses for the policy host. Default false. */
  readonly allowPrivateAddresses?: boolean;
}

/**
 * The RFC 8461 §3.3 fetch: `GET https://mta-sts.<domain>/.well-known/mta-sts.txt`,
 * certificate checked against `mta-sts.<domain>` with the normal rules, no
 * redirects followed, only 200 with `text/plain`, body capped. Resolves with
 * the body text; rejects with `MtaStsError` (`ERR_MTA_STS_FETCH`).
 */
export function createMtaStsFetcher(options: MtaStsFetchOptions): MtaStsFetcher {
  const maxBytes = options.maxPolicyBytes ?? mtaStsDefaults.maxPolicyBytes;
  const timeoutMs = options.timeoutMs ?? mtaStsDefaults.fetchTimeoutMs;
  return (domain, signal) => {
    const host = `mta-sts.${domain}`;
    const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
      void resolveHost(options, hostname).then(
        (addresses) => {
          const first = addresses[0];
          if (first === undefined) {
            callback(Object.assign(new Error(`${hostname} has no usable address`), { code: 'ENOTFOUND' }), '', 0);
          } else if ((lookupOptions as { all?: boolean }).all === true) {
            (callback as unknown as (e: null, a: { address: string; family: number }[]) => void)(null, addresses);
          } else {
            callback(null, first.address, first.family);
          }
        },
        (error: unknown) => callback(error as NodeJS.ErrnoException, '', 0),
      );
    };
    return new Promise<string>((resolve, reject) => {
      const fail = (message: string, cause?: unknown): void => reject(new MtaStsError('ERR_MTA_STS_FETCH', `MTA-STS policy of ${domain}: ${message}`, cause === undefined ? {} : { cause }));
      const request = https.request(
        {
          host,
          port: options.port ?? 443,
          path: '/.well-known/mta-sts.txt',
          method: 'GET',
          lookup,
          servername: host,
          ...(options.ca !== undefined ? { ca: options.ca } : {}),
          headers: { 'user-agent': 'pigeonpost-mx-resolver', accept: 'text/plain' },
          timeout: timeoutMs,
          ...(signal !== undefined ? { signal } : {}),
          agent: false,
        },
        (response) => {
          const status = response.statusCode ?? 0;
          if (status !== 200) {
            response.resume();
            fail(status >= 300 && status < 400 ? `redirect (HTTP ${status}) refused: RFC 8461 §3.3 forbids following it` : `HTTP status ${status}`);
            return;
          }
          const type = (response.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
          if (type !== 'text/plain') {
            response.resume();
            fail(`media type ${JSON.stringify(type)}, not text/plain`);
            return;
          }
          const chunks: Buffer[] = [];
          let size = 0;
          response.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > maxBytes) {
              request.destroy();
              fail(`policy larger than ${maxBytes} bytes`);
              return;
            }
            chunks.push(chunk);
          });
          response.on('end', () => {
            if (size <= maxBytes) resolve(Buffer.concat(chunks).toString('utf8'));
          });
          response.on('error', (error) => fail(error.message, error));
        },
      );
      request.on('timeout', () => {
        request.destroy();
        fail(`no complete answer within ${timeoutMs} ms`);
      });
      request.on('error', (error) => fail(error.message, error));
      request.end();
    });
  };
}

async function resolveHost(options: MtaStsFetchOptions, hostname: string): Promise<{ address: string; family: 4 | 6 }[]> {
  const out: { address: string; family: 4 | 6 }[] = [];
  for (const [type, family] of [['A', 4], ['AAAA', 6]] as const) {
    const result = await options.dns.lookup(hostname, type).catch(() => undefined);
    if (result?.kind !== 'records') continue;
    for (const r of result.records) {
      if (r.type !== type) continue;
      if (options.allowPrivateAddresses !== true && addressScope(r.data) !== 'public') continue;
      out.push({ address: r.data, family });
    }
  }
  return out;
}
