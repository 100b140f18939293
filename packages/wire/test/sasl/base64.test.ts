import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBase64Strict, decodeSaslResponse, encodeBase64, encodeSaslMessage } from '../../src/sasl/index.js';

describe('strict base64', () => {
  it('round-trips any bytes: decode(encode(x)) = x', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (data) => {
        expect(decodeBase64Strict(encodeBase64(data))).toEqual(data);
      }),
      { numRuns: 300 },
    );
  });

  it('accepts only the canonical encoding: encode(decode(s)) = s', () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \n-_*.'), maxLength: 40 }), (s) => {
        const decoded = decodeBase64Strict(s);
        if (decoded !== undefined) expect(encodeBase64(decoded)).toBe(s);
      }),
      { numRuns: 500 },
    );
  });

  it.each([
    ['whitespace inside', 'QUJD REVG'],
    ['trailing newline', 'QUJD\n'],
    ['missing padding', 'QQ'],
    ['too much padding', 'QQ==='],
    ['padding in the middle', 'QQ==QUJD'],
    ['URL-safe alphabet', 'a-_b'],
    ['non-zero pad bits', 'QR=='],
    ['non-zero pad bits (one =)', 'QUJ='],
    ['garbage', '!!!!'],
    ['lone padding', '===='],
  ])('rejects %s', (_name, input) => {
    expect(decodeBase64Strict(input)).toBeUndefined();
  });

  it('Node alone would accept the garbage we refuse', () => {
    expect(Buffer.from('QUJD REVG', 'base64').toString()).toBe('ABCDEF');
    expect(decodeBase64Strict('QUJDREVG')).toEqual(new Uint8Array(Buffer.from('ABCDEF')));
  });
});

describe('SASL response lines', () => {
  it('recognises cancel, the empty response and data', () => {
    expect(decodeSaslResponse('*')).toEqual({ type: 'cancel' });
    expect(decodeSaslResponse('=')).toEqual({ type: 'response', data: new Uint8Array(0) });
    expect(decodeSaslResponse('')).toEqual({ type: 'response', data: new Uint8Array(0) });
    expect(decodeSaslResponse('AHRpbQB0YW5zdGFhZnRhbnN0YWFm')).toEqual({ type: 'response', data: new Uint8Array(Buffer.from('\0tim\0tanstaaftanstaaf')) });
  });

  it('reports malformed base64 as ERR_SASL_MALFORMED with 501 5.5.2', () => {
    const result = decodeSaslResponse('not base64!');
    expect(result.type).toBe('error');
    if (result.type !== 'error') return;
    expect(result.error.code).toBe('ERR_SASL_MALFORMED');
    expect(result.error.side).toBe('remote');
    expect(result.error.reply?.smtp).toEqual({ code: 501, enhanced: '5.5.2' });
    expect(result.error.reply?.imap?.status).toBe('BAD');
  });

  it('refuses an oversized line before decoding it', () => {
    const line = encodeBase64(new Uint8Array(101));
    const result = decodeSaslResponse(line, { maxSaslMessageBytes: 100 });
    expect(result.type === 'error' && result.error.code).toBe('ERR_SASL_MESSAGE_TOO_LARGE');
    expect(decodeSaslResponse(encodeBase64(new Uint8Array(100)), { maxSaslMessageBytes: 100 }).type).toBe('response');
    const huge = decodeSaslResponse('A'.repeat(10_000_000));
    expect(huge.type === 'error' && huge.error.code).toBe('ERR_SASL_MESSAGE_TOO_LARGE');
  });

  it('encodes the empty initial response as = and an empty continuation as nothing', () => {
    expect(encodeSaslMessage(new Uint8Array(0), { initial: true })).toBe('=');
    expect(encodeSaslMessage(new Uint8Array(0))).toBe('');
    expect(encodeSaslMessage(new Uint8Array([1]))).toBe('AQ==');
  });
});
