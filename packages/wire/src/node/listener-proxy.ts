/**
 * The socket side of the PROXY protocol: reading the header off an accepted
 * socket (the parsing is the pure `decodeProxyHeader`), and deciding which
 * peers may send one.
 */
import { BlockList, isIP } from 'node:net';
import type * as net from 'node:net';
import type { Clock, TimerHandle } from '../clock.js';
import { decodeProxyHeader } from '../codec/proxy-protocol.js';
import type { ProxyHeader } from '../codec/proxy-protocol.js';
import { ListenerError, ProxyProtocolError } from '../errors.js';

/** `::ffff:192.0.2.1` → `192.0.2.1`: a dual-stack socket reports IPv4 peers as mapped IPv6, but they are one client. */
export function normalizeIp(address: string): string {
  if (address.startsWith('::ffff:') || address.startsWith('::FFFF:')) {
    const v4 = address.slice(7);
    if (isIP(v4) === 4) return v4;
  }
  return address;
}

/** Is `address` one of the trusted proxies? Built once from IPs and CIDRs; a bad entry is a configuration error thrown now. */
export function createTrustedProxyMatcher(entries: readonly string[]): (address: string) => boolean {
  const list = new BlockList();
  for (const entry of entries) {
    const [ip, bits, extra] = entry.trim().split('/');
    const family = ip === undefined ? 0 : isIP(ip);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const prefix = bits === undefined ? undefined : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
    if (family === 0 || extra !== undefined || (prefix !== undefined && (Number.isNaN(prefix) || prefix > (family === 4 ? 32 : 128)))) {
      throw new ListenerError('ERR_LISTENER_CONFIG', `proxyProtocol.trustedProxies: ${JSON.stringify(entry)} is not an IP address or CIDR`, { side: 'local' });
    }
    if (prefix === undefined) list.addAddress(ip!, type);
    else list.addSubnet(ip!, prefix, type);
  }
  return (address) => {
    const ip = normalizeIp(address);
    const family = isIP(ip);
    if (family === 0) return false;
    return list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
  };
}

export interface ReadProxyHeaderOptions {
  readonly maxV2HeaderBytes: number;
  /** 0 waits forever. */
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly signal: AbortSignal;
}

/**
 * Read a PROXY header from the start of `socket`. Bytes after the header are
 * put back with `unshift`, so the next reader — the session, or the TLS layer,
 * which takes a socket's buffered bytes as the start of the handshake — sees
 * every byte exactly once. Reads in paused mode (`'readable'` + `read()`), so
 * nothing is emitted as `'data'` to anyone before the header is done.
 *
 * Rejects with ProxyProtocolError: the decoder's codes, `ERR_PROXY_TIMEOUT`,
 * `ERR_PROXY_TRUNCATED` (the peer ended before the header was complete) or
 * `ERR_ABORTED`. The caller owns the socket either way.
 */
export function readProxyHeader(socket: net.Socket, options: ReadProxyHeaderOptions): Promise<ProxyHeader> {
  return new Promise<ProxyHeader>((resolve, reject) => {
    let buffered: Buffer = Buffer.alloc(0);
    let timer: TimerHandle | undefined;
    let settled = false;
    const settle = (error: ProxyProtocolError | undefined, header?: ProxyHeader): void => {
      if (settled) return;
      settled = true;
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('close', onClose);
      options.signal.removeEventListener('abort', onAbort);
      if (timer !== undefined) options.clock.clearTimeout(timer);
      if (error !== undefined) reject(error);
      else resolve(header!);
    };
    const onReadable = (): void => {
      for (;;) {
        if (settled) return;
        const chunk = socket.read() as Buffer | null;
        if (chunk === null) return;
        // Bounded: the decoder refuses anything longer than the largest header allowed.
        buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
        const result = decodeProxyHeader(buffered, { maxV2HeaderBytes: options.maxV2HeaderBytes });
        if (result.status === 'incomplete') continue;
        if (result.status === 'error') {
          settle(result.error);
          return;
        }
        const rest = buffered.subarray(result.consumed);
        if (rest.length > 0) socket.unshift(rest);
        settle(undefined, result.header);
        return;
      }
    };
    const onEnd = (): void => {
      settle(new ProxyProtocolError('ERR_PROXY_TRUNCATED', `the peer closed the connection after ${buffered.length} bytes of an incomplete PROXY header`, { side: 'remote' }));
    };
    const onClose = (): void => {
      settle(new ProxyProtocolError('ERR_PROXY_TRUNCATED', 'the connection closed before the PROXY header was complete', { side: 'remote' }));
    };
    const onAbort = (): void => {
      settle(new ProxyProtocolError('ERR_ABORTED', 'reading the PROXY header was aborted', { cause: options.signal.reason }));
    };
    if (options.signal.aborted) {
      onAbort();
      return;
    }
    if (options.timeoutMs > 0) {
      timer = options.clock.setTimeout(() => {
        timer = undefined;
        settle(new ProxyProtocolError('ERR_PROXY_TIMEOUT', `no complete PROXY header within ${options.timeoutMs} ms`, { side: 'remote' }));
      }, options.timeoutMs);
    }
    options.signal.addEventListener('abort', onAbort, { once: true });
    socket.on('end', onEnd);
    socket.once('close', onClose);
    socket.on('readable', onReadable);
  });
}
