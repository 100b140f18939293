/** The internal shape of one mechanism, server side and client side, and helpers they share. */
import type { SaslError } from '../../errors.js';
import type { Clock } from '../../clock.js';
import type { RandomBytes } from '../bytes.js';
import type { SaslErrorCode } from '../errors.js';
import { saslError } from '../errors.js';
import type { SaslServerLimits } from '../../limits.js';
import type { SaslBackend, SaslConnectionInfo, SaslMechanismName } from '../types.js';

export type MechanismStep =
  | { readonly type: 'challenge'; readonly data: Uint8Array }
  /** `authzid` is '' when the client did not ask for one. */
  | { readonly type: 'success'; readonly authcid: string; readonly authzid: string; readonly data?: Uint8Array }
  | { readonly type: 'failure'; readonly error: SaslError };

/** One server-side exchange. The session wrapper enforces state, sizes, authorization and cancel. */
export interface ServerMechanism {
  /** `initialResponse` is undefined when the client sent none (as opposed to an empty one). */
  start(initialResponse: Uint8Array | undefined): Promise<MechanismStep>;
  step(response: Uint8Array): Promise<MechanismStep>;
}

export interface ServerMechanismContext {
  readonly mechanism: SaslMechanismName;
  readonly backend: SaslBackend;
  readonly connection: SaslConnectionInfo;
  readonly limits: SaslServerLimits;
  readonly randomBytes: RandomBytes;
  /** For the CRAM-MD5 challenge. */
  readonly hostname: string;
  readonly clock: Pick<Clock, 'now'> | undefined;
  /** True when this connection is offered a SCRAM -PLUS mechanism (to detect the `y` downgrade). */
  readonly advertisesPlus: boolean;
  readonly scramNonceLength: number;
  /** Per-server random key that derives stable fake SCRAM salts for unknown users. */
  readonly scramMockKey: () => Uint8Array;
  readonly scramMockIterations: number;
}

/** One client-side exchange. */
export interface ClientMechanism {
  /** The initial response, or undefined for a server-first mechanism. */
  initialResponse(): Uint8Array | undefined;
  respond(challenge: Uint8Array): Promise<Uint8Array>;
  /** The server reported success, with optional additional data. Throws when the server is not authenticated. */
  complete(data: Uint8Array | undefined): Promise<void>;
}

export const empty: Uint8Array = new Uint8Array(0);

export function fail(code: SaslErrorCode, message: string): MechanismStep {
  return { type: 'failure', error: saslError(code, message) };
}

export function challenge(data: Uint8Array): MechanismStep {
  return { type: 'challenge', data };
}

/**
 * Call the backend; a throw becomes a temporary failure (454 4.7.0 in SMTP)
 * whose `cause` keeps the backend's error for the caller's logs.
 */
export async function callBackend<T>(call: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; step: MechanismStep }> {
  try {
    return { ok: true, value: await call() };
  } catch (cause) {
    return { ok: false, step: { type: 'failure', error: saslError('ERR_SASL_TEMPORARY_FAILURE', 'SASL backend failed', { cause }) } };
  }
}

/** UTF-8 byte length of a string (for identity limits). */
export function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** A client-side error about the caller's own credentials. */
export function invalidCredentials(message: string): SaslError {
  return saslError('ERR_SASL_INVALID_CREDENTIALS', message, { reply: false });
}

/** A client-side error about what the server sent. */
export function serverMisbehaved(code: SaslErrorCode, message: string): SaslError {
  return saslError(code, message, { side: 'remote', reply: false });
}
