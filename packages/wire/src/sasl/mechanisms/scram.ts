/**
 * SCRAM (RFC 5802) with SHA-1 and SHA-256 (RFC 7677), with and without
 * channel binding (-PLUS; RFC 9266 `tls-exporter`, RFC 5929
 * `tls-server-end-point`). The server holds only StoredKey and ServerKey, so
 * it never sees or stores the password.
 *
 *   C: gs2-header client-first-bare          n,,n=user,r=<c-nonce>
 *   S: server-first                          r=<c-nonce><s-nonce>,s=<salt>,i=<n>
 *   C: client-final                          c=<b64(gs2-header+cb)>,r=<nonce>,p=<proof>
 *   S: server-final                          v=<server signature>
 */
import { createHash, createHmac, pbkdf2 } from 'node:crypto';
import { promisify } from 'node:util';
import { Secret } from '../../secret.js';
import { decodeBase64Strict, encodeBase64 } from '../base64.js';
import type { RandomBytes } from '../bytes.js';
import { concatBytes, decodeUtf8, encodeUtf8, equalBytes, printableNonce, utf8 } from '../bytes.js';
import { saslError } from '../errors.js';
import { saslprep } from '../saslprep.js';
import type { ChannelBinding, ScramCredentials, ScramHash } from '../types.js';
import type { ClientMechanism, MechanismStep, ServerMechanism, ServerMechanismContext } from './common.js';
import { callBackend, challenge, empty, fail, invalidCredentials, serverMisbehaved } from './common.js';

const pbkdf2Async = promisify(pbkdf2);

const nodeHash: Readonly<Record<ScramHash, { readonly name: string; readonly length: number }>> = {
  'SHA-1': { name: 'sha1', length: 20 },
  'SHA-256': { name: 'sha256', length: 32 },
};

export function scramHashLength(hash: ScramHash): number {
  return nodeHash[hash].length;
}

function hmac(hash: ScramHash, key: Uint8Array, data: Uint8Array | string): Uint8Array {
  return createHmac(nodeHash[hash].name, key).update(data).digest();
}

function digest(hash: ScramHash, data: Uint8Array): Uint8Array {
  return createHash(nodeHash[hash].name).update(data).digest();
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] ?? 0) ^ (b[i] ?? 0);
  return out;
}

/** RFC 5802 §2.2 Hi() = PBKDF2 with HMAC-H, one block. Asynchronous: it runs on the libuv thread pool. */
export async function saltedPassword(hash: ScramHash, password: Uint8Array, salt: Uint8Array, iterations: number): Promise<Uint8Array> {
  return new Uint8Array(await pbkdf2Async(password, salt, iterations, nodeHash[hash].length, nodeHash[hash].name));
}

/** ClientKey, StoredKey and ServerKey from SaltedPassword (RFC 5802 §3). */
export function scramKeys(hash: ScramHash, salted: Uint8Array): { clientKey: Uint8Array; storedKey: Uint8Array; serverKey: Uint8Array } {
  const clientKey = hmac(hash, salted, 'Client Key');
  return { clientKey, storedKey: digest(hash, clientKey), serverKey: hmac(hash, salted, 'Server Key') };
}

