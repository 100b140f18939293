import { describe, expect, it } from 'vitest';
import { saslprep } from '../../src/sasl/index.js';

describe('saslprep (RFC 4013)', () => {
  // RFC 4013 §3 examples.
  it.each([
    ['I\u00ADX', 'IX', 'SOFT HYPHEN mapped to nothing'],
    ['user', 'user', 'no transformation'],
    ['USER', 'USER', 'case preserved'],
    ['\u00AA', 'a', 'output is NFKC, input in ISO 8859-1'],
    ['\u2168', 'IX', 'output is NFKC, will match 1st example'],
    ['a\u00A0b', 'a b', 'non-ASCII space mapped to SPACE'],
  ])('%j → %j (%s)', (input, output) => {
    expect(saslprep(input)).toEqual({ ok: true, value: output });
  });

  it.each([
    ['\u0007', 'Error - prohibited character (RFC 4013 §3)'],
    ['\u0627\u0031', 'Error - bidirectional check (RFC 4013 §3)'],
    ['a\uE000', 'private use'],
    ['a\uFFFE', 'non-character'],
    ['a\uD800', 'lone surrogate'],
    ['a\u200Eb', 'LEFT-TO-RIGHT MARK'],
    ['\u{E0001}', 'language tag'],
    ['\u05D0a\u05D0', 'mixed right-to-left and left-to-right letters'],
  ])('refuses %j (%s)', (input) => {
    expect(saslprep(input).ok).toBe(false);
  });

  it('accepts right-to-left text that starts and ends right-to-left', () => {
    expect(saslprep('\u05D0\u05D1').ok).toBe(true);
    expect(saslprep('\u0627\u0031\u0628').ok).toBe(true);
  });

  it('never puts the input in the reason', () => {
    const result = saslprep('secret\u0007password');
    expect(result.ok === false && result.reason).not.toMatch(/secret|password/);
  });
});
