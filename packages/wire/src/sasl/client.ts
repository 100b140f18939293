/**
 * The client side: `createSaslClient(mechanism, credentials)` gives one
 * exchange. Credentials are `Secret`s; nothing this module throws or logs
 * contains a password, token, proof or response.
 */
import type { SaslLimits } from '../limits.js';
import type { Secret } from '../secret.js';
import { decodeBase64Strict, encodeSaslMessage } from './base64.js';
import type { RandomBytes } from './bytes.js';
import { defaultRandomBytes } from './bytes.js';
import { saslError } from './errors.js';
import { resolveLimits, saslClientLimitKeys } from '../limits.js';
import type { ClientMechanism } from './mechanisms/common.js';
import { invalidCredentials, serverMisbehaved } from './mechanisms/common.js';
import { cramMd5Client } from './mechanisms/cram-md5.js';
import { externalClient } from './mechanisms/external.js';
import { loginClient } from './mechanisms/login.js';
import type { OAuthClient, OAuthErrorDetails } from './mechanisms/oauth.js';
import { oauthClient } from './mechanisms/oauth.js';
import { plainClient } from './mechanisms/plain.js';
import { scramClient } from './mechanisms/scram.js';
import type { ChannelBinding, SaslMechanismName } from './types.js';
import { saslMechanismNames } from './types.js';

export type { OAuthErrorDetails };

export interface SaslClientCredentials {
  /** Authentication identity (PLAIN, LOGIN, CRAM-MD5, SCRAM; the account for XOAUTH2 and OAUTHBEARER). */
  readonly username?: string;
  /** Authorization identity to act as, when different from `username` (PLAIN, SCRAM, OAUTHBEARER, EXTERNAL). */
  readonly authzid?: string;
  /** Password (PLAIN, LOGIN, SCRAM) or shared secret (CRAM-MD5). */
  readonly password?: Secret<string>;
  /** OAuth 2.0 access token (XOAUTH2, OAUTHBEARER). */
  readonly token?: Secret<string>;
  /** OAUTHBEARER `host` and `port` keys (RFC 7628 §3.1): the server the client connected to. */
  readonly host?: string;
  readonly port?: number;
  /**
   * TLS channel-binding data (required for SCRAM -PLUS). Given with a
   * non-PLUS SCRAM mechanism, it makes the client send the `y` flag — "I can
   * bind, and I believe you cannot" — so a server that did offer -PLUS
   * detects the downgrade (RFC 5802 §6).
   */
  readonly channelBinding?: ChannelBinding;
}

export interface SaslClientOptions {
  /** Random source for SCRAM nonces. Default `crypto.randomBytes`. */
  readonly randomBytes?: RandomBytes;
  readonly limits?: Partial<SaslLimits>;
  /** Length of the SCRAM client nonce, in characters. Default 24. */
  readonly scramNonceLength?: number;
  /** LOGIN: send the user name as the initial response (`AUTH LOGIN <user>`). Default false. */
  readonly loginInitialResponse?: boolean;
}

export interface SaslClientSession {
  readonly mechanism: SaslMechanismName;
  /**
   * The initial response to send with the command (SASL-IR, RFC 4959; SMTP
   * AUTH), or undefined for a server-first mechanism. If the protocol cannot
   * send it, skip this: the first `respond()` to the server's empty challenge
   * returns it.
   */
  initialResponse(): Uint8Array | undefined;
  /** `initialResponse()` encoded for the wire: base64, `=` for the empty response. */
  initialResponseEncoded(): string | undefined;
  /** The answer to a server challenge. */
  respond(challenge: Uint8Array): Promise<Uint8Array>;
  /** `respond()` for a challenge as sent on the wire (decoded strictly); the answer encoded for the wire. */
  respondEncoded(challenge: string): Promise<string>;
  /**
   * The server reported success (with its additional data, if any). Resolves
   * when the exchange is complete from the client's side; for SCRAM it
   * rejects with `ERR_SASL_SERVER_SIGNATURE` unless the server proved it
   * knows the credentials.
   */
  complete(successData?: Uint8Array): Promise<void>;
  /** The JSON error an OAuth server sent before failing (XOAUTH2, OAUTHBEARER). */
  readonly oauthError: OAuthErrorDetails | undefined;
}

function need<T>(value: T | undefined, mechanism: string, what: string): T {
  if (value === undefined) throw invalidCredentials(`${mechanism} needs ${what}`);
  return value;
}

