/**
 * OAuth 2.0 bearer tokens: OAUTHBEARER (RFC 7628) and Google's XOAUTH2
 * (developers.google.com/gmail/imap/xoauth2-protocol). Both are client-first
 * with one message; on a bad token the server sends a JSON error as a
 * challenge, the client answers with a dummy response (`\x01` for
 * OAUTHBEARER, RFC 7628 §3.2.3; empty for XOAUTH2), and the server fails.
 */
import type { Secret } from '../../secret.js';
import { Secret as SecretClass } from '../../secret.js';
import { decodeUtf8, encodeUtf8, utf8 } from '../bytes.js';
import type { OAuthVerification } from '../types.js';
import type { ClientMechanism, MechanismStep, ServerMechanism, ServerMechanismContext } from './common.js';
import { callBackend, challenge, empty, fail, invalidCredentials, serverMisbehaved } from './common.js';
import { escapeSaslname, unescapeSaslname } from './scram.js';

/** RFC 6750 §2.1 b64token. */
const b64token = /^[A-Za-z0-9\-._~+/]+=*$/;
/** RFC 7628 §3.1: key = 1*(ALPHA); value = *(VCHAR / SP / HTAB / CR / LF). */
const kvpair = /^([A-Za-z]+)=([\x21-\x7e \t\r\n]*)$/;

/** The error a server sent in its JSON challenge (RFC 7628 §3.2.2). */
export interface OAuthErrorDetails {
  readonly status?: string;
  readonly scope?: string;
  readonly schemes?: string;
  readonly openidConfiguration?: string;
}

type Variant = 'OAUTHBEARER' | 'XOAUTH2';

interface ParsedRequest {
  readonly authzid: string;
  readonly user: string | undefined;
  readonly token: string;
  readonly host?: string;
  readonly port?: number;
}

/** Parse the key/value pairs between \x01 separators; `text` must end with \x01\x01. */
function keyValues(text: string): Map<string, string> | undefined {
  if (!text.endsWith('\x01\x01')) return undefined;
  const pairs = new Map<string, string>();
  for (const item of text.slice(0, -2).split('\x01')) {
    const match = kvpair.exec(item);
    if (match === null || pairs.has(match[1] ?? '')) return undefined;
    pairs.set(match[1] ?? '', match[2] ?? '');
  }
  return pairs;
}

function bearer(auth: string | undefined): string | undefined {
  // RFC 6750 §2.1: "Bearer" 1*SP b64token; the scheme name is case-insensitive (RFC 7235 §2.1).
  const match = auth === undefined ? null : /^bearer +(\S+)$/i.exec(auth);
  const token = match?.[1];
  return token !== undefined && b64token.test(token) ? token : undefined;
}

function parseOAuthBearer(text: string): ParsedRequest | undefined {
  // RFC 7628 §3.1: gs2-header kvsep *kvpair kvsep. Channel binding is not defined for OAUTHBEARER: only n and y.
  // eslint-disable-next-line no-control-regex -- %x01 is RFC 7628's kvsep
  const gs2 = /^([ny]),(a=[^,\x01]*)?,\x01/.exec(text);
  if (gs2 === null) return undefined;
  const authzid = gs2[2] === undefined ? '' : unescapeSaslname(gs2[2].slice(2));
  if (authzid === undefined) return undefined;
  const pairs = keyValues(text.slice(gs2[0].length));
  if (pairs === undefined) return undefined;
  const token = bearer(pairs.get('auth'));
  if (token === undefined) return undefined;
  const portText = pairs.get('port');
  if (portText !== undefined && !/^[0-9]{1,5}$/.test(portText)) return undefined;
  const host = pairs.get('host');
  return {
    authzid,
    user: authzid === '' ? undefined : authzid,
    token,
    ...(host === undefined ? {} : { host }),
    ...(portText === undefined ? {} : { port: Number(portText) }),
  };
}

function parseXOAuth2(text: string): ParsedRequest | undefined {
  const pairs = keyValues(text);
  const user = pairs?.get('user');
  const token = bearer(pairs?.get('auth'));
  if (pairs === undefined || user === undefined || user === '' || token === undefined) return undefined;
  return { authzid: '', user, token };
}

function errorJson(variant: Variant, result: Extract<OAuthVerification, { ok: false }>): string {
  if (variant === 'XOAUTH2') {
    // Google's format: {"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}.
    return JSON.stringify({ status: result.status ?? '401', schemes: 'bearer', ...(result.scope === undefined ? {} : { scope: result.scope }) });
  }
  // RFC 7628 §3.2.2: status is required; scope and openid-configuration optional. Key order as in §4.3.
  return JSON.stringify({
    status: result.status ?? 'invalid_token',
    ...(result.scope === undefined ? {} : { scope: result.scope }),
    ...(result.openidConfiguration === undefined ? {} : { 'openid-configuration': result.openidConfiguration }),
  });
}

