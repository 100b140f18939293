/**
 * PLAIN (RFC 4616): one client message, `[authzid] NUL authcid NUL passwd`,
 * each part UTF-8 without NUL. Client-first; only over TLS unless allowed.
 */
import type { Secret } from '../../secret.js';
import { Secret as SecretClass } from '../../secret.js';
import { concatBytes, decodeUtf8, encodeUtf8 } from '../bytes.js';
import type { ClientMechanism, MechanismStep, ServerMechanism, ServerMechanismContext } from './common.js';
import { callBackend, challenge, empty, fail, invalidCredentials, serverMisbehaved, utf8Length } from './common.js';

export function plainServer(ctx: ServerMechanismContext): ServerMechanism {
  const verify = async (message: Uint8Array): Promise<MechanismStep> => {
    // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd — exactly two NULs.
    const first = message.indexOf(0);
    const second = first < 0 ? -1 : message.indexOf(0, first + 1);
    if (first < 0 || second < 0 || message.indexOf(0, second + 1) >= 0) {
      return fail('ERR_SASL_MALFORMED', 'PLAIN message needs exactly two NUL separators');
    }
    const authzid = decodeUtf8(message.subarray(0, first));
    const authcid = decodeUtf8(message.subarray(first + 1, second));
    const passwordBytes = message.subarray(second + 1);
    const password = decodeUtf8(passwordBytes);
    if (authzid === undefined || authcid === undefined || password === undefined) {
      return fail('ERR_SASL_MALFORMED', 'PLAIN message is not valid UTF-8');
    }
    // RFC 4616 §2: authcid and passwd are 1*SAFE.
    if (authcid === '' || password === '') return fail('ERR_SASL_MALFORMED', 'PLAIN authcid and password must not be empty');
    const { maxSaslIdentityBytes, maxSaslPasswordBytes } = ctx.limits;
    if (utf8Length(authzid) > maxSaslIdentityBytes || utf8Length(authcid) > maxSaslIdentityBytes) {
      return fail('ERR_SASL_MESSAGE_TOO_LARGE', `PLAIN identity exceeds ${maxSaslIdentityBytes} bytes`);
    }
    if (passwordBytes.length > maxSaslPasswordBytes) {
      return fail('ERR_SASL_MESSAGE_TOO_LARGE', `PLAIN password exceeds ${maxSaslPasswordBytes} bytes`);
    }
    const request = { mechanism: ctx.mechanism, authcid, password: new SecretClass(password), connection: ctx.connection };
    // createSaslServer checked that the method exists; `?.` keeps `this` bound to the backend.
    const result = await callBackend(async () => (await ctx.backend.verifyPassword?.(request)) ?? false);
    if (!result.ok) return result.step;
    if (result.value !== true) return fail('ERR_SASL_AUTH_FAILED', 'PLAIN credentials rejected');
    return { type: 'success', authcid, authzid };
  };
  let done = false;
  return {
    // Client-first: without an initial response the server sends an empty challenge (RFC 4422 §5).
    start: (initial) => (initial === undefined ? Promise.resolve(challenge(empty)) : finish(initial)),
    step: (response) => finish(response),
  };
  function finish(message: Uint8Array): Promise<MechanismStep> {
    if (done) return Promise.resolve(fail('ERR_SASL_MALFORMED', 'PLAIN takes one message'));
    done = true;
    return verify(message);
  }
}

export function plainClient(credentials: { username: string; password: Secret<string>; authzid?: string }): ClientMechanism {
  const { username, password, authzid = '' } = credentials;
  const parts = [authzid, username, password.expose()].map((part) => encodeUtf8(part));
  const [authzBytes, authcBytes, passBytes] = parts;
  if (authzBytes === undefined || authcBytes === undefined || passBytes === undefined) throw invalidCredentials('PLAIN credentials are not valid Unicode');
  if (parts.some((part) => part!.includes(0))) throw invalidCredentials('PLAIN credentials must not contain NUL');
  if (authcBytes.length === 0 || passBytes.length === 0) throw invalidCredentials('PLAIN needs a user name and a password');
  let sent = false;
  const message = (): Uint8Array => {
    sent = true;
    return concatBytes(authzBytes, new Uint8Array([0]), authcBytes, new Uint8Array([0]), passBytes);
  };
  return {
    initialResponse: message,
    respond: (challengeData) => {
      // The only challenge PLAIN knows is the empty one a server sends when the initial response was not sent with the command.
      if (sent || challengeData.length !== 0) return Promise.reject(serverMisbehaved('ERR_SASL_MALFORMED', 'unexpected PLAIN challenge'));
      return Promise.resolve(message());
    },
    complete: () => Promise.resolve(),
  };
}
