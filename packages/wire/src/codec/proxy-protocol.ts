/**
 * PROXY protocol v1 and v2 (haproxy's proxy-protocol.txt): the header a load
 * balancer sends before the client's bytes, carrying the client's real
 * address. Pure and incremental: `decodeProxyHeader(received)` looks at the
 * bytes received so far and answers `incomplete`, `done` (the header and how
 * many bytes it used — everything after belongs to the application protocol)
 * or `error`. It never reads past the end of the header, never throws on
 * input, and gives the same answer however the bytes were split: every check
 * looks at a fixed position or waits for the whole header, so an error seen
 * on a prefix is the error the whole input gives.
 */
import { ProxyProtocolError } from '../errors.js';
import { defaultLimits, PROXY_V1_MAX_HEADER_BYTES } from '../limits.js';

// ---------------------------------------------------------------------------
// Types: a header that decodes is one of these shapes, nothing in between.

export type ProxyAddressFamily = 'IPv4' | 'IPv6' | 'unix' | 'unspec';
export type ProxyTransport = 'stream' | 'dgram' | 'unspec';

/** Source and destination of a proxied TCP/UDP connection. Addresses are canonical (IPv6 in RFC 5952 form). */
export interface ProxyInetAddresses {
  readonly family: 'IPv4' | 'IPv6';
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
}

/** Source and destination of a proxied Unix socket connection (v2 only). */
export interface ProxyUnixAddresses {
  readonly family: 'unix';
  readonly sourcePath: string;
  readonly destinationPath: string;
}

export type ProxyAddresses = ProxyInetAddresses | ProxyUnixAddresses;

/** One Type-Length-Value field of a v2 header, exactly as received. */
export interface ProxyTlv {
  readonly type: number;
  readonly value: Uint8Array;
}

/** The PP2_TYPE_SSL TLV: what the proxy learnt from the client's TLS session. */
export interface ProxySslInfo {
  /** PP2_CLIENT_SSL: the client connected over SSL/TLS. */
  readonly clientSsl: boolean;
  /** PP2_CLIENT_CERT_CONN: the client presented a certificate on this connection. */
  readonly clientCertConnection: boolean;
  /** PP2_CLIENT_CERT_SESS: the client presented a certificate at least once in this TLS session. */
  readonly clientCertSession: boolean;
  /** The `verify` field: true only when it is 0 (a certificate was presented and verified). */
  readonly verified: boolean;
  readonly version?: string;
  readonly commonName?: string;
  readonly cipher?: string;
  readonly signatureAlgorithm?: string;
  readonly keyAlgorithm?: string;
  readonly group?: string;
  readonly signatureScheme?: string;
  /** PP2_SUBTYPE_SSL_CLIENT_CERT: the client certificate in DER. */
  readonly clientCertificate?: Uint8Array;
  /** Every sub-TLV, in order, known or not. */
  readonly subTlvs: readonly ProxyTlv[];
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /**
   * `proxy`: the connection is relayed for a client, and `addresses` (when
   * set) describe it. `local`: the proxy talks for itself (a health check);
   * the real connection endpoints apply. v1 headers are always `proxy`.
   */
  readonly command: 'proxy' | 'local';
  readonly family: ProxyAddressFamily;
  readonly transport: ProxyTransport;
  /**
   * The proxied endpoints. Undefined for LOCAL, for the UNSPEC family and for
   * v1 `UNKNOWN`: the spec says to use the real connection endpoints then.
   */
  readonly addresses: ProxyAddresses | undefined;
  /** Every TLV, in order (v2 only; empty for v1). The fields below decode the first of each known type. */
  readonly tlvs: readonly ProxyTlv[];
  /** PP2_TYPE_ALPN, one byte per character (latin1), e.g. `"h2"`. */
  readonly alpn?: string;
  /** PP2_TYPE_AUTHORITY: the host name the client asked for (TLS SNI or HTTP Host), UTF-8. */
  readonly authority?: string;
  /** PP2_TYPE_CRC32C, already verified against the header. */
  readonly crc32c?: number;
  /** PP2_TYPE_UNIQUE_ID: an opaque id of at most 128 bytes. */
  readonly uniqueId?: Uint8Array;
  readonly ssl?: ProxySslInfo;
  /** PP2_TYPE_NETNS: the network namespace name. */
  readonly netns?: string;
}

