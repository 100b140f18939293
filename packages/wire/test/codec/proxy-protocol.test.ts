import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  crc32c,
  decodeProxyHeader,
  encodeProxyHeaderV1,
  encodeProxyHeaderV2,
  PROXY_V2_SIGNATURE,
  ProxyTlvType,
} from '../../src/codec/proxy-protocol.js';
import type { ProxyDecodeResult, ProxyHeaderInit, ProxyTlv } from '../../src/codec/proxy-protocol.js';
import { ProxyProtocolError } from '../../src/errors.js';

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const concat = (...parts: Uint8Array[]): Uint8Array => Uint8Array.from(Buffer.concat(parts));
const SIG = Buffer.from(PROXY_V2_SIGNATURE).toString('hex');

function errorCode(result: ProxyDecodeResult): string | undefined {
  return result.status === 'error' ? result.error.code : undefined;
}

function expectDone(result: ProxyDecodeResult) {
  if (result.status !== 'done') throw new Error(`expected done, got ${result.status} ${errorCode(result) ?? ''}`);
  return result;
}

/** Feed `bytes` in chunks cut at `cuts`, decoding the accumulated bytes after each, as a socket reader does. */
function decodeInChunks(bytes: Uint8Array, cuts: number[], maxV2HeaderBytes?: number): ProxyDecodeResult {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  points.push(bytes.length);
  let last: ProxyDecodeResult = { status: 'incomplete' };
  for (const end of points) {
    last = decodeProxyHeader(bytes.subarray(0, end), maxV2HeaderBytes === undefined ? {} : { maxV2HeaderBytes });
    if (last.status !== 'incomplete') return last;
  }
  return last;
}

function comparable(result: ProxyDecodeResult): unknown {
  if (result.status === 'error') return { status: 'error', code: result.error.code };
  return result;
}

