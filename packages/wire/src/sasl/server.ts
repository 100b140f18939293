/**
 * The server side: a registry of enabled mechanisms (`createSaslServer`) and
 * one session per AUTH/AUTHENTICATE command. A session is a state machine fed
 * the client's decoded messages; it returns the next step and does no I/O of
 * its own — credential checks go through the caller's `SaslBackend`.
 *
 *   new ──start()──▶ waiting ◀──step()── (challenge)
 *                      │ step()/cancel()
 *                      ▼
 *           [final-pending] ──step(empty)──▶ done (success | failure)
 */
import { channel } from 'node:diagnostics_channel';
import type { Clock } from '../clock.js';
import { channels } from '../diagnostics.js';
import { decodeSaslResponse, encodeSaslMessage } from './base64.js';
import type { RandomBytes } from './bytes.js';
import { defaultRandomBytes } from './bytes.js';
import { saslError } from './errors.js';
import type { SaslServerLimits } from '../limits.js';
import { resolveLimits, saslServerLimitKeys } from '../limits.js';
import type { MechanismStep, ServerMechanism, ServerMechanismContext } from './mechanisms/common.js';
import { cramMd5Server } from './mechanisms/cram-md5.js';
import { externalServer } from './mechanisms/external.js';
import { loginServer } from './mechanisms/login.js';
import { oauthServer } from './mechanisms/oauth.js';
import { plainServer } from './mechanisms/plain.js';
import { scramServer } from './mechanisms/scram.js';
import type { SaslBackend, SaslConnectionInfo, SaslIdentity, SaslMechanismName, SaslServerStep } from './types.js';
import { saslMechanismNames } from './types.js';

export interface SaslServerOptions {
  /** Mechanisms to enable, in the order to advertise them (strongest first). */
  readonly mechanisms: readonly SaslMechanismName[];
  readonly backend: SaslBackend;
  /**
   * Offer PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER on connections without TLS.
   * Default false: they send the password or token in the clear (RFC 4954
   * §4, RFC 7628 §5). Allow it only where the wire cannot be observed (tests on loopback).
   */
  readonly allowPlaintextWithoutTls?: boolean;
  /**
   * How SCRAM's server-final message is delivered. `'challenge'` (default):
   * as one more challenge, answered by an empty response, then success — what
   * SMTP AUTH (RFC 4954 §4), POP3 AUTH (RFC 5034) and IMAP4rev1 require.
   * `'inline'`: as `data` of the success step, for a protocol whose success
   * reply can carry "additional data with success" (RFC 4422 §5).
   */
  readonly successData?: 'challenge' | 'inline';
  /** Host name in the CRAM-MD5 challenge. Default 'localhost'. */
  readonly hostname?: string;
  /** Source of the CRAM-MD5 challenge timestamp; without it a random number stands in. */
  readonly clock?: Pick<Clock, 'now'>;
  /** Random source for nonces and challenges. Default `crypto.randomBytes`. */
  readonly randomBytes?: RandomBytes;
  readonly limits?: Partial<SaslServerLimits>;
  /** Length of the server's part of the SCRAM nonce, in characters. Default 24 (about 157 bits). */
  readonly scramNonceLength?: number;
  /** Iteration count announced for unknown users, so they look like known ones. Default 4096 (RFC 7677 §4). */
  readonly scramMockIterations?: number;
}

export interface SaslServerSession {
  readonly mechanism: string;
  /** `new` → `waiting` (a challenge is out) → `done`. */
  readonly state: 'new' | 'running' | 'waiting' | 'done';
  /** The authenticated identity, once the exchange succeeded. */
  readonly identity: SaslIdentity | undefined;
  /**
   * Begin the exchange. Pass the initial response when the client sent one
   * (SASL-IR, RFC 4959; SMTP `AUTH <mech> <ir>`): an empty Uint8Array for the
   * empty initial response `=`, `undefined` for none.
   */
  start(initialResponse?: Uint8Array): Promise<SaslServerStep>;
  /** Feed the client's decoded answer to the last challenge. */
  step(response: Uint8Array): Promise<SaslServerStep>;
  /** `start` with the initial response as sent on the wire (`=` empty, `*` cancel), decoded strictly. */
  startEncoded(initialResponse?: string): Promise<SaslServerStep>;
  /** `step` with the client's line as sent on the wire (base64, empty line, or `*` to cancel). */
  stepEncoded(line: string): Promise<SaslServerStep>;
  /** The client cancelled (`*`), or the protocol layer abandons the exchange: a failure step with `ERR_SASL_CANCELLED`. */
  cancel(): SaslServerStep;
}