/** RFC 5802 §5.1: ',' and '=' in a saslname are sent as '=2C' and '=3D'. */
export function escapeSaslname(name: string): string {
  return name.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** The inverse of `escapeSaslname`, or undefined when a '=' is not followed by '2C' or '3D' (RFC 5802 §5.1: the server MUST fail). */
export function unescapeSaslname(value: string): string | undefined {
  if (/=(?!2C|3D)/.test(value)) return undefined;
  return value.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

/** RFC 5802 §7: printable = %x21-2B / %x2D-7E (no comma). */
const printable = /^[\x21-\x2b\x2d-\x7e]+$/;
const attribute = /^([A-Za-z])=(.*)$/s;

/** Split `a=1,b=2` into attributes; undefined when one is not `letter=value`. */
function attributes(text: string): [string, string][] | undefined {
  const out: [string, string][] = [];
  for (const part of text.split(',')) {
    const match = attribute.exec(part);
    if (match === null) return undefined;
    out.push([match[1] ?? '', match[2] ?? '']);
  }
  return out;
}

interface Gs2Header {
  readonly flag: 'n' | 'y' | 'p';
  readonly cbName?: string;
  readonly authzid: string;
  /** The header text, both commas included: it is echoed (base64) in `c=`. */
  readonly text: string;
  readonly bare: string;
}

/** RFC 5802 §7: gs2-header = gs2-cbind-flag "," [ authzid ] "," */
function parseClientFirst(text: string): Gs2Header | undefined {
  const match = /^(n|y|p=([A-Za-z0-9.-]+)),(a=[^,]*)?,/.exec(text);
  if (match === null) return undefined;
  const flagText = match[1] ?? '';
  const authzid = match[3] === undefined ? '' : unescapeSaslname(match[3].slice(2));
  if (authzid === undefined || (match[3] !== undefined && authzid === '')) return undefined;
  const flag = flagText === 'n' ? 'n' : flagText === 'y' ? 'y' : 'p';
  return { flag, ...(match[2] === undefined ? {} : { cbName: match[2] }), authzid, text: match[0], bare: text.slice(match[0].length) };
}

export interface ScramServerOptions {
  readonly hash: ScramHash;
  readonly plus: boolean;
}

export function scramServer(ctx: ServerMechanismContext, options: ScramServerOptions): ServerMechanism {
  const { hash, plus } = options;
  const hashLength = nodeHash[hash].length;
  type State =
    | { readonly name: 'first' }
    | {
        readonly name: 'final';
        readonly gs2: Gs2Header;
        readonly cbData: Uint8Array;
        readonly authcid: string;
        readonly nonce: string;
        readonly serverFirst: string;
        readonly credentials: ScramCredentials;
        readonly known: boolean;
      }
    | { readonly name: 'done' };
  let state: State = { name: 'first' };

  const clientFirst = async (message: Uint8Array): Promise<MechanismStep> => {
    state = { name: 'done' };
    const text = decodeUtf8(message);
    const gs2 = text === undefined ? undefined : parseClientFirst(text);
    if (gs2 === undefined) return fail('ERR_SASL_MALFORMED', 'SCRAM client-first message has no valid GS2 header');
    // RFC 5802 §6: a p= flag on a non-PLUS mechanism, or a PLUS mechanism without p=, fails.
    let cbData: Uint8Array = empty;
    if (plus) {
      if (gs2.flag !== 'p') return fail('ERR_SASL_CHANNEL_BINDING', 'SCRAM -PLUS requires channel binding (p=)');
      const binding = ctx.connection.channelBindings?.find((b) => b.type === gs2.cbName);
      if (binding === undefined) return fail('ERR_SASL_CHANNEL_BINDING', 'unsupported channel binding type');
      cbData = binding.data;
    } else if (gs2.flag === 'p') {
      return fail('ERR_SASL_CHANNEL_BINDING', 'channel binding requested with a non-PLUS mechanism');
    } else if (gs2.flag === 'y' && ctx.advertisesPlus) {
      // RFC 5802 §6: "y" means the client supports channel binding but thinks the server does not. We do: downgrade.
      return fail('ERR_SASL_CHANNEL_BINDING', 'channel binding downgrade detected');
    }
    const attrs = attributes(gs2.bare);
    if (attrs === undefined) return fail('ERR_SASL_MALFORMED', 'SCRAM client-first message is malformed');
    // RFC 5802 §5.1: "m" is reserved for mandatory extensions, which we do not know.
    if (attrs[0]?.[0] === 'm') return fail('ERR_SASL_MALFORMED', 'SCRAM mandatory extension not supported');
    const [userAttr, nonceAttr] = attrs;
    if (userAttr?.[0] !== 'n' || nonceAttr?.[0] !== 'r') return fail('ERR_SASL_MALFORMED', 'SCRAM client-first needs n= and r=');
    const escaped = unescapeSaslname(userAttr[1]);
    const prepared = escaped === undefined ? undefined : saslprep(escaped);
    if (prepared === undefined || !prepared.ok || prepared.value === '') return fail('ERR_SASL_MALFORMED', 'SCRAM user name is malformed');
    const authcid = prepared.value;
    if (Buffer.byteLength(authcid) > ctx.limits.maxSaslIdentityBytes || Buffer.byteLength(gs2.authzid) > ctx.limits.maxSaslIdentityBytes) {
      return fail('ERR_SASL_MESSAGE_TOO_LARGE', `SCRAM identity exceeds ${ctx.limits.maxSaslIdentityBytes} bytes`);
    }
    const clientNonce = nonceAttr[1];
    if (!printable.test(clientNonce)) return fail('ERR_SASL_MALFORMED', 'SCRAM client nonce is not printable');

    const result = await callBackend(async () =>
      ctx.backend.getScramCredentials?.({ mechanism: ctx.mechanism, hash, authcid, connection: ctx.connection }),
    );
    if (!result.ok) return result.step;
    let credentials = result.value;
    const known = credentials !== undefined;
    if (credentials === undefined) {
      // Unknown user: answer with a salt that is stable per user name, so the reply does not reveal who exists; fail at the proof.
      credentials = {
        salt: hmac('SHA-256', ctx.scramMockKey(), `${ctx.mechanism}\0${authcid}`).subarray(0, 16),
        iterations: ctx.scramMockIterations,
        storedKey: ctx.randomBytes(hashLength),
        serverKey: ctx.randomBytes(hashLength),
      };
    } else if (
      !Number.isSafeInteger(credentials.iterations) ||
      credentials.iterations < 1 ||
      credentials.salt.length === 0 ||
      credentials.storedKey.length !== hashLength ||
      credentials.serverKey.length !== hashLength
    ) {
      return {
        type: 'failure',
        error: saslError('ERR_SASL_TEMPORARY_FAILURE', `SCRAM backend returned malformed ${hash} credentials`, { side: 'local' }),
      };
    }
    const nonce = clientNonce + printableNonce(ctx.randomBytes, ctx.scramNonceLength);
    const serverFirst = `r=${nonce},s=${encodeBase64(credentials.salt)},i=${credentials.iterations}`;
    state = { name: 'final', gs2, cbData, authcid, nonce, serverFirst, credentials, known };
    return challenge(utf8(serverFirst));
  };

  const clientFinal = (message: Uint8Array, s: Extract<State, { name: 'final' }>): MechanismStep => {
    state = { name: 'done' };
    const text = decodeUtf8(message);
    // RFC 5802 §7: client-final-message = client-final-message-without-proof "," proof — the proof comes last.
    const proofAt = text === undefined ? -1 : text.lastIndexOf(',p=');
    if (text === undefined || proofAt < 0) return fail('ERR_SASL_MALFORMED', 'SCRAM client-final message has no proof');
    const withoutProof = text.slice(0, proofAt);
    const attrs = attributes(withoutProof);
    const proof = decodeBase64Strict(text.slice(proofAt + 3));
    if (attrs === undefined || proof === undefined || proof.length !== hashLength) return fail('ERR_SASL_MALFORMED', 'SCRAM client-final message is malformed');
    const [cbAttr, nonceAttr] = attrs;
    if (cbAttr?.[0] !== 'c' || nonceAttr?.[0] !== 'r') return fail('ERR_SASL_MALFORMED', 'SCRAM client-final needs c= and r=');
    const cbInput = decodeBase64Strict(cbAttr[1]);
    if (cbInput === undefined) return fail('ERR_SASL_MALFORMED', 'SCRAM channel binding is not base64');
    // RFC 5802 §5.1 c=: the GS2 header again, followed by the channel-binding data when the flag is p.
    if (!equalBytes(cbInput, concatBytes(utf8(s.gs2.text), s.cbData))) return fail('ERR_SASL_CHANNEL_BINDING', 'SCRAM channel binding mismatch');
    if (!equalBytes(utf8(nonceAttr[1]), utf8(s.nonce))) return fail('ERR_SASL_NONCE_MISMATCH', 'SCRAM nonce mismatch');
    const authMessage = `${s.gs2.bare},${s.serverFirst},${withoutProof}`;
    const clientSignature = hmac(hash, s.credentials.storedKey, authMessage);
    const clientKey = xor(proof, clientSignature);
    const proofOk = equalBytes(digest(hash, clientKey), s.credentials.storedKey);
    if (!proofOk || !s.known) return fail('ERR_SASL_AUTH_FAILED', 'SCRAM proof rejected');
    const serverSignature = hmac(hash, s.credentials.serverKey, authMessage);
    return { type: 'success', authcid: s.authcid, authzid: s.gs2.authzid, data: utf8(`v=${encodeBase64(serverSignature)}`) };
  };

  return {
    // Client-first: without an initial response the server sends an empty challenge.
    start: (initial) => (initial === undefined ? Promise.resolve(challenge(empty)) : clientFirst(initial)),
    step: (response) => {
      const s = state;
      if (s.name === 'first') return clientFirst(response);
      if (s.name === 'final') return Promise.resolve(clientFinal(response, s));
      return Promise.resolve(fail('ERR_SASL_MALFORMED', 'SCRAM exchange is over'));
    },
  };
}

export interface ScramClientOptions {
  readonly hash: ScramHash;
  readonly plus: boolean;
  readonly randomBytes: RandomBytes;
  readonly nonceLength: number;
  readonly minScramIterations: number;
  readonly maxScramIterations: number;
}

export function scramClient(
  credentials: { username: string; password: Secret<string>; authzid?: string; channelBinding?: ChannelBinding },
  options: ScramClientOptions,
): ClientMechanism {
  const { hash, plus } = options;
  const user = saslprep(credentials.username);
  if (!user.ok || user.value === '') throw invalidCredentials('SCRAM user name refused by SASLprep');
  const authz = credentials.authzid === undefined || credentials.authzid === '' ? undefined : saslprep(credentials.authzid);
  if (authz !== undefined && (!authz.ok || authz.value === '')) throw invalidCredentials('SCRAM authorization identity refused by SASLprep');
  // RFC 5802 §2.2 Normalize(password) is SASLprep, "stored strings".
  const preparedPassword = saslprep(credentials.password.expose());
  if (!preparedPassword.ok) throw invalidCredentials('SCRAM password refused by SASLprep');
  const passwordBytes = new Secret(utf8(preparedPassword.value));
  const binding = credentials.channelBinding;
  if (plus && binding === undefined) throw invalidCredentials('SCRAM -PLUS needs channel-binding data');
  // RFC 5802 §6: "y" when we could bind but chose a non-PLUS mechanism (the server did not offer -PLUS).
  const flag = plus ? `p=${binding?.type ?? ''}` : binding === undefined ? 'n' : 'y';
  const gs2 = `${flag},${authz?.ok === true ? `a=${escapeSaslname(authz.value)}` : ''},`;
  const clientNonce = printableNonce(options.randomBytes, options.nonceLength);
  const bare = `n=${escapeSaslname(user.value)},r=${clientNonce}`;
  const cbInput = concatBytes(utf8(gs2), plus && binding !== undefined ? binding.data : empty);

  let state: 'initial' | 'first-sent' | 'final-sent' | 'verified' | 'failed' = 'initial';
  let expectedServerSignature: Secret<Uint8Array> | undefined;

  const clientFinal = async (challengeBytes: Uint8Array): Promise<Uint8Array> => {
    const text = decodeUtf8(challengeBytes);
    const attrs = text === undefined ? undefined : attributes(text);
    if (text === undefined || attrs === undefined) throw serverMisbehaved('ERR_SASL_MALFORMED', 'SCRAM server-first message is malformed');
    if (attrs[0]?.[0] === 'm') throw serverMisbehaved('ERR_SASL_MALFORMED', 'SCRAM mandatory extension not supported');
    const [nonceAttr, saltAttr, iterAttr] = attrs;
    if (nonceAttr?.[0] !== 'r' || saltAttr?.[0] !== 's' || iterAttr?.[0] !== 'i') {
      throw serverMisbehaved('ERR_SASL_MALFORMED', 'SCRAM server-first needs r=, s= and i=');
    }
    const nonce = nonceAttr[1];
    // RFC 5802 §5.1: the server's nonce starts with ours and adds its own part.
    if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length || !printable.test(nonce)) {
      throw serverMisbehaved('ERR_SASL_NONCE_MISMATCH', 'SCRAM server nonce does not extend the client nonce');
    }
    const salt = decodeBase64Strict(saltAttr[1]);
    if (salt === undefined || salt.length === 0) throw serverMisbehaved('ERR_SASL_MALFORMED', 'SCRAM salt is not base64');
    if (!/^[1-9][0-9]{0,9}$/.test(iterAttr[1])) throw serverMisbehaved('ERR_SASL_MALFORMED', 'SCRAM iteration count is not a number');
    const iterations = Number(iterAttr[1]);
    // A hostile server could ask for 2^31 iterations and spin this client for minutes.
    if (iterations < options.minScramIterations || iterations > options.maxScramIterations) {
      throw serverMisbehaved(
        'ERR_SASL_SCRAM_ITERATIONS',
        `SCRAM iteration count ${iterations} outside [${options.minScramIterations}, ${options.maxScramIterations}]`,
      );
    }
    const salted = await saltedPassword(hash, passwordBytes.expose(), salt, iterations);
    const { clientKey, storedKey, serverKey } = scramKeys(hash, salted);
    const withoutProof = `c=${encodeBase64(cbInput)},r=${nonce}`;
    const authMessage = `${bare},${text},${withoutProof}`;
    const proof = xor(clientKey, hmac(hash, storedKey, authMessage));
    expectedServerSignature = new Secret(hmac(hash, serverKey, authMessage));
    return utf8(`${withoutProof},p=${encodeBase64(proof)}`);
  };

  const verifyServerFinal = (data: Uint8Array): void => {
    const text = decodeUtf8(data) ?? '';
    const first = text.split(',')[0] ?? '';
    if (first.startsWith('e=')) {
      // RFC 5802 §7 server-error-value: a short token; keep only its safe characters for the message.
      const reason = first.slice(2).replace(/[^A-Za-z0-9-]/g, '').slice(0, 64);
      throw saslError('ERR_SASL_AUTH_FAILED', `SCRAM server error: ${reason}`, { side: 'none', reply: false });
    }
    const signature = first.startsWith('v=') ? decodeBase64Strict(first.slice(2)) : undefined;
    if (signature === undefined) throw serverMisbehaved('ERR_SASL_MALFORMED', 'SCRAM server-final message is malformed');
    if (expectedServerSignature === undefined || !equalBytes(signature, expectedServerSignature.expose())) {
      throw serverMisbehaved('ERR_SASL_SERVER_SIGNATURE', 'SCRAM server signature is wrong: the server is not authenticated');
    }
  };

  const guard = async <T>(run: () => Promise<T> | T): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      state = 'failed';
      throw error;
    }
  };

  return {
    initialResponse: () => {
      state = 'first-sent';
      return utf8(gs2 + bare);
    },
    respond: (challengeBytes) =>
      guard(async () => {
        switch (state) {
          case 'initial':
            // The server asked for the client-first message with an empty challenge (no SASL-IR).
            if (challengeBytes.length !== 0) throw serverMisbehaved('ERR_SASL_MALFORMED', 'SCRAM expected an empty first challenge');
            state = 'first-sent';
            return utf8(gs2 + bare);
          case 'first-sent': {
            const out = await clientFinal(challengeBytes);
            state = 'final-sent';
            return out;
          }
          case 'final-sent':
            // Server-final sent as a challenge (SMTP, IMAP4rev1, POP3 have no "additional data with success"); answer empty.
            verifyServerFinal(challengeBytes);
            state = 'verified';
            return empty;
          default:
            throw serverMisbehaved('ERR_SASL_MALFORMED', 'unexpected SCRAM challenge');
        }
      }),
    complete: (data) =>
      guard(() => {
        if (state === 'final-sent' && data !== undefined && data.length > 0) {
          verifyServerFinal(data);
          state = 'verified';
        }
        // Mutual authentication is the point of SCRAM: success without a verified signature is an attack or a broken server.
        if (state !== 'verified') throw serverMisbehaved('ERR_SASL_SERVER_SIGNATURE', 'SCRAM server reported success without a valid signature');
      }),
  };
}

/** The stored keys for one user record (RFC 5802 §3), from the password. */
export async function deriveScramKeysFromPassword(
  password: string,
  hash: ScramHash,
  salt: Uint8Array,
  iterations: number,
): Promise<ScramCredentials> {
  const prepared = saslprep(password);
  if (!prepared.ok) throw invalidCredentials(`password refused by SASLprep: ${prepared.reason}`);
  const bytes = encodeUtf8(prepared.value) ?? empty;
  const { storedKey, serverKey } = scramKeys(hash, await saltedPassword(hash, bytes, salt, iterations));
  // Plain Uint8Array copies (not Buffers from the pool), so records compare and serialise predictably.
  return { salt: new Uint8Array(salt), iterations, storedKey: new Uint8Array(storedKey), serverKey: new Uint8Array(serverKey) };
}