describe('PROXY v1 (proxy-protocol.txt §2.1)', () => {
  it('decodes TCP4 and leaves the application bytes alone', () => {
    const line = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    const result = expectDone(decodeProxyHeader(ascii(`${line}EHLO client\r\n`)));
    expect(result.consumed).toBe(line.length);
    expect(result.header).toEqual({
      version: 1,
      command: 'proxy',
      family: 'IPv4',
      transport: 'stream',
      addresses: { family: 'IPv4', sourceAddress: '192.168.0.1', sourcePort: 56324, destinationAddress: '192.168.0.11', destinationPort: 443 },
      tlvs: [],
    });
  });

  it('decodes TCP6 into RFC 5952 form', () => {
    const result = expectDone(decodeProxyHeader(ascii('PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:10.0.0.1 65535 0\r\n')));
    expect(result.header.addresses).toEqual({
      family: 'IPv6',
      sourceAddress: '2001:db8::1',
      sourcePort: 65535,
      destinationAddress: '::ffff:10.0.0.1',
      destinationPort: 0,
    });
  });

  it.each([
    ['PROXY UNKNOWN\r\n'],
    ['PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'],
  ])('decodes UNKNOWN and ignores the rest of the line: %j', (line) => {
    const result = expectDone(decodeProxyHeader(ascii(`${line}rest`)));
    expect(result.consumed).toBe(line.length);
    expect(result.header).toMatchObject({ version: 1, family: 'unspec', transport: 'unspec', addresses: undefined });
  });

  it('accepts the longest header, 107 bytes with CRLF, and no longer', () => {
    const longest = `PROXY UNKNOWN ${'x'.repeat(107 - 'PROXY UNKNOWN \r\n'.length)}\r\n`;
    expect(longest.length).toBe(107);
    expect(expectDone(decodeProxyHeader(ascii(longest))).consumed).toBe(107);
    const tooLong = `PROXY UNKNOWN ${'x'.repeat(108 - 'PROXY UNKNOWN \r\n'.length)}\r\n`;
    expect(errorCode(decodeProxyHeader(ascii(tooLong)))).toBe('ERR_PROXY_TOO_LARGE');
    // Known without waiting for the CRLF: 107 bytes and still no line end.
    expect(errorCode(decodeProxyHeader(ascii(`PROXY TCP4 ${'1'.repeat(96)}`)))).toBe('ERR_PROXY_TOO_LARGE');
    expect(decodeProxyHeader(ascii(`PROXY TCP4 ${'1'.repeat(95)}`)).status).toBe('incomplete');
  });

  it.each([
    ['octet with a leading zero', 'PROXY TCP4 192.168.01.1 10.0.0.1 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['octet over 255', 'PROXY TCP4 256.1.1.1 10.0.0.1 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['three octets', 'PROXY TCP4 10.0.1 10.0.0.1 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['port with a leading zero', 'PROXY TCP4 10.0.0.1 10.0.0.2 0443 25\r\n', 'ERR_PROXY_MALFORMED'],
    ['port over 65535', 'PROXY TCP4 10.0.0.1 10.0.0.2 65536 25\r\n', 'ERR_PROXY_MALFORMED'],
    ['negative port', 'PROXY TCP4 10.0.0.1 10.0.0.2 -1 25\r\n', 'ERR_PROXY_MALFORMED'],
    ['IPv6 address under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['IPv4 address under TCP6', 'PROXY TCP6 10.0.0.1 10.0.0.2 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['IPv6 zone id', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['two "::"', 'PROXY TCP6 1::2::3 ::1 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['double space', 'PROXY TCP4 10.0.0.1  10.0.0.2 1 2\r\n', 'ERR_PROXY_MALFORMED'],
    ['missing port', 'PROXY TCP4 10.0.0.1 10.0.0.2 1\r\n', 'ERR_PROXY_MALFORMED'],
    ['trailing space', 'PROXY TCP4 10.0.0.1 10.0.0.2 1 2 \r\n', 'ERR_PROXY_MALFORMED'],
    ['bare LF', 'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\n', 'ERR_PROXY_MALFORMED'],
    ['NUL byte', 'PROXY UNKNOWN \0\r\n', 'ERR_PROXY_MALFORMED'],
    ['unknown protocol', 'PROXY UDP4 10.0.0.1 10.0.0.2 1 2\r\n', 'ERR_PROXY_UNSUPPORTED'],
    ['lower case', 'proxy TCP4 10.0.0.1 10.0.0.2 1 2\r\n', 'ERR_PROXY_MISSING'],
    ['an SMTP command', 'EHLO example.com\r\n', 'ERR_PROXY_MISSING'],
    ['an HTTP request', 'POST / HTTP/1.1\r\n', 'ERR_PROXY_MISSING'],
  ])('refuses %s', (_name, line, code) => {
    const result = decodeProxyHeader(ascii(line));
    expect(errorCode(result)).toBe(code);
    if (result.status === 'error') {
      expect(ProxyProtocolError.isInstance(result.error)).toBe(true);
      expect(result.error.side).toBe('remote');
    }
  });

  it('says "not PROXY" from the first byte that differs', () => {
    expect(errorCode(decodeProxyHeader(ascii('E')))).toBe('ERR_PROXY_MISSING');
    expect(errorCode(decodeProxyHeader(ascii('PROX ')))).toBe('ERR_PROXY_MISSING');
    expect(decodeProxyHeader(ascii('PROX')).status).toBe('incomplete');
    expect(decodeProxyHeader(new Uint8Array(0)).status).toBe('incomplete');
  });
});

describe('PROXY v2 (proxy-protocol.txt §2.2)', () => {
  it('decodes a hand-built TCP over IPv4 header', () => {
    // ver 2 cmd PROXY, AF_INET STREAM, 12 bytes: 127.0.0.1:12345 -> 127.0.0.2:443
    const bytes = hex(`${SIG} 21 11 000c 7f000001 7f000002 3039 01bb`);
    const result = expectDone(decodeProxyHeader(concat(bytes, ascii('* OK'))));
    expect(result.consumed).toBe(28);
    expect(result.header).toEqual({
      version: 2,
      command: 'proxy',
      family: 'IPv4',
      transport: 'stream',
      addresses: { family: 'IPv4', sourceAddress: '127.0.0.1', sourcePort: 12345, destinationAddress: '127.0.0.2', destinationPort: 443 },
      tlvs: [],
    });
  });

  it('decodes LOCAL (a health check): the real endpoints apply', () => {
    const result = expectDone(decodeProxyHeader(hex(`${SIG} 20 00 0000`)));
    expect(result.consumed).toBe(16);
    expect(result.header).toMatchObject({ version: 2, command: 'local', family: 'unspec', addresses: undefined });
    // LOCAL with an address block: the addresses are ignored.
    const withAddresses = expectDone(decodeProxyHeader(hex(`${SIG} 20 11 000c 7f000001 7f000002 3039 01bb`)));
    expect(withAddresses.header).toMatchObject({ command: 'local', family: 'IPv4', addresses: undefined });
  });

  it('decodes IPv6 and Unix addresses', () => {
    const v6 = expectDone(
      decodeProxyHeader(hex(`${SIG} 21 21 0024 20010db8000000000000000000000001 00000000000000000000ffff0a000001 0019 03e1`)),
    );
    expect(v6.header.addresses).toEqual({ family: 'IPv6', sourceAddress: '2001:db8::1', sourcePort: 25, destinationAddress: '::ffff:10.0.0.1', destinationPort: 993 });
    const unix = expectDone(decodeProxyHeader(encodeProxyHeaderV2({ addresses: { family: 'unix', sourcePath: '/run/a.sock', destinationPath: '/run/b' } })));
    expect(unix.header).toMatchObject({ family: 'unix', transport: 'stream', addresses: { family: 'unix', sourcePath: '/run/a.sock', destinationPath: '/run/b' } });
    expect(unix.consumed).toBe(16 + 216);
  });

  it('decodes every TLV kind, keeps unknown ones raw, and verifies the CRC32C', () => {
    const tlv = (type: number, value: Uint8Array | string): ProxyTlv => ({ type, value: typeof value === 'string' ? ascii(value) : value });
    const ssl = concat(
      hex('05 00000000'), // PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS, verify = 0
      hex('21 0007'),
      ascii('TLSv1.3'),
      hex('22 0007'), // 'Jürgen' is 7 bytes of UTF-8
      ascii('Jürgen'),
      hex('23 0016'),
      ascii('TLS_AES_128_GCM_SHA256'),
      hex('25 0007'),
      ascii('RSA2048'),
      hex('28 0003 308201'),
    );
    const bytes = encodeProxyHeaderV2({
      addresses: { family: 'IPv4', sourceAddress: '198.51.100.7', sourcePort: 40000, destinationAddress: '203.0.113.1', destinationPort: 465 },
      tlvs: [
        tlv(ProxyTlvType.ALPN, 'smtp'),
        tlv(ProxyTlvType.AUTHORITY, 'mail.example.org'),
        tlv(ProxyTlvType.UNIQUE_ID, hex('00112233')),
        tlv(ProxyTlvType.NOOP, new Uint8Array(3)),
        tlv(ProxyTlvType.SSL, ssl),
        tlv(ProxyTlvType.NETNS, 'blue'),
        tlv(0xe0, hex('cafe')),
      ],
      crc32c: true,
    });
    const { header, consumed } = expectDone(decodeProxyHeader(bytes));
    expect(consumed).toBe(bytes.length);
    expect(header.alpn).toBe('smtp');
    expect(header.authority).toBe('mail.example.org');
    expect(header.uniqueId).toEqual(hex('00112233'));
    expect(header.netns).toBe('blue');
    expect(header.crc32c).toBe(crc32c(concat(bytes.subarray(0, -4), new Uint8Array(4))));
    expect(header.ssl).toMatchObject({
      clientSsl: true,
      clientCertConnection: false,
      clientCertSession: true,
      verified: true,
      version: 'TLSv1.3',
      commonName: 'Jürgen',
      cipher: 'TLS_AES_128_GCM_SHA256',
      keyAlgorithm: 'RSA2048',
      clientCertificate: hex('308201'),
    });
    expect(header.ssl?.subTlvs).toHaveLength(5);
    expect(header.tlvs.map((t) => t.type)).toEqual([0x01, 0x02, 0x05, 0x04, 0x20, 0x30, 0xe0, 0x03]);
    expect(header.tlvs[6]!.value).toEqual(hex('cafe'));

    const corrupt = bytes.slice();
    corrupt[20] = corrupt[20]! ^ 1; // one bit of the source address
    expect(errorCode(decodeProxyHeader(corrupt))).toBe('ERR_PROXY_CHECKSUM');
  });

  it('computes CRC-32C (Castagnoli) per RFC 3720 §B.4', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
  });

  it.each([
    ['version 1', `${SIG} 11 11 000c`, 'ERR_PROXY_UNSUPPORTED'],
    ['version 3', `${SIG} 31`, 'ERR_PROXY_UNSUPPORTED'],
    ['command 2', `${SIG} 22`, 'ERR_PROXY_UNSUPPORTED'],
    ['family 4', `${SIG} 21 41`, 'ERR_PROXY_UNSUPPORTED'],
    ['transport 3', `${SIG} 21 13`, 'ERR_PROXY_UNSUPPORTED'],
    ['length shorter than the IPv4 block', `${SIG} 21 11 000b 7f000001 7f000002 3039 01`, 'ERR_PROXY_MALFORMED'],
    ['truncated TLV header', `${SIG} 21 11 000e 7f000001 7f000002 3039 01bb 0400`, 'ERR_PROXY_MALFORMED'],
    ['TLV past the end', `${SIG} 21 11 0010 7f000001 7f000002 3039 01bb 040002 00`, 'ERR_PROXY_MALFORMED'],
    ['CRC32C of 3 bytes', `${SIG} 21 00 0006 030003 000000`, 'ERR_PROXY_MALFORMED'],
    ['SSL TLV shorter than 5 bytes', `${SIG} 21 00 0007 200004 01000000`, 'ERR_PROXY_MALFORMED'],
    ['AUTHORITY not UTF-8', `${SIG} 21 00 0005 020002 c328`, 'ERR_PROXY_MALFORMED'],
    ['UNIQUE_ID over 128 bytes', `${SIG} 21 00 0084 050081 ${'00'.repeat(129)}`, 'ERR_PROXY_MALFORMED'],
    ['signature broken at byte 6', `0d0a0d0a000a`, 'ERR_PROXY_MISSING'],
  ])('refuses %s', (_name, bytes, code) => {
    expect(errorCode(decodeProxyHeader(hex(bytes)))).toBe(code);
  });

  it('refuses a length over maxV2HeaderBytes from the 16-byte prefix alone', () => {
    expect(errorCode(decodeProxyHeader(hex(`${SIG} 21 11 0ff1`)))).toBe('ERR_PROXY_TOO_LARGE'); // 16 + 4081 > 4096
    expect(decodeProxyHeader(hex(`${SIG} 21 11 0ff0`)).status).toBe('incomplete'); // 16 + 4080 = 4096
    expect(errorCode(decodeProxyHeader(hex(`${SIG} 21 11 000c`), { maxV2HeaderBytes: 27 }))).toBe('ERR_PROXY_TOO_LARGE');
    expect(errorCode(decodeProxyHeader(hex(`${SIG} 21 11 ffff`), { maxV2HeaderBytes: 16 + 65535 }))).toBeUndefined();
  });

  it('waits for the whole header', () => {
    const bytes = hex(`${SIG} 21 11 000c 7f000001 7f000002 3039 01bb`);
    for (let n = 0; n < bytes.length; n++) expect(decodeProxyHeader(bytes.subarray(0, n)).status).toBe('incomplete');
  });
});

describe('encoders', () => {
  it('write v1 lines', () => {
    expect(Buffer.from(encodeProxyHeaderV1()).toString()).toBe('PROXY UNKNOWN\r\n');
    const a = { family: 'IPv6', sourceAddress: '2001:DB8::0:1', sourcePort: 1, destinationAddress: '::1', destinationPort: 2 } as const;
    expect(Buffer.from(encodeProxyHeaderV1({ addresses: a })).toString()).toBe('PROXY TCP6 2001:db8::1 ::1 1 2\r\n');
  });

  it('refuse what cannot be sent', () => {
    const bad = (f: () => unknown): string | undefined => {
      try {
        f();
        return undefined;
      } catch (err) {
        return (err as ProxyProtocolError).code;
      }
    };
    expect(bad(() => encodeProxyHeaderV1({ addresses: { family: 'unix', sourcePath: '/a', destinationPath: '/b' } }))).toBe('ERR_PROXY_INVALID_ARGUMENT');
    expect(bad(() => encodeProxyHeaderV1({ addresses: { family: 'IPv4', sourceAddress: '1.2.3', sourcePort: 1, destinationAddress: '1.2.3.4', destinationPort: 2 } }))).toBe(
      'ERR_PROXY_INVALID_ARGUMENT',
    );
    expect(bad(() => encodeProxyHeaderV2({ addresses: { family: 'IPv4', sourceAddress: '1.2.3.4', sourcePort: 70000, destinationAddress: '1.2.3.4', destinationPort: 2 } }))).toBe(
      'ERR_PROXY_INVALID_ARGUMENT',
    );
    expect(bad(() => encodeProxyHeaderV2({ tlvs: [{ type: 0xe0, value: new Uint8Array(0x10000) }] }))).toBe('ERR_PROXY_INVALID_ARGUMENT');
  });
});

// ---------------------------------------------------------------------------
// Properties

const octet = fc.integer({ min: 0, max: 255 });
const ipv4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));
const ipv6 = fc
  .array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 })
  .chain((groups) => fc.constantFrom(...[0, 0xffff, 1]).map((fill) => groups.map((g, i) => (i > 1 && i < 5 ? fill & g : g))))
  .map((g) => g.map((n) => n.toString(16)).join(':'));
