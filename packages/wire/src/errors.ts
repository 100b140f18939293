/**
 * The one error hierarchy of Pigeonpost.
 *
 * Every error carries a stable `code` (documented in the package README), the
 * side that broke the protocol, and — where the error is something to tell the
 * peer — the reply each protocol would send. Brands are `Symbol.for` keys, so
 * `FramingError.isInstance(err)` still works when two copies of this package
 * are loaded (a CJS and an ESM copy, or two versions in one tree), where
 * `instanceof` would not.
 */

/** Which end of the conversation broke the protocol. */
export type ProtocolSide =
  /** Our own code asked for something the protocol does not allow (a bug, or bad arguments). */
  | 'local'
  /** The peer sent something the protocol does not allow. */
  | 'remote'
  /** Neither: an environment failure (I/O, configuration, timeout). */
  | 'none';

/** What each protocol would answer for this error. Every field is optional: wire does not know which protocol it serves. */
export interface ProtocolReply {
  /** SMTP reply code and RFC 3463 enhanced status code, e.g. `{ code: 500, enhanced: '5.5.2' }`. */
  readonly smtp?: { readonly code: number; readonly enhanced?: string };
  /** IMAP tagged/untagged status and optional response code, e.g. `{ status: 'BAD', code: 'TOOBIG' }`. */
  readonly imap?: { readonly status: 'NO' | 'BAD' | 'BYE'; readonly code?: string };
  /** POP3 `-ERR` with an optional RFC 2449 extended response code, e.g. `{ code: 'IN-USE' }`. */
  readonly pop3?: { readonly code?: string };
  /** Human-readable text for the reply line. Never contains CR or LF. */
  readonly text: string;
}

export interface PigeonpostErrorOptions {
  readonly side?: ProtocolSide;
  readonly reply?: ProtocolReply;
  readonly cause?: unknown;
}

const kBrands = Symbol.for('@pigeonpost/error.brands');

type ErrorClass = { readonly brand: symbol };

export class PigeonpostError extends Error {
  static readonly brand: symbol = Symbol.for('@pigeonpost/PigeonpostError');

  /** Stable, documented code such as `ERR_LINE_TOO_LONG`. Match on this, never on `message`. */
  readonly code: string;
  /** Which side broke the protocol. */
  readonly side: ProtocolSide;
  /** The reply to send to the peer, when there is one. */
  readonly reply: ProtocolReply | undefined;

  declare readonly [kBrands]: readonly symbol[];

  constructor(code: string, message: string, options: PigeonpostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.side = options.side ?? 'none';
    this.reply = options.reply;
    // Collect the brand of every class from new.target up to this one, so a
    // subclass instance answers isInstance() for each of its ancestors.
    const brands: symbol[] = [];
    for (let ctor: unknown = new.target; typeof ctor === 'function' && ctor !== Error; ctor = Object.getPrototypeOf(ctor)) {
      const brand = (ctor as Partial<ErrorClass>).brand;
      if (typeof brand === 'symbol' && !brands.includes(brand)) brands.push(brand);
    }
    Object.defineProperty(this, kBrands, { value: Object.freeze(brands), enumerable: false });
    Object.defineProperty(this, 'name', { value: new.target.name, enumerable: false, configurable: true, writable: true });
  }

  /**
   * True when `value` is an instance of this class (or a subclass), also across
   * copies of the package. Call it on the class you want: `SaslError.isInstance(e)`.
   */
  static isInstance<T extends abstract new (...args: never[]) => PigeonpostError>(
    this: T & ErrorClass,
    value: unknown,
  ): value is InstanceType<T> {
    if (typeof value !== 'object' || value === null) return false;
    const brands = (value as { [kBrands]?: unknown })[kBrands];
    return Array.isArray(brands) && brands.includes(this.brand);
  }
}

/** Framing failures: over-long lines, oversized DATA bodies or literals. */
export class FramingError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/FramingError');
}

/** TLS set-up and STARTTLS failures. */
export class TlsError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/TlsError');
}

/** SASL authentication failures (bad credentials, malformed exchanges, aborted by the client). */
export class SaslError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/SaslError');
}

/** PROXY protocol v1/v2 header failures. */
export class ProxyProtocolError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/ProxyProtocolError');
}

/** Listener runtime failures: limits reached, listening errors, shutdown. */
export class ListenerError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/ListenerError');
}

/** Development certificate generation and loading failures. */
export class CertificateError extends PigeonpostError {
  static override readonly brand: symbol = Symbol.for('@pigeonpost/CertificateError');
}
