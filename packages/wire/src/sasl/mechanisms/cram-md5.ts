/**
 * CRAM-MD5 (RFC 2195): the server sends `<random.timestamp@hostname>`, the
 * client answers `user SP hex(HMAC-MD5(secret, challenge))`. Server-first.
 * The server needs the plain secret, so prefer SCRAM; this is here for old
 * clients. The challenge takes its randomness from the injected
 * `randomBytes` and its timestamp from the injected clock: no clock is read.
 */
import { createHmac } from 'node:crypto';
import type { Secret } from '../../secret.js';
import { decodeUtf8, encodeUtf8, equalBytes, utf8 } from '../bytes.js';
import type { ClientMechanism, MechanismStep, ServerMechanism, ServerMechanismContext } from './common.js';
import { callBackend, challenge, fail, invalidCredentials, serverMisbehaved } from './common.js';

function randomDecimal(ctx: ServerMechanismContext): string {
  const bytes = ctx.randomBytes(8);
  let value = 0n;
  for (const byte of bytes.subarray(0, 8)) value = (value << 8n) | BigInt(byte);
  return value.toString(10);
}

/** The RFC 2195 §2 challenge, `<random.timestamp@hostname>`; without a clock the timestamp is a second random number. */
export function cramMd5Challenge(ctx: ServerMechanismContext): string {
  const random = randomDecimal(ctx);
  const timestamp = ctx.clock === undefined ? randomDecimal(ctx) : String(Math.floor(ctx.clock.now() / 1000));
  return `<${random}.${timestamp}@${ctx.hostname}>`;
}

function digest(secret: Uint8Array, challengeBytes: Uint8Array): string {
  return createHmac('md5', secret).update(challengeBytes).digest('hex');
}

export function cramMd5Server(ctx: ServerMechanismContext): ServerMechanism {
  let sent: Uint8Array | undefined;
  let done = false;
  const verify = async (challengeBytes: Uint8Array, response: Uint8Array): Promise<MechanismStep> => {
    done = true;
    const text = decodeUtf8(response);
    // RFC 2195 §2: the user name, a space, and the digest as 32 lowercase hex digits; the name may itself hold spaces.
    const space = text === undefined ? -1 : text.lastIndexOf(' ');
    if (text === undefined || space <= 0 || text.includes('\0')) return fail('ERR_SASL_MALFORMED', 'CRAM-MD5 response must be "user digest"');
    const authcid = text.slice(0, space);
    const hex = text.slice(space + 1).toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(hex)) return fail('ERR_SASL_MALFORMED', 'CRAM-MD5 digest must be 32 hex digits');
    if (Buffer.byteLength(authcid) > ctx.limits.maxSaslIdentityBytes) {
      return fail('ERR_SASL_MESSAGE_TOO_LARGE', `CRAM-MD5 user name exceeds ${ctx.limits.maxSaslIdentityBytes} bytes`);
    }
    const result = await callBackend(async () => ctx.backend.getCramMd5Secret?.({ authcid, connection: ctx.connection }));
    if (!result.ok) return result.step;
    if (result.value === undefined) return fail('ERR_SASL_AUTH_FAILED', 'CRAM-MD5 credentials rejected');
    const secret = encodeUtf8(result.value.expose()) ?? new Uint8Array(0);
    const expected = utf8(digest(secret, challengeBytes));
    if (!equalBytes(expected, utf8(hex))) return fail('ERR_SASL_AUTH_FAILED', 'CRAM-MD5 credentials rejected');
    return { type: 'success', authcid, authzid: '' };
  };
  return {
    start: (initial) => {
      // Server-first: an initial response has nothing to answer yet.
      if (initial !== undefined) return Promise.resolve(fail('ERR_SASL_MALFORMED', 'CRAM-MD5 takes no initial response'));
      sent = utf8(cramMd5Challenge(ctx));
      return Promise.resolve(challenge(sent));
    },
    step: (response) => {
      if (sent === undefined || done) return Promise.resolve(fail('ERR_SASL_MALFORMED', 'CRAM-MD5 exchange is over'));
      return verify(sent, response);
    },
  };
}

export function cramMd5Client(credentials: { username: string; password: Secret<string> }): ClientMechanism {
  const user = encodeUtf8(credentials.username);
  const secret = encodeUtf8(credentials.password.expose());
  if (user === undefined || secret === undefined || user.length === 0 || user.includes(0)) {
    throw invalidCredentials('CRAM-MD5 needs a user name without NUL and a valid Unicode secret');
  }
  let answered = false;
  return {
    initialResponse: () => undefined,
    respond: (challengeBytes) => {
      if (answered) return Promise.reject(serverMisbehaved('ERR_SASL_MALFORMED', 'unexpected CRAM-MD5 challenge'));
      answered = true;
      return Promise.resolve(utf8(`${credentials.username} ${digest(secret, challengeBytes)}`));
    },
    complete: () => Promise.resolve(),
  };
}