const port = fc.integer({ min: 0, max: 65535 });
const inetAddresses = fc.oneof(
  fc.record({ family: fc.constant('IPv4' as const), sourceAddress: ipv4, sourcePort: port, destinationAddress: ipv4, destinationPort: port }),
  fc.record({ family: fc.constant('IPv6' as const), sourceAddress: ipv6, sourcePort: port, destinationAddress: ipv6, destinationPort: port }),
);
const customTlv = fc.record({ type: fc.integer({ min: 0xe0, max: 0xef }), value: fc.uint8Array({ maxLength: 40 }) });
const v2Init: fc.Arbitrary<ProxyHeaderInit> = fc.record({
  command: fc.constantFrom('proxy' as const, 'local' as const),
  addresses: fc.option(inetAddresses, { nil: undefined }),
  tlvs: fc.array(customTlv, { maxLength: 4 }),
  crc32c: fc.boolean(),
});
const cuts = fc.array(fc.nat(), { maxLength: 8 });

/** Headers, valid and not, followed by application bytes. */
const streams = fc.oneof(
  fc.tuple(fc.option(inetAddresses, { nil: undefined }), fc.uint8Array({ maxLength: 20 })).map(([a, rest]) => concat(encodeProxyHeaderV1(a === undefined ? {} : { addresses: a }), rest)),
  fc.tuple(v2Init, fc.uint8Array({ maxLength: 20 })).map(([init, rest]) => concat(encodeProxyHeaderV2(init), rest)),
  // Damaged headers: one byte changed somewhere.
  fc.tuple(v2Init, fc.nat(), octet).map(([init, at, byte]) => {
    const bytes = encodeProxyHeaderV2(init);
    bytes[at % bytes.length] = byte;
    return bytes;
  }),
  fc.tuple(inetAddresses, fc.nat(), fc.integer({ min: 0x20, max: 0x7e })).map(([a, at, byte]) => {
    const bytes = encodeProxyHeaderV1({ addresses: a });
    bytes[at % bytes.length] = byte;
    return bytes;
  }),
  fc.uint8Array({ maxLength: 120 }).map((b) => concat(ascii('PROXY '), b)),
  fc.uint8Array({ maxLength: 120 }).map((b) => concat(PROXY_V2_SIGNATURE, b)),
);