export function oauthServer(ctx: ServerMechanismContext, variant: Variant): ServerMechanism {
  let state: 'first' | 'error-sent' | 'done' = 'first';
  const first = async (message: Uint8Array): Promise<MechanismStep> => {
    state = 'done';
    const text = decodeUtf8(message);
    const request = text === undefined ? undefined : variant === 'OAUTHBEARER' ? parseOAuthBearer(text) : parseXOAuth2(text);
    if (request === undefined) return fail('ERR_SASL_MALFORMED', `${variant} message is malformed`);
    if (request.user !== undefined && Buffer.byteLength(request.user) > ctx.limits.maxSaslIdentityBytes) {
      return fail('ERR_SASL_MESSAGE_TOO_LARGE', `${variant} user exceeds ${ctx.limits.maxSaslIdentityBytes} bytes`);
    }
    const call = {
      mechanism: ctx.mechanism,
      user: request.user,
      token: new SecretClass(request.token),
      ...(request.host === undefined ? {} : { host: request.host }),
      ...(request.port === undefined ? {} : { port: request.port }),
      connection: ctx.connection,
    };
    const result = await callBackend(async () => (await ctx.backend.verifyOAuthToken?.(call)) ?? ({ ok: false } as const));
    if (!result.ok) return result.step;
    const verdict = result.value;
    if (!verdict.ok) {
      state = 'error-sent';
      return challenge(utf8(errorJson(variant, verdict)));
    }
    const authcid = verdict.authcid ?? request.user;
    if (authcid === undefined || authcid === '') return fail('ERR_SASL_AUTH_FAILED', `${variant} token names no user`);
    // XOAUTH2's user= is the account the token is for, not a separate authorization identity.
    return { type: 'success', authcid, authzid: variant === 'XOAUTH2' ? '' : request.authzid };
  };
  return {
    start: (initial) => (initial === undefined ? Promise.resolve(challenge(empty)) : first(initial)),
    step: (response) => {
      if (state === 'first') return first(response);
      if (state === 'error-sent') {
        state = 'done';
        // RFC 7628 §3.2.3: the client acknowledges the error with a single %x01, then the server fails the exchange.
        if (variant === 'OAUTHBEARER' && (response.length !== 1 || response[0] !== 1)) {
          return Promise.resolve(fail('ERR_SASL_MALFORMED', 'OAUTHBEARER error must be acknowledged with %x01'));
        }
        return Promise.resolve(fail('ERR_SASL_AUTH_FAILED', `${variant} token rejected`));
      }
      return Promise.resolve(fail('ERR_SASL_MALFORMED', `${variant} exchange is over`));
    },
  };
}

export interface OAuthClient extends ClientMechanism {
  readonly oauthError: () => OAuthErrorDetails | undefined;
}

function parseErrorChallenge(bytes: Uint8Array): OAuthErrorDetails {
  try {
    const value: unknown = JSON.parse(decodeUtf8(bytes) ?? '');
    if (typeof value !== 'object' || value === null) return {};
    const record = value as Record<string, unknown>;
    const pick = (key: string): string | undefined => (typeof record[key] === 'string' ? record[key] : undefined);
    const status = pick('status');
    const scope = pick('scope');
    const schemes = pick('schemes');
    const openidConfiguration = pick('openid-configuration');
    return {
      ...(status === undefined ? {} : { status }),
      ...(scope === undefined ? {} : { scope }),
      ...(schemes === undefined ? {} : { schemes }),
      ...(openidConfiguration === undefined ? {} : { openidConfiguration }),
    };
  } catch {
    return {};
  }
}

export function oauthClient(
  credentials: { username?: string; token: Secret<string>; authzid?: string; host?: string; port?: number },
  variant: Variant,
): OAuthClient {
  const token = credentials.token.expose();
  if (!b64token.test(token)) throw invalidCredentials(`${variant} token is not an RFC 6750 b64token`);
  const user = credentials.authzid ?? credentials.username;
  // eslint-disable-next-line no-control-regex -- refusing control characters is the point
  if (user !== undefined && (encodeUtf8(user) === undefined || /[\x00-\x1f\x7f]/.test(user))) {
    throw invalidCredentials(`${variant} user name must be text without control characters`);
  }
  if (credentials.host !== undefined && !/^[\x21-\x7e]+$/.test(credentials.host)) throw invalidCredentials(`${variant} host is malformed`);
  let message: string;
  if (variant === 'XOAUTH2') {
    if (user === undefined || user === '') throw invalidCredentials('XOAUTH2 needs a user name');
    message = `user=${user}\x01auth=Bearer ${token}\x01\x01`;
  } else {
    const gs2 = `n,${user === undefined || user === '' ? '' : `a=${escapeSaslname(user)}`},`;
    const host = credentials.host === undefined ? '' : `host=${credentials.host}\x01`;
    const port = credentials.port === undefined ? '' : `port=${credentials.port}\x01`;
    message = `${gs2}\x01${host}${port}auth=Bearer ${token}\x01\x01`;
  }
  let state: 'initial' | 'sent' | 'error' | 'done' = 'initial';
  let serverError: OAuthErrorDetails | undefined;
  return {
    initialResponse: () => {
      state = 'sent';
      return utf8(message);
    },
    respond: (challengeBytes) => {
      if (state === 'initial' && challengeBytes.length === 0) {
        state = 'sent';
        return Promise.resolve(utf8(message));
      }
      if (state === 'sent') {
        // The only challenge after the token is the error; acknowledge it so the server can fail the exchange.
        state = 'error';
        serverError = parseErrorChallenge(challengeBytes);
        return Promise.resolve(variant === 'OAUTHBEARER' ? new Uint8Array([1]) : empty);
      }
      return Promise.reject(serverMisbehaved('ERR_SASL_MALFORMED', `unexpected ${variant} challenge`));
    },
    complete: () => {
      if (state === 'error') return Promise.reject(serverMisbehaved('ERR_SASL_MALFORMED', `${variant} server reported success after an error`));
      state = 'done';
      return Promise.resolve();
    },
    oauthError: () => serverError,
  };
}