export interface ProxyDecodeOptions {
  /** Largest v2 header accepted, prefix included. Default `defaultLimits.maxV2HeaderBytes` (4096). */
  readonly maxV2HeaderBytes?: number;
}

export type ProxyDecodeResult =
  | { readonly status: 'incomplete' }
  | { readonly status: 'done'; readonly header: ProxyHeader; readonly consumed: number }
  | { readonly status: 'error'; readonly error: ProxyProtocolError };

// ---------------------------------------------------------------------------
// Constants from proxy-protocol.txt.

/** The 12 bytes that open a v2 header (§2.2). They cannot start any text protocol's first line. */
export const PROXY_V2_SIGNATURE: Uint8Array = Uint8Array.of(0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a);

/** TLV type numbers (§2.2.1–2.2.8). */
export const ProxyTlvType = Object.freeze({
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  SSL_VERSION: 0x21,
  SSL_CN: 0x22,
  SSL_CIPHER: 0x23,
  SSL_SIG_ALG: 0x24,
  SSL_KEY_ALG: 0x25,
  SSL_GROUP: 0x26,
  SSL_SIG_SCHEME: 0x27,
  SSL_CLIENT_CERT: 0x28,
  NETNS: 0x30,
});

const V1_PREFIX = Uint8Array.of(0x50, 0x52, 0x4f, 0x58, 0x59, 0x20); // "PROXY "
const V2_PREFIX_BYTES = 16;
/** Address block sizes by family nibble (§2.2): UNSPEC 0, INET 12, INET6 36, UNIX 216. */
const V2_ADDRESS_BYTES = [0, 12, 36, 216] as const;
const V2_UNIX_PATH_BYTES = 108;
/** §2.2.5: "The value ... must not exceed 128 bytes". */
const MAX_UNIQUE_ID_BYTES = 128;
const PP2_CLIENT_SSL = 0x01;
const PP2_CLIENT_CERT_CONN = 0x02;
const PP2_CLIENT_CERT_SESS = 0x04;

// ---------------------------------------------------------------------------
// Decoding.

function fail(code: string, message: string): ProxyDecodeResult {
  return {
    status: 'error',
    error: new ProxyProtocolError(code, message, {
      side: 'remote',
      reply: { smtp: { code: 421, enhanced: '4.7.0' }, imap: { status: 'BYE' }, pop3: {}, text: 'Invalid PROXY protocol header' },
    }),
  };
}

const INCOMPLETE: ProxyDecodeResult = Object.freeze({ status: 'incomplete' });

/**
 * Decode a PROXY v1 or v2 header from the start of `received` (all the bytes
 * received so far on the connection). Call again with more bytes while the
 * answer is `incomplete`. On `done`, bytes from `consumed` on belong to the
 * next layer (TLS or the application protocol).
 *
 * Error codes: `ERR_PROXY_MISSING` (the bytes do not start a PROXY header —
 * known from the first byte that differs from both signatures),
 * `ERR_PROXY_MALFORMED`, `ERR_PROXY_TOO_LARGE`, `ERR_PROXY_UNSUPPORTED`
 * (another version, command, family or transport), `ERR_PROXY_CHECKSUM`.
 */
export function decodeProxyHeader(received: Uint8Array, options: ProxyDecodeOptions = {}): ProxyDecodeResult {
  const maxV2 = options.maxV2HeaderBytes ?? defaultLimits.maxV2HeaderBytes;
  if (received.length === 0) return INCOMPLETE;
  // The first byte tells the versions apart: 'P' for v1, CR for v2 (§2.2 chose
  // a v2 signature that no v1 header, nor any text protocol, can start with).
  const first = received[0];
  const signature = first === V1_PREFIX[0] ? V1_PREFIX : first === PROXY_V2_SIGNATURE[0] ? PROXY_V2_SIGNATURE : undefined;
  if (signature === undefined) return fail('ERR_PROXY_MISSING', 'the connection does not start with a PROXY protocol header');
  const checked = Math.min(received.length, signature.length);
  for (let i = 1; i < checked; i++) {
    if (received[i] !== signature[i]) return fail('ERR_PROXY_MISSING', 'the connection does not start with a PROXY protocol header');
  }
  if (received.length < signature.length) return INCOMPLETE;
  return signature === V1_PREFIX ? decodeV1(received) : decodeV2(received, maxV2);
}