describe('properties', () => {
  it('every chunking gives the same result as the whole input', () => {
    fc.assert(
      fc.property(streams, cuts, (bytes, at) => {
        expect(comparable(decodeInChunks(bytes, at))).toEqual(comparable(decodeProxyHeader(bytes)));
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes never throw, and done never consumes more than given', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), streams), (bytes) => {
        const result = decodeProxyHeader(bytes, { maxV2HeaderBytes: 200 });
        expect(['incomplete', 'done', 'error']).toContain(result.status);
        if (result.status === 'done') expect(result.consumed).toBeLessThanOrEqual(bytes.length);
      }),
      { numRuns: 500 },
    );
  });

  it('encode then decode gives the addresses back (v1 and v2)', () => {
    fc.assert(
      fc.property(v2Init, (init) => {
        const { header, consumed } = expectDone(decodeProxyHeader(encodeProxyHeaderV2(init)));
        expect(consumed).toBe(encodeProxyHeaderV2(init).length);
        expect(header.command).toBe(init.command);
        if (init.command === 'proxy' && init.addresses !== undefined) {
          const a = init.addresses as Extract<typeof init.addresses, { sourcePort: number }>;
          expect(header.addresses).toMatchObject({ family: a.family, sourcePort: a.sourcePort, destinationPort: a.destinationPort });
          const v1 = expectDone(decodeProxyHeader(encodeProxyHeaderV1({ addresses: a })));
          expect(v1.header.addresses).toEqual(header.addresses);
        } else {
          expect(header.addresses).toBeUndefined();
        }
        expect(header.tlvs.filter((t) => t.type !== ProxyTlvType.CRC32C)).toEqual(init.tlvs);
      }),
      { numRuns: 200 },
    );
  });
});
