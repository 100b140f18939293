import { inspect } from 'node:util';

const kValue = Symbol('@pigeonpost/Secret.value');
const kBrand = Symbol.for('@pigeonpost/Secret');
const REDACTED = '[REDACTED]';

/**
 * A value that must never reach a log: passwords, tokens, SASL responses.
 * `String(secret)`, `JSON.stringify(secret)` and `util.inspect(secret)` all
 * print `[REDACTED]`; only `expose()` returns the value, so every place that
 * reads it is easy to find.
 */
export class Secret<T = string> {
  declare readonly [kValue]: T;

  constructor(value: T) {
    Object.defineProperty(this, kValue, { value, enumerable: false });
    Object.defineProperty(this, kBrand, { value: true, enumerable: false });
    Object.freeze(this);
  }

  static isInstance(value: unknown): value is Secret<unknown> {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kBrand] === true;
  }

  /** Wrap `value`, or return it unchanged when it already is a Secret. */
  static from<T>(value: T | Secret<T>): Secret<T> {
    return Secret.isInstance(value) ? value : new Secret(value);
  }

  /** The wrapped value. Name every call site for what it does with it. */
  expose(): T {
    return this[kValue];
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `Secret(${REDACTED})`;
  }

  get [Symbol.toStringTag](): string {
    return 'Secret';
  }
}