function decodeV1(received: Uint8Array): ProxyDecodeResult {
  // §2.1: the whole line, CRLF included, fits in 107 bytes; a receiver must
  // not wait for more. The first LF decides: CRLF ends the line, a bare LF is
  // malformed.
  const window = Math.min(received.length, PROXY_V1_MAX_HEADER_BYTES);
  let lf = -1;
  for (let i = 0; i < window; i++) {
    if (received[i] === 0x0a) {
      lf = i;
      break;
    }
  }
  if (lf === -1) {
    if (received.length >= PROXY_V1_MAX_HEADER_BYTES) {
      return fail('ERR_PROXY_TOO_LARGE', `PROXY v1 header without CRLF in its first ${PROXY_V1_MAX_HEADER_BYTES} bytes`);
    }
    return INCOMPLETE;
  }
  if (received[lf - 1] !== 0x0d) return fail('ERR_PROXY_MALFORMED', 'PROXY v1 header ends with a bare LF');
  let line = '';
  for (let i = 0; i < lf - 1; i++) {
    const byte = received[i]!;
    // Only printable US-ASCII and spaces; a CR, NUL or 8-bit byte is a forgery or garbage.
    if (byte < 0x20 || byte > 0x7e) return fail('ERR_PROXY_MALFORMED', 'PROXY v1 header contains a control or non-ASCII byte');
    line += String.fromCharCode(byte);
  }
  const consumed = lf + 1;
  const parts = line.split(' ');
  const proto = parts[1];
  if (proto === 'UNKNOWN') {
    // §2.1: "the receiver must ignore anything presented before the CRLF is found".
    return done({ version: 1, command: 'proxy', family: 'unspec', transport: 'unspec', addresses: undefined, tlvs: [] }, consumed);
  }
  if (proto !== 'TCP4' && proto !== 'TCP6') return fail('ERR_PROXY_UNSUPPORTED', 'PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN');
  // Exactly one space between fields: "PROXY TCP4 src dst sport dport".
  if (parts.length !== 6) return fail('ERR_PROXY_MALFORMED', 'PROXY v1 header does not have exactly 6 fields separated by single spaces');
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const family = proto === 'TCP4' ? 'IPv4' : 'IPv6';
  const sourceAddress = family === 'IPv4' ? canonicalIPv4(src) : canonicalIPv6(src);
  const destinationAddress = family === 'IPv4' ? canonicalIPv4(dst) : canonicalIPv6(dst);
  if (sourceAddress === undefined || destinationAddress === undefined) {
    return fail('ERR_PROXY_MALFORMED', `PROXY v1 address is not a valid ${family} address`);
  }
  const sourcePort = parsePort(sport);
  const destinationPort = parsePort(dport);
  if (sourcePort === undefined || destinationPort === undefined) return fail('ERR_PROXY_MALFORMED', 'PROXY v1 port is not a number 0-65535');
  return done(
    {
      version: 1,
      command: 'proxy',
      family,
      transport: 'stream',
      addresses: { family, sourceAddress, sourcePort, destinationAddress, destinationPort },
      tlvs: [],
    },
    consumed,
  );
}

function done(header: ProxyHeader, consumed: number): ProxyDecodeResult {
  return { status: 'done', header, consumed };
}

