/**
 * LOGIN (draft-murchison-sasl-login-00): the server prompts "Username:" then
 * "Password:", the client answers each with the bare value. Obsolete but
 * universal in SMTP submission. A client may send the user name as the
 * initial response (`AUTH LOGIN dXNlcg==`, RFC 4954 §4); the draft says
 * clients ignore the prompt texts, so the client here answers by position.
 */
import type { Secret } from '../../secret.js';
import { Secret as SecretClass } from '../../secret.js';
import { decodeUtf8, encodeUtf8, utf8 } from '../bytes.js';
import type { ClientMechanism, MechanismStep, ServerMechanism, ServerMechanismContext } from './common.js';
import { callBackend, challenge, fail, invalidCredentials, serverMisbehaved } from './common.js';

const usernamePrompt = utf8('Username:');
const passwordPrompt = utf8('Password:');

export function loginServer(ctx: ServerMechanismContext): ServerMechanism {
  let username: string | undefined;
  let done = false;
  const takeUsername = (bytes: Uint8Array): MechanismStep => {
    const text = decodeUtf8(bytes);
    if (text === undefined || text.includes('\0')) return fail('ERR_SASL_MALFORMED', 'LOGIN user name is not valid UTF-8 text');
    if (text === '') return fail('ERR_SASL_MALFORMED', 'LOGIN user name is empty');
    if (bytes.length > ctx.limits.maxSaslIdentityBytes) {
      return fail('ERR_SASL_MESSAGE_TOO_LARGE', `LOGIN user name exceeds ${ctx.limits.maxSaslIdentityBytes} bytes`);
    }
    username = text;
    return challenge(passwordPrompt);
  };
  const takePassword = async (authcid: string, bytes: Uint8Array): Promise<MechanismStep> => {
    done = true;
    const password = decodeUtf8(bytes);
    if (password === undefined || password.includes('\0')) return fail('ERR_SASL_MALFORMED', 'LOGIN password is not valid UTF-8 text');
    if (password === '') return fail('ERR_SASL_MALFORMED', 'LOGIN password is empty');
    if (bytes.length > ctx.limits.maxSaslPasswordBytes) {
      return fail('ERR_SASL_MESSAGE_TOO_LARGE', `LOGIN password exceeds ${ctx.limits.maxSaslPasswordBytes} bytes`);
    }
    const request = { mechanism: ctx.mechanism, authcid, password: new SecretClass(password), connection: ctx.connection };
    const result = await callBackend(async () => (await ctx.backend.verifyPassword?.(request)) ?? false);
    if (!result.ok) return result.step;
    if (result.value !== true) return fail('ERR_SASL_AUTH_FAILED', 'LOGIN credentials rejected');
    return { type: 'success', authcid, authzid: '' };
  };
  return {
    start: (initial) => Promise.resolve(initial === undefined ? challenge(usernamePrompt) : takeUsername(initial)),
    step: (response) => {
      if (done) return Promise.resolve(fail('ERR_SASL_MALFORMED', 'LOGIN exchange is over'));
      if (username === undefined) return Promise.resolve(takeUsername(response));
      return takePassword(username, response);
    },
  };
}

export function loginClient(
  credentials: { username: string; password: Secret<string> },
  options: { readonly initialResponse?: boolean },
): ClientMechanism {
  const user = encodeUtf8(credentials.username);
  const pass = encodeUtf8(credentials.password.expose());
  if (user === undefined || pass === undefined || user.includes(0) || pass.includes(0)) {
    throw invalidCredentials('LOGIN credentials must be valid Unicode without NUL');
  }
  if (user.length === 0 || pass.length === 0) throw invalidCredentials('LOGIN needs a user name and a password');
  let sent = 0;
  return {
    initialResponse: () => {
      if (options.initialResponse !== true) return undefined;
      sent = 1;
      return user;
    },
    respond: () => {
      sent++;
      if (sent === 1) return Promise.resolve(user);
      if (sent === 2) return Promise.resolve(pass);
      return Promise.reject(serverMisbehaved('ERR_SASL_MALFORMED', 'unexpected LOGIN challenge'));
    },
    complete: () => Promise.resolve(),
  };
}