export interface SaslServer {
  /** The enabled mechanisms, in preference order. */
  readonly mechanisms: readonly SaslMechanismName[];
  /** The mechanisms to advertise on this connection (EHLO `AUTH`, IMAP `AUTH=`, POP3 `SASL`). */
  advertise(connection: SaslConnectionInfo): SaslMechanismName[];
  /** A session for one exchange. An unknown or unavailable mechanism gives a session whose `start` fails (504 / 538). */
  createSession(mechanism: string, connection: SaslConnectionInfo): SaslServerSession;
}

/** Mechanisms that put a password or bearer token on the wire in the clear. */
const plaintextMechanisms: ReadonlySet<SaslMechanismName> = new Set(['PLAIN', 'LOGIN', 'XOAUTH2', 'OAUTHBEARER']);

const requiredBackend: Readonly<Record<SaslMechanismName, keyof SaslBackend>> = {
  PLAIN: 'verifyPassword',
  LOGIN: 'verifyPassword',
  'CRAM-MD5': 'getCramMd5Secret',
  'SCRAM-SHA-1': 'getScramCredentials',
  'SCRAM-SHA-1-PLUS': 'getScramCredentials',
  'SCRAM-SHA-256': 'getScramCredentials',
  'SCRAM-SHA-256-PLUS': 'getScramCredentials',
  XOAUTH2: 'verifyOAuthToken',
  OAUTHBEARER: 'verifyOAuthToken',
  EXTERNAL: 'authorize',
};

function isMechanismName(name: string): name is SaslMechanismName {
  return (saslMechanismNames as readonly string[]).includes(name);
}

function mechanismFor(name: SaslMechanismName, ctx: ServerMechanismContext): ServerMechanism {
  switch (name) {
    case 'PLAIN':
      return plainServer(ctx);
    case 'LOGIN':
      return loginServer(ctx);
    case 'CRAM-MD5':
      return cramMd5Server(ctx);
    case 'SCRAM-SHA-1':
      return scramServer(ctx, { hash: 'SHA-1', plus: false });
    case 'SCRAM-SHA-1-PLUS':
      return scramServer(ctx, { hash: 'SHA-1', plus: true });
    case 'SCRAM-SHA-256':
      return scramServer(ctx, { hash: 'SHA-256', plus: false });
    case 'SCRAM-SHA-256-PLUS':
      return scramServer(ctx, { hash: 'SHA-256', plus: true });
    case 'XOAUTH2':
      return oauthServer(ctx, 'XOAUTH2');
    case 'OAUTHBEARER':
      return oauthServer(ctx, 'OAUTHBEARER');
    case 'EXTERNAL':
      return externalServer(ctx);
  }
}

const saslChannel = channel(channels.sasl);

export function createSaslServer(options: SaslServerOptions): SaslServer {
  const { backend } = options;
  const enabled: SaslMechanismName[] = [];
  for (const name of options.mechanisms) {
    if (!isMechanismName(name)) {
      throw saslError('ERR_SASL_MECHANISM_UNSUPPORTED', `unknown SASL mechanism ${String(name)}`, { side: 'local', reply: false });
    }
    if (typeof backend[requiredBackend[name]] !== 'function') {
      throw saslError('ERR_SASL_MECHANISM_UNSUPPORTED', `${name} needs backend.${requiredBackend[name]}()`, { side: 'local', reply: false });
    }
    if (!enabled.includes(name)) enabled.push(name);
  }
  const limits = resolveLimits(saslServerLimitKeys, options.limits);
  const randomBytes = options.randomBytes ?? defaultRandomBytes;
  const allowPlaintext = options.allowPlaintextWithoutTls === true;
  const inlineSuccessData = options.successData === 'inline';
  // Drawn on first use, so an injected random source is consumed only by the exchanges themselves.
  let mockKey: Uint8Array | undefined;
  const scramMockKey = (): Uint8Array => (mockKey ??= randomBytes(32));

  const available = (name: SaslMechanismName, connection: SaslConnectionInfo): 'ok' | 'unsupported' | 'encryption-required' => {
    if (!enabled.includes(name)) return 'unsupported';
    if (name.endsWith('-PLUS') && (connection.channelBindings?.length ?? 0) === 0) return 'unsupported';
    if (name === 'EXTERNAL' && connection.external === undefined) return 'unsupported';
    if (plaintextMechanisms.has(name) && !connection.tls && !allowPlaintext) return 'encryption-required';
    return 'ok';
  };
  const advertise = (connection: SaslConnectionInfo): SaslMechanismName[] => enabled.filter((name) => available(name, connection) === 'ok');

  const createSession = (requested: string, connection: SaslConnectionInfo): SaslServerSession => {
    // RFC 4422 §3.1: mechanism names are case-insensitive on the wire.
    const name = requested.toUpperCase();
    const availability = isMechanismName(name) ? available(name, connection) : 'unsupported';
    let mechanism: ServerMechanism | undefined;
    if (isMechanismName(name) && availability === 'ok') {
      mechanism = mechanismFor(name, {
        mechanism: name,
        backend,
        connection,
        limits,
        randomBytes,
        hostname: options.hostname ?? 'localhost',
        clock: options.clock,
        advertisesPlus: advertise(connection).some((m) => m.endsWith('-PLUS')),
        scramNonceLength: options.scramNonceLength ?? 24,
        scramMockKey,
        scramMockIterations: options.scramMockIterations ?? 4096,
      });
    }
    return new Session(name, mechanism, availability, { backend, connection, limits, inlineSuccessData });
  };

  return { mechanisms: Object.freeze([...enabled]), advertise, createSession };
}

