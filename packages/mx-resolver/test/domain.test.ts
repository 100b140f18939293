import { describe, expect, it } from 'vitest';
import { addressScope, normalizeDestination, normalizeHostname } from '../src/index.js';

describe('normalizeDestination', () => {
  it('lower-cases, strips the root dot and converts IDNs to A-labels', () => {
    expect(normalizeDestination('Example.COM.')).toEqual({ kind: 'domain', name: 'example.com' });
    expect(normalizeDestination('bücher.de')).toEqual({ kind: 'domain', name: 'xn--bcher-kva.de' });
    expect(normalizeDestination('例え.テスト')).toEqual({ kind: 'domain', name: 'xn--r8jz45g.xn--zckzah' });
    // UTS #46 mapping: full-width letters and the ideographic full stop.
    expect(normalizeDestination('ｅｘａｍｐｌｅ。com')).toEqual({ kind: 'domain', name: 'example.com' });
  });

  it('accepts address literals', () => {
    expect(normalizeDestination('[192.0.2.1]')).toEqual({ kind: 'literal', address: '192.0.2.1', family: 4 });
    expect(normalizeDestination('[IPv6:2001:db8::1]')).toEqual({ kind: 'literal', address: '2001:db8::1', family: 6 });
    expect(normalizeDestination('[2001:db8::1]')).toBeUndefined();
    expect(normalizeDestination('[IPv6:192.0.2.1]')).toBeUndefined();
  });

  it('refuses what is not a mail domain', () => {
    for (const bad of ['', '.', 'com', 'a..b', 'a.-b.c', 'a.b-.c', 'a b.c', 'a\0.c', 'x_y.com', `${'a'.repeat(64)}.com`, `${'a.'.repeat(127)}com`, '10.0.0.1', 'a.123', 'xn--.com']) {
      expect(normalizeDestination(bad), JSON.stringify(bad)).toBeUndefined();
    }
    expect(normalizeHostname('mx.example.com.')).toBe('mx.example.com');
    expect(normalizeHostname('[127.0.0.1]')).toBeUndefined();
  });
});

describe('addressScope', () => {
  it('classifies IPv4 and IPv6 special-purpose ranges', () => {
    const cases: [string, ReturnType<typeof addressScope>][] = [
      ['8.8.8.8', 'public'],
      ['127.0.0.2', 'loopback'],
      ['::1', 'loopback'],
      ['10.1.2.3', 'private'],
      ['172.16.0.1', 'private'],
      ['172.32.0.1', 'public'],
      ['192.168.10.10', 'private'],
      ['100.64.0.1', 'private'],
      ['fd00::1', 'private'],
      ['169.254.1.1', 'link-local'],
      ['fe80::1', 'link-local'],
      ['0.0.0.0', 'reserved'],
      ['192.0.2.5', 'reserved'],
      ['224.0.0.1', 'reserved'],
      ['255.255.255.255', 'reserved'],
      ['2001:db8::5', 'reserved'],
      ['ff02::1', 'reserved'],
      ['::', 'reserved'],
      ['2a00:1450:4001::1', 'public'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:c0a8:0101', 'private'],
      ['::ffff:8.8.8.8', 'public'],
    ];
    for (const [address, scope] of cases) expect(addressScope(address), address).toBe(scope);
    expect(() => addressScope('example.com')).toThrow(TypeError);
  });
});
