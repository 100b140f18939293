/**
 * EXTERNAL (RFC 4422 Appendix A): the identity comes from outside SASL —
 * here the verified TLS client certificate, supplied by the caller as
 * `connection.external`. The client's one message is the authorization
 * identity it wants, possibly empty. The backend's `authorize` decides.
 */
import { decodeUtf8, encodeUtf8 } from '../bytes.js';
import type { ClientMechanism, MechanismStep, ServerMechanism, ServerMechanismContext } from './common.js';
import { challenge, empty, fail, invalidCredentials, serverMisbehaved } from './common.js';

export function externalServer(ctx: ServerMechanismContext): ServerMechanism {
  let done = false;
  const finish = (message: Uint8Array): Promise<MechanismStep> => {
    if (done) return Promise.resolve(fail('ERR_SASL_MALFORMED', 'EXTERNAL takes one message'));
    done = true;
    const external = ctx.connection.external;
    if (external === undefined || external.identity === '') return Promise.resolve(fail('ERR_SASL_AUTH_FAILED', 'no external identity on this connection'));
    const authzid = decodeUtf8(message);
    if (authzid === undefined || authzid.includes('\0')) return Promise.resolve(fail('ERR_SASL_MALFORMED', 'EXTERNAL authorization identity is not valid UTF-8 text'));
    if (message.length > ctx.limits.maxSaslIdentityBytes) {
      return Promise.resolve(fail('ERR_SASL_MESSAGE_TOO_LARGE', `EXTERNAL identity exceeds ${ctx.limits.maxSaslIdentityBytes} bytes`));
    }
    // The session wrapper calls backend.authorize for every EXTERNAL success.
    return Promise.resolve({ type: 'success', authcid: external.identity, authzid });
  };
  return {
    // Client-first, and the message may be empty: without an initial response, ask for it with an empty challenge.
    start: (initial) => (initial === undefined ? Promise.resolve(challenge(empty)) : finish(initial)),
    step: finish,
  };
}

export function externalClient(credentials: { authzid?: string }): ClientMechanism {
  const authzid = encodeUtf8(credentials.authzid ?? '');
  if (authzid === undefined || authzid.includes(0)) throw invalidCredentials('EXTERNAL authorization identity must be text without NUL');
  let sent = false;
  return {
    initialResponse: () => {
      sent = true;
      return authzid;
    },
    respond: (challengeBytes) => {
      if (sent || challengeBytes.length !== 0) return Promise.reject(serverMisbehaved('ERR_SASL_MALFORMED', 'unexpected EXTERNAL challenge'));
      sent = true;
      return Promise.resolve(authzid);
    },
    complete: () => Promise.resolve(),
  };
}
