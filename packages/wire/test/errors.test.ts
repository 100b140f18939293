import { describe, expect, it } from 'vitest';
import { inspect } from 'node:util';
import { FramingError, PigeonpostError, SaslError, Secret } from '../src/index.js';

describe('PigeonpostError', () => {
  it('carries code, side and reply, and brands every ancestor', () => {
    const err = new FramingError('ERR_LINE_TOO_LONG', 'line too long', {
      side: 'remote',
      reply: { smtp: { code: 500, enhanced: '5.5.2' }, text: 'Line too long' },
    });
    expect(err.code).toBe('ERR_LINE_TOO_LONG');
    expect(err.side).toBe('remote');
    expect(err.reply?.smtp?.code).toBe(500);
    expect(err.name).toBe('FramingError');
    expect(FramingError.isInstance(err)).toBe(true);
    expect(PigeonpostError.isInstance(err)).toBe(true);
    expect(SaslError.isInstance(err)).toBe(false);
    expect(PigeonpostError.isInstance(new Error('x'))).toBe(false);
    expect(PigeonpostError.isInstance(null)).toBe(false);
  });

  it('isInstance works across copies of the class (Symbol.for brand)', () => {
    const err = new SaslError('ERR_SASL_AUTH_FAILED', 'nope');
    // A plain object carrying the same global brands stands in for an error made by another copy of the package.
    const foreign = Object.create(null) as Record<symbol, unknown>;
    for (const sym of Object.getOwnPropertySymbols(err)) foreign[sym] = (err as unknown as Record<symbol, unknown>)[sym];
    expect(SaslError.isInstance(foreign)).toBe(true);
    expect(err.side).toBe('none');
  });
});

describe('Secret', () => {
  it('redacts itself in String, JSON and inspect, and exposes on request', () => {
    const s = new Secret('hunter2');
    expect(String(s)).toBe('[REDACTED]');
    expect(JSON.stringify({ password: s })).toBe('{"password":"[REDACTED]"}');
    expect(inspect({ s })).not.toContain('hunter2');
    // eslint-disable-next-line @typescript-eslint/restrict-template-expressions -- the point is what a careless template prints
    expect(`${s}`).toBe('[REDACTED]');
    expect(s.expose()).toBe('hunter2');
    expect(Secret.from(s)).toBe(s);
    expect(Secret.isInstance(s)).toBe(true);
    expect(Object.keys(s)).toEqual([]);
  });
});