export function createSaslClient(
  mechanism: SaslMechanismName,
  credentials: SaslClientCredentials,
  options: SaslClientOptions = {},
): SaslClientSession {
  if (!(saslMechanismNames as readonly string[]).includes(mechanism)) {
    throw saslError('ERR_SASL_MECHANISM_UNSUPPORTED', `unknown SASL mechanism ${String(mechanism)}`, { side: 'local', reply: false });
  }
  const limits = resolveLimits(saslClientLimitKeys, options.limits);
  const randomBytes = options.randomBytes ?? defaultRandomBytes;
  const username = (): string => need(credentials.username, mechanism, 'a username');
  const password = (): Secret<string> => need(credentials.password, mechanism, 'a password');
  const token = (): Secret<string> => need(credentials.token, mechanism, 'a token');
  const scram = (hash: 'SHA-1' | 'SHA-256', plus: boolean): ClientMechanism =>
    scramClient(
      {
        username: username(),
        password: password(),
        ...(credentials.authzid === undefined ? {} : { authzid: credentials.authzid }),
        ...(credentials.channelBinding === undefined ? {} : { channelBinding: credentials.channelBinding }),
      },
      {
        hash,
        plus,
        randomBytes,
        nonceLength: options.scramNonceLength ?? 24,
        minScramIterations: limits.minScramIterations,
        maxScramIterations: limits.maxScramIterations,
      },
    );
  const oauth = (variant: 'XOAUTH2' | 'OAUTHBEARER'): OAuthClient =>
    oauthClient(
      {
        token: token(),
        ...(credentials.username === undefined ? {} : { username: credentials.username }),
        ...(credentials.authzid === undefined ? {} : { authzid: credentials.authzid }),
        ...(credentials.host === undefined ? {} : { host: credentials.host }),
        ...(credentials.port === undefined ? {} : { port: credentials.port }),
      },
      variant,
    );

  let impl: ClientMechanism | OAuthClient;
  switch (mechanism) {
    case 'PLAIN':
      impl = plainClient({ username: username(), password: password(), ...(credentials.authzid === undefined ? {} : { authzid: credentials.authzid }) });
      break;
    case 'LOGIN':
      impl = loginClient({ username: username(), password: password() }, { initialResponse: options.loginInitialResponse === true });
      break;
    case 'CRAM-MD5':
      impl = cramMd5Client({ username: username(), password: password() });
      break;
    case 'SCRAM-SHA-1':
      impl = scram('SHA-1', false);
      break;
    case 'SCRAM-SHA-1-PLUS':
      impl = scram('SHA-1', true);
      break;
    case 'SCRAM-SHA-256':
      impl = scram('SHA-256', false);
      break;
    case 'SCRAM-SHA-256-PLUS':
      impl = scram('SHA-256', true);
      break;
    case 'XOAUTH2':
      impl = oauth('XOAUTH2');
      break;
    case 'OAUTHBEARER':
      impl = oauth('OAUTHBEARER');
      break;
    case 'EXTERNAL':
      impl = externalClient(credentials.authzid === undefined ? {} : { authzid: credentials.authzid });
      break;
  }

  const checkSize = (data: Uint8Array): void => {
    if (data.length > limits.maxSaslMessageBytes) {
      throw serverMisbehaved('ERR_SASL_MESSAGE_TOO_LARGE', `SASL challenge exceeds ${limits.maxSaslMessageBytes} bytes`);
    }
  };
  const decode = (text: string): Uint8Array => {
    // The server's empty challenge is "334 " / "+ " with nothing after it.
    if (text === '' || text === '=') return new Uint8Array(0);
    if (text.length > Math.ceil(limits.maxSaslMessageBytes / 3) * 4) {
      throw serverMisbehaved('ERR_SASL_MESSAGE_TOO_LARGE', `SASL challenge exceeds ${limits.maxSaslMessageBytes} bytes`);
    }
    const data = decodeBase64Strict(text);
    if (data === undefined) throw serverMisbehaved('ERR_SASL_MALFORMED', 'SASL challenge is not valid base64');
    return data;
  };

  const session: SaslClientSession = {
    mechanism,
    initialResponse: () => impl.initialResponse(),
    initialResponseEncoded: () => {
      const data = impl.initialResponse();
      return data === undefined ? undefined : encodeSaslMessage(data, { initial: true });
    },
    respond: async (challenge) => {
      checkSize(challenge);
      return await impl.respond(challenge);
    },
    respondEncoded: async (text) => encodeSaslMessage(await session.respond(decode(text))),
    complete: async (data) => {
      if (data !== undefined) checkSize(data);
      await impl.complete(data);
    },
    get oauthError() {
      return 'oauthError' in impl ? impl.oauthError() : undefined;
    },
  };
  return session;
}