interface SessionEnv {
  readonly backend: SaslBackend;
  readonly connection: SaslConnectionInfo;
  readonly limits: SaslServerLimits;
  readonly inlineSuccessData: boolean;
}

class Session implements SaslServerSession {
  state: 'new' | 'running' | 'waiting' | 'done' = 'new';
  identity: SaslIdentity | undefined;
  /** Set while SCRAM's server-final went out as a challenge and the empty acknowledgement is due. */
  #pendingSuccess: SaslIdentity | undefined;

  constructor(
    readonly mechanism: string,
    private readonly impl: ServerMechanism | undefined,
    private readonly availability: 'ok' | 'unsupported' | 'encryption-required',
    private readonly env: SessionEnv,
  ) {}

  start(initialResponse?: Uint8Array): Promise<SaslServerStep> {
    const misuse = this.#misuse('new', 'start');
    if (misuse !== undefined) return misuse;
    const impl = this.impl;
    if (impl === undefined) {
      return Promise.resolve(
        this.availability === 'encryption-required'
          ? this.#fail('ERR_SASL_ENCRYPTION_REQUIRED', `${this.mechanism} requires TLS`)
          : this.#fail('ERR_SASL_MECHANISM_UNSUPPORTED', 'SASL mechanism not available'),
      );
    }
    if (initialResponse !== undefined && initialResponse.length > this.env.limits.maxSaslMessageBytes) {
      return Promise.resolve(this.#fail('ERR_SASL_MESSAGE_TOO_LARGE', `SASL message exceeds ${this.env.limits.maxSaslMessageBytes} bytes`));
    }
    return this.#run(() => impl.start(initialResponse));
  }

  step(response: Uint8Array): Promise<SaslServerStep> {
    const misuse = this.#misuse('waiting', 'step');
    if (misuse !== undefined) return misuse;
    if (response.length > this.env.limits.maxSaslMessageBytes) {
      return Promise.resolve(this.#fail('ERR_SASL_MESSAGE_TOO_LARGE', `SASL message exceeds ${this.env.limits.maxSaslMessageBytes} bytes`));
    }
    const pending = this.#pendingSuccess;
    if (pending !== undefined) {
      // RFC 4422 §5: the server-final data went out as a challenge; the only valid answer is empty.
      if (response.length !== 0) return Promise.resolve(this.#fail('ERR_SASL_MALFORMED', 'expected an empty response to the final challenge'));
      return Promise.resolve(this.#succeed(pending));
    }
    const impl = this.impl;
    if (impl === undefined) return Promise.resolve(this.#fail('ERR_SASL_MECHANISM_UNSUPPORTED', 'SASL mechanism not available'));
    return this.#run(() => impl.step(response));
  }

  startEncoded(initialResponse?: string): Promise<SaslServerStep> {
    if (initialResponse === undefined || this.impl === undefined || this.state !== 'new') return this.start();
    const decoded = decodeSaslResponse(initialResponse, { maxSaslMessageBytes: this.env.limits.maxSaslMessageBytes });
    if (decoded.type === 'cancel') return Promise.resolve(this.cancel());
    if (decoded.type === 'error') return Promise.resolve(this.#finish({ type: 'failure', error: decoded.error }));
    return this.start(decoded.data);
  }

  stepEncoded(line: string): Promise<SaslServerStep> {
    const misuse = this.#misuse('waiting', 'step');
    if (misuse !== undefined) return misuse;
    const decoded = decodeSaslResponse(line, { maxSaslMessageBytes: this.env.limits.maxSaslMessageBytes });
    if (decoded.type === 'cancel') return Promise.resolve(this.cancel());
    if (decoded.type === 'error') return Promise.resolve(this.#finish({ type: 'failure', error: decoded.error }));
    return this.step(decoded.data);
  }

  cancel(): SaslServerStep {
    if (this.state === 'done' || this.state === 'running') {
      throw saslError('ERR_SASL_BAD_STATE', `cannot cancel a SASL session in state ${this.state}`, { reply: false });
    }
    return this.#fail('ERR_SASL_CANCELLED', 'SASL exchange cancelled by the client');
  }

  /** A rejected promise when the protocol layer calls `method` in the wrong state (a local bug, not the peer's). */
  #misuse(state: 'new' | 'waiting', method: string): Promise<never> | undefined {
    if (this.state === state) return undefined;
    return Promise.reject(saslError('ERR_SASL_BAD_STATE', `SASL session ${method}() called in state ${this.state}`, { reply: false }));
  }

  async #run(call: () => Promise<MechanismStep>): Promise<SaslServerStep> {
    this.state = 'running';
    let result: MechanismStep;
    try {
      result = await call();
    } catch (cause) {
      // A bug in a mechanism must not take the connection (or the process) with it.
      return this.#finish({ type: 'failure', error: saslError('ERR_SASL_TEMPORARY_FAILURE', 'SASL mechanism failed', { side: 'local', cause }) });
    }
    if (result.type === 'challenge') {
      this.state = 'waiting';
      return { type: 'challenge', data: result.data, encoded: encodeSaslMessage(result.data) };
    }
    if (result.type === 'failure') return this.#finish(result);
    return this.#authorized(result);
  }

  async #authorized(result: Extract<MechanismStep, { type: 'success' }>): Promise<SaslServerStep> {
    const name = this.mechanism as SaslMechanismName;
    const identity: SaslIdentity = { mechanism: name, authcid: result.authcid, authzid: result.authzid === '' ? result.authcid : result.authzid };
    // RFC 4422 §3.4.1: acting as another identity needs the server's permission; EXTERNAL always asks (the certificate names a subject, not a user).
    if (name === 'EXTERNAL' || identity.authzid !== identity.authcid) {
      const { backend, connection } = this.env;
      let allowed: boolean;
      try {
        const external = name === 'EXTERNAL' ? connection.external : undefined;
        allowed =
          (await backend.authorize?.({
            mechanism: name,
            authcid: identity.authcid,
            authzid: identity.authzid,
            ...(external === undefined ? {} : { external }),
            connection,
          })) === true;
      } catch (cause) {
        return this.#finish({ type: 'failure', error: saslError('ERR_SASL_TEMPORARY_FAILURE', 'SASL backend failed', { cause }) });
      }
      if (!allowed) return this.#fail('ERR_SASL_AUTHZ_FAILED', 'authorization identity refused');
    }
    if (result.data !== undefined && !this.env.inlineSuccessData) {
      this.#pendingSuccess = identity;
      this.state = 'waiting';
      return { type: 'challenge', data: result.data, encoded: encodeSaslMessage(result.data) };
    }
    return this.#succeed(identity, result.data);
  }

  #succeed(identity: SaslIdentity, data?: Uint8Array): SaslServerStep {
    this.#pendingSuccess = undefined;
    this.identity = identity;
    return this.#finish(data === undefined ? { type: 'success', identity } : { type: 'success', identity, data });
  }

  #fail(code: Parameters<typeof saslError>[0], message: string): SaslServerStep {
    return this.#finish({ type: 'failure', error: saslError(code, message) });
  }

  #finish(step: SaslServerStep): SaslServerStep {
    this.state = 'done';
    if (saslChannel.hasSubscribers) {
      // Credentials are never published: the identity and the error code only.
      saslChannel.publish(
        step.type === 'success'
          ? { mechanism: this.mechanism, ok: true, identity: step.identity }
          : { mechanism: this.mechanism, ok: false, code: step.type === 'failure' ? step.error.code : undefined },
      );
    }
    return step;
  }
}