function decodeV2(received: Uint8Array, maxV2: number): ProxyDecodeResult {
  // Byte 13: version (high nibble, must be 2) and command (low nibble).
  if (received.length < 13) return INCOMPLETE;
  const verCmd = received[12]!;
  if (verCmd >> 4 !== 2) return fail('ERR_PROXY_UNSUPPORTED', `PROXY v2 header with version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return fail('ERR_PROXY_UNSUPPORTED', `PROXY v2 header with unknown command ${cmd}`);
  // Byte 14: address family (high nibble) and transport (low nibble). §2.2:
  // other values "must be rejected as invalid by receivers".
  if (received.length < 14) return INCOMPLETE;
  const famProto = received[13]!;
  const fam = famProto >> 4;
  const proto = famProto & 0x0f;
  if (fam > 3 || proto > 2) return fail('ERR_PROXY_UNSUPPORTED', `PROXY v2 header with unknown family/transport 0x${famProto.toString(16)}`);
  if (received.length < V2_PREFIX_BYTES) return INCOMPLETE;
  const length = (received[14]! << 8) | received[15]!;
  const total = V2_PREFIX_BYTES + length;
  // Refuse an oversized header from its prefix, before buffering any of it.
  if (total > maxV2) return fail('ERR_PROXY_TOO_LARGE', `PROXY v2 header of ${total} bytes is over the ${maxV2}-byte limit`);
  const addressBytes = V2_ADDRESS_BYTES[fam as 0 | 1 | 2 | 3];
  if (length < addressBytes) return fail('ERR_PROXY_MALFORMED', `PROXY v2 length ${length} is too short for the address block`);
  if (received.length < total) return INCOMPLETE;
  const header = received.subarray(0, total);

  const family: ProxyAddressFamily = (['unspec', 'IPv4', 'IPv6', 'unix'] as const)[fam as 0 | 1 | 2 | 3];
  const transport: ProxyTransport = (['unspec', 'stream', 'dgram'] as const)[proto as 0 | 1 | 2];
  const command = cmd === 0 ? 'local' : 'proxy';
  let addresses: ProxyAddresses | undefined;
  // §2.2: with LOCAL, or the UNSPEC family, the receiver uses the real
  // endpoints and ignores the address block.
  if (command === 'proxy') {
    const a = V2_PREFIX_BYTES;
    if (fam === 1) {
      addresses = {
        family: 'IPv4',
        sourceAddress: formatIPv4(header.subarray(a, a + 4)),
        destinationAddress: formatIPv4(header.subarray(a + 4, a + 8)),
        sourcePort: readU16(header, a + 8),
        destinationPort: readU16(header, a + 10),
      };
    } else if (fam === 2) {
      addresses = {
        family: 'IPv6',
        sourceAddress: formatIPv6(header.subarray(a, a + 16)),
        destinationAddress: formatIPv6(header.subarray(a + 16, a + 32)),
        sourcePort: readU16(header, a + 32),
        destinationPort: readU16(header, a + 34),
      };
    } else if (fam === 3) {
      const sourcePath = decodeUnixPath(header.subarray(a, a + V2_UNIX_PATH_BYTES));
      const destinationPath = decodeUnixPath(header.subarray(a + V2_UNIX_PATH_BYTES, a + 2 * V2_UNIX_PATH_BYTES));
      if (sourcePath === undefined || destinationPath === undefined) return fail('ERR_PROXY_MALFORMED', 'PROXY v2 unix path is not UTF-8');
      addresses = { family: 'unix', sourcePath, destinationPath };
    }
  }

  const tlvResult = readTlvs(header, V2_PREFIX_BYTES + addressBytes, total);
  if (typeof tlvResult === 'string') return fail('ERR_PROXY_MALFORMED', tlvResult);
  const tlvs = tlvResult;
  const fields: {
    alpn?: string;
    authority?: string;
    crc32c?: number;
    uniqueId?: Uint8Array;
    ssl?: ProxySslInfo;
    netns?: string;
  } = {};
  let crcOffset = -1;
  let offset = V2_PREFIX_BYTES + addressBytes;
  for (const tlv of tlvs) {
    const valueOffset = offset + 3;
    offset = valueOffset + tlv.value.length;
    switch (tlv.type) {
      case ProxyTlvType.ALPN:
        fields.alpn ??= latin1(tlv.value);
        break;
      case ProxyTlvType.AUTHORITY: {
        const text = utf8(tlv.value);
        if (text === undefined) return fail('ERR_PROXY_MALFORMED', 'PROXY v2 AUTHORITY is not UTF-8');
        fields.authority ??= text;
        break;
      }
      case ProxyTlvType.CRC32C:
        if (tlv.value.length !== 4) return fail('ERR_PROXY_MALFORMED', 'PROXY v2 CRC32C TLV is not 4 bytes');
        if (crcOffset !== -1) return fail('ERR_PROXY_MALFORMED', 'PROXY v2 header has two CRC32C TLVs');
        crcOffset = valueOffset;
        fields.crc32c = readU32(tlv.value, 0);
        break;
      case ProxyTlvType.UNIQUE_ID:
        if (tlv.value.length > MAX_UNIQUE_ID_BYTES) return fail('ERR_PROXY_MALFORMED', 'PROXY v2 UNIQUE_ID is over 128 bytes');
        fields.uniqueId ??= tlv.value;
        break;
      case ProxyTlvType.SSL: {
        const ssl = decodeSsl(tlv.value);
        if (typeof ssl === 'string') return fail('ERR_PROXY_MALFORMED', ssl);
        fields.ssl ??= ssl;
        break;
      }
      case ProxyTlvType.NETNS: {
        const name = ascii(tlv.value);
        if (name === undefined) return fail('ERR_PROXY_MALFORMED', 'PROXY v2 NETNS is not US-ASCII');
        fields.netns ??= name;
        break;
      }
      default:
        // NOOP (§2.2.4) and unknown or custom types (0xE0-0xEF, 0xF0…) are kept raw in `tlvs`.
        break;
    }
  }
  if (crcOffset !== -1) {
    // §2.2.3: the CRC32c of the whole header with the checksum field zeroed.
    const copy = header.slice();
    copy.fill(0, crcOffset, crcOffset + 4);
    if (crc32c(copy) !== fields.crc32c) return fail('ERR_PROXY_CHECKSUM', 'PROXY v2 CRC32C does not match the header');
  }
  return done({ version: 2, command, family, transport, addresses, tlvs, ...fields }, total);
}

/** Split `bytes[start, end)` into TLVs; a TLV running past the end is malformed (a string says why). */
function readTlvs(bytes: Uint8Array, start: number, end: number): ProxyTlv[] | string {
  const tlvs: ProxyTlv[] = [];
  let i = start;
  while (i < end) {
    if (end - i < 3) return 'PROXY v2 TLV header is truncated';
    const type = bytes[i]!;
    const length = readU16(bytes, i + 1);
    if (i + 3 + length > end) return `PROXY v2 TLV 0x${type.toString(16)} runs past the end of the header`;
    // Copy, so the header never aliases a buffer the caller may reuse.
    tlvs.push({ type, value: bytes.slice(i + 3, i + 3 + length) });
    i += 3 + length;
  }
  return tlvs;
}

function decodeSsl(value: Uint8Array): ProxySslInfo | string {
  // §2.2.6: struct pp2_tlv_ssl { uint8_t client; uint32_t verify; struct pp2_tlv sub_tlv[0]; }
  if (value.length < 5) return 'PROXY v2 SSL TLV is shorter than 5 bytes';
  const client = value[0]!;
  const subTlvs = readTlvs(value, 5, value.length);
  if (typeof subTlvs === 'string') return subTlvs;
  const info: {
    -readonly [K in keyof ProxySslInfo]: ProxySslInfo[K];
  } = {
    clientSsl: (client & PP2_CLIENT_SSL) !== 0,
    clientCertConnection: (client & PP2_CLIENT_CERT_CONN) !== 0,
    clientCertSession: (client & PP2_CLIENT_CERT_SESS) !== 0,
    verified: readU32(value, 1) === 0,
    subTlvs,
  };
  const asciiFields = {
    [ProxyTlvType.SSL_VERSION]: 'version',
    [ProxyTlvType.SSL_CIPHER]: 'cipher',
    [ProxyTlvType.SSL_SIG_ALG]: 'signatureAlgorithm',
    [ProxyTlvType.SSL_KEY_ALG]: 'keyAlgorithm',
    [ProxyTlvType.SSL_GROUP]: 'group',
    [ProxyTlvType.SSL_SIG_SCHEME]: 'signatureScheme',
  } as const satisfies Record<number, keyof ProxySslInfo>;
  for (const sub of subTlvs) {
    if (sub.type === ProxyTlvType.SSL_CN) {
      // §2.2.6: the CN is UTF-8; the others are US-ASCII.
      const cn = utf8(sub.value);
      if (cn === undefined) return 'PROXY v2 SSL CN is not UTF-8';
      info.commonName ??= cn;
    } else if (sub.type === ProxyTlvType.SSL_CLIENT_CERT) {
      info.clientCertificate ??= sub.value;
    } else if (sub.type in asciiFields) {
      const key = asciiFields[sub.type as keyof typeof asciiFields];
      const text = ascii(sub.value);
      if (text === undefined) return `PROXY v2 SSL ${key} is not US-ASCII`;
      info[key] ??= text;
    }
  }
  return info;
}

// ---------------------------------------------------------------------------
// Encoding: for clients that sit behind us (a relay talking to a PROXY-aware
// upstream) and for tests.

export interface ProxyHeaderInit {
  readonly command?: 'proxy' | 'local';
  readonly transport?: ProxyTransport;
  /** Omit for `UNKNOWN` (v1) or the UNSPEC family (v2). */
  readonly addresses?: ProxyAddresses;
  /** v2 only: TLVs written in order, after the addresses. */
  readonly tlvs?: readonly ProxyTlv[];
  /** v2 only: append a CRC32C TLV computed over the whole header. */
  readonly crc32c?: boolean;
}

/** `PROXY TCP4 …\r\n`. Throws `ERR_PROXY_INVALID_ARGUMENT` (side `local`) for a Unix address or a bad address/port. */
export function encodeProxyHeaderV1(init: ProxyHeaderInit = {}): Uint8Array {
  const a = init.addresses;
  if (a === undefined) return new TextEncoder().encode('PROXY UNKNOWN\r\n');
  if (a.family === 'unix') throw invalidArgument('PROXY v1 cannot carry Unix socket addresses');
  const canon = a.family === 'IPv4' ? canonicalIPv4 : canonicalIPv6;
  const src = canon(a.sourceAddress);
  const dst = canon(a.destinationAddress);
  if (src === undefined || dst === undefined) throw invalidArgument(`not a valid ${a.family} address`);
  checkPort(a.sourcePort);
  checkPort(a.destinationPort);
  const proto = a.family === 'IPv4' ? 'TCP4' : 'TCP6';
  return new TextEncoder().encode(`PROXY ${proto} ${src} ${dst} ${a.sourcePort} ${a.destinationPort}\r\n`);
}

/** A binary v2 header. Throws `ERR_PROXY_INVALID_ARGUMENT` (side `local`) for bad addresses, ports, TLVs or a header over 16 + 65535 bytes. */
export function encodeProxyHeaderV2(init: ProxyHeaderInit = {}): Uint8Array {
  const command = init.command ?? 'proxy';
  const a = init.addresses;
  const transport = init.transport ?? (a === undefined ? 'unspec' : 'stream');
  const fam = a === undefined ? 0 : a.family === 'IPv4' ? 1 : a.family === 'IPv6' ? 2 : 3;
  const addressBlock = new Uint8Array(V2_ADDRESS_BYTES[fam]);
  if (a !== undefined && a.family !== 'unix') {
    const parse = a.family === 'IPv4' ? parseIPv4 : parseIPv6;
    const src = parse(a.sourceAddress);
    const dst = parse(a.destinationAddress);
    if (src === undefined || dst === undefined) throw invalidArgument(`not a valid ${a.family} address`);
    checkPort(a.sourcePort);
    checkPort(a.destinationPort);
    addressBlock.set(src, 0);
    addressBlock.set(dst, src.length);
    writeU16(addressBlock, 2 * src.length, a.sourcePort);
    writeU16(addressBlock, 2 * src.length + 2, a.destinationPort);
  } else if (a !== undefined) {
    const enc = new TextEncoder();
    const src = enc.encode(a.sourcePath);
    const dst = enc.encode(a.destinationPath);
    if (src.length >= V2_UNIX_PATH_BYTES || dst.length >= V2_UNIX_PATH_BYTES) throw invalidArgument('Unix path longer than 107 bytes');
    addressBlock.set(src, 0);
    addressBlock.set(dst, V2_UNIX_PATH_BYTES);
  }
  const tlvs = [...(init.tlvs ?? [])];
  if (init.crc32c === true) tlvs.push({ type: ProxyTlvType.CRC32C, value: new Uint8Array(4) });
  let tlvBytes = 0;
  for (const t of tlvs) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 255 || t.value.length > 0xffff) throw invalidArgument('TLV type must be 0-255 and value at most 65535 bytes');
    tlvBytes += 3 + t.value.length;
  }
  const length = addressBlock.length + tlvBytes;
  if (length > 0xffff) throw invalidArgument('PROXY v2 header over 16 + 65535 bytes');
  const out = new Uint8Array(V2_PREFIX_BYTES + length);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = 0x20 | (command === 'local' ? 0 : 1);
  out[13] = (fam << 4) | (transport === 'unspec' ? 0 : transport === 'stream' ? 1 : 2);
  writeU16(out, 14, length);
  out.set(addressBlock, V2_PREFIX_BYTES);
  let i = V2_PREFIX_BYTES + addressBlock.length;
  for (const t of tlvs) {
    out[i] = t.type;
    writeU16(out, i + 1, t.value.length);
    out.set(t.value, i + 3);
    i += 3 + t.value.length;
  }
  if (init.crc32c === true) {
    const sum = crc32c(out);
    // The CRC TLV is last; its value is the final 4 bytes, in network byte order.
    new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(out.length - 4, sum);
  }
  return out;
}

function invalidArgument(message: string): ProxyProtocolError {
  return new ProxyProtocolError('ERR_PROXY_INVALID_ARGUMENT', message, { side: 'local' });
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArgument(`port ${port} is not 0-65535`);
}

// ---------------------------------------------------------------------------
// Addresses. Strict: no leading zeros in IPv4 octets or ports (an "010" octet
// is octal to some parsers and decimal to others), no IPv6 zone ids.

const IPV4_OCTET = /^(?:0|[1-9]\d{0,2})$/;
const PORT = /^(?:0|[1-9]\d{0,4})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parsePort(text: string): number | undefined {
  if (!PORT.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/** Four octets of a dotted-quad IPv4 address, or undefined. */
function parseIPv4(text: string): Uint8Array | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!IPV4_OCTET.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

/** Sixteen bytes of an IPv6 address (RFC 4291 §2.2 text forms, dotted IPv4 tail allowed, no zone id), or undefined. */
function parseIPv6(text: string): Uint8Array | undefined {
  if (text.length < 2 || text.length > 45) return undefined;
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    const parts = s.split(':');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (i === parts.length - 1 && p.includes('.')) {
        const v4 = parseIPv4(p);
        if (v4 === undefined) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!HEX_GROUP.test(p)) return undefined;
        out.push(parseInt(p, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (head === undefined || tail === undefined) return undefined;
  // A dotted tail is only allowed at the very end.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  let all: number[];
  if (halves.length === 2) {
    if (head.length + tail.length > 7) return undefined;
    all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    all = head;
  }
  const out = new Uint8Array(16);
  all.forEach((g, i) => writeU16(out, 2 * i, g));
  return out;
}

function canonicalIPv4(text: string): string | undefined {
  const bytes = parseIPv4(text);
  return bytes === undefined ? undefined : formatIPv4(bytes);
}

function canonicalIPv6(text: string): string | undefined {
  const bytes = parseIPv6(text);
  return bytes === undefined ? undefined : formatIPv6(bytes);
}

function formatIPv4(bytes: Uint8Array): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** RFC 5952 §4: lower case, no leading zeros, the longest run (2+ groups, first on a tie) of zeros as `::`; IPv4-mapped as `::ffff:a.b.c.d` (§5). */
function formatIPv6(bytes: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(readU16(bytes, i));
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes.subarray(12))}`;
  }
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((n) => n.toString(16)).join(':');
  if (bestStart === -1) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

// ---------------------------------------------------------------------------
// Bytes.

function readU16(b: Uint8Array, i: number): number {
  return (b[i]! << 8) | b[i + 1]!;
}

function readU32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

function writeU16(b: Uint8Array, i: number, n: number): void {
  b[i] = (n >> 8) & 0xff;
  b[i + 1] = n & 0xff;
}

function latin1(b: Uint8Array): string {
  let s = '';
  for (const byte of b) s += String.fromCharCode(byte);
  return s;
}

function ascii(b: Uint8Array): string | undefined {
  for (const byte of b) if (byte > 0x7f) return undefined;
  return latin1(b);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function utf8(b: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(b);
  } catch {
    return undefined;
  }
}

/** A Unix path field: NUL-terminated (or filling all 108 bytes), UTF-8. */
function decodeUnixPath(field: Uint8Array): string | undefined {
  const nul = field.indexOf(0);
  return utf8(nul === -1 ? field : field.subarray(0, nul));
}

let crcTable: Uint32Array | undefined;

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as §2.2.3 requires. */
export function crc32c(bytes: Uint8Array): number {
  if (crcTable === undefined) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}
