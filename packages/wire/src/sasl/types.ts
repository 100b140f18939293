/** Types shared by the SASL server and client sides. */
import type { SaslError } from '../errors.js';
import type { Secret } from '../secret.js';

/** The mechanisms implemented here, by their IANA names. */
export type SaslMechanismName =
  | 'PLAIN'
  | 'LOGIN'
  | 'CRAM-MD5'
  | 'SCRAM-SHA-1'
  | 'SCRAM-SHA-1-PLUS'
  | 'SCRAM-SHA-256'
  | 'SCRAM-SHA-256-PLUS'
  | 'XOAUTH2'
  | 'OAUTHBEARER'
  | 'EXTERNAL';

export const saslMechanismNames: readonly SaslMechanismName[] = Object.freeze([
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-256',
  'SCRAM-SHA-1-PLUS',
  'SCRAM-SHA-1',
  'OAUTHBEARER',
  'XOAUTH2',
  'EXTERNAL',
  'PLAIN',
  'LOGIN',
  'CRAM-MD5',
]);

/** Hash functions SCRAM is defined for here (RFC 5802: SHA-1; RFC 7677: SHA-256). */
export type ScramHash = 'SHA-1' | 'SHA-256';

/**
 * Channel-binding data of the TLS connection, computed by the caller (the
 * node layer): RFC 9266 `tls-exporter` (TLS 1.3: `exportKeyingMaterial(32,
 * 'EXPORTER-Channel-Binding')`) or RFC 5929 `tls-server-end-point` (hash of
 * the server certificate).
 */
export interface ChannelBinding {
  readonly type: 'tls-exporter' | 'tls-server-end-point' | 'tls-unique';
  readonly data: Uint8Array;
}

/** What a SCRAM server stores per user instead of the password (RFC 5802 §3). */
export interface ScramCredentials {
  readonly salt: Uint8Array;
  readonly iterations: number;
  /** H(ClientKey). */
  readonly storedKey: Uint8Array;
  /** HMAC(SaltedPassword, "Server Key"). */
  readonly serverKey: Uint8Array;
}

/** The identity a successful exchange established. */
export interface SaslIdentity {
  readonly mechanism: SaslMechanismName;
  /** Whose credentials were verified (the authentication identity). */
  readonly authcid: string;
  /** Who the session acts as: the requested authorization identity, or `authcid` when none was requested. */
  readonly authzid: string;
}

/** One step of a server-side exchange. */
export type SaslServerStep =
  /** Send `data` as a challenge (`334 <encoded>` in SMTP, `+ <encoded>` in IMAP and POP3) and feed the answer to `step()`. */
  | { readonly type: 'challenge'; readonly data: Uint8Array; readonly encoded: string }
  /**
   * Authenticated. `data` is additional data with success (SCRAM's
   * server-final message) — only when the server was created with
   * `successData: 'inline'`; by default it is sent as a last challenge.
   */
  | { readonly type: 'success'; readonly identity: SaslIdentity; readonly data?: Uint8Array }
  /** Failed: reply with `error.reply` and end the exchange. */
  | { readonly type: 'failure'; readonly error: SaslError };

/** About the connection a session runs on, supplied by the protocol layer. */
export interface SaslConnectionInfo {
  /** True when the connection is TLS-protected (implicit TLS or after STARTTLS). */
  readonly tls: boolean;
  /** Channel-binding data available on this connection; SCRAM -PLUS is offered only when there is some. */
  readonly channelBindings?: readonly ChannelBinding[];
  /** The identity from the verified TLS client certificate, for EXTERNAL; EXTERNAL is offered only when present. */
  readonly external?: ExternalIdentity;
  /** Anything the backend wants to see (remote address, listener name); passed through untouched. */
  readonly peer?: unknown;
}

/** The identity the TLS layer established from a client certificate (RFC 4422 Appendix A). */
export interface ExternalIdentity {
  /** The identity derived from the certificate (e.g. the subject CN or an e-mail SAN), already verified by the TLS layer. */
  readonly identity: string;
  /** The peer certificate, for the backend to inspect (Node's `PeerCertificate`). */
  readonly certificate?: unknown;
}

/** Result of verifying an OAuth 2.0 bearer token. */
export type OAuthVerification =
  | { readonly ok: true; readonly authcid?: string }
  | {
      readonly ok: false;
      /** RFC 7628 §3.2.2 `status` (an RFC 6750 error code such as `invalid_token`), or the HTTP status for XOAUTH2. */
      readonly status?: string;
      readonly scope?: string;
      /** RFC 7628 §3.2.2 `openid-configuration` URL. */
      readonly openidConfiguration?: string;
    };

/**
 * What the server needs to check credentials. Implement the methods the
 * enabled mechanisms use; `createSaslServer` refuses a mechanism whose method
 * is missing. A method that throws fails the exchange with
 * `ERR_SASL_TEMPORARY_FAILURE`. Return `undefined` for an unknown user.
 */
export interface SaslBackend {
  /** PLAIN and LOGIN: is `password` the password of `authcid`? */
  verifyPassword?(request: {
    readonly mechanism: SaslMechanismName;
    readonly authcid: string;
    readonly password: Secret<string>;
    readonly connection: SaslConnectionInfo;
  }): Promise<boolean>;
  /** SCRAM-*: the stored keys of `authcid` for `hash` (see `deriveScramCredentials`). */
  getScramCredentials?(request: {
    readonly mechanism: SaslMechanismName;
    readonly hash: ScramHash;
    readonly authcid: string;
    readonly connection: SaslConnectionInfo;
  }): Promise<ScramCredentials | undefined>;
  /** CRAM-MD5: the shared secret (the plain password) of `authcid`. */
  getCramMd5Secret?(request: { readonly authcid: string; readonly connection: SaslConnectionInfo }): Promise<Secret<string> | undefined>;
  /** XOAUTH2 and OAUTHBEARER: verify `token`, for `user` when the client named one. */
  verifyOAuthToken?(request: {
    readonly mechanism: SaslMechanismName;
    readonly user: string | undefined;
    readonly token: Secret<string>;
    readonly host?: string;
    readonly port?: number;
    readonly connection: SaslConnectionInfo;
  }): Promise<OAuthVerification>;
  /**
   * May `authcid` act as `authzid`? Called when the client asked for an
   * authorization identity different from its authentication identity, and
   * for every EXTERNAL exchange (where `authcid` comes from the certificate).
   * Without this method such requests are refused.
   */
  authorize?(request: {
    readonly mechanism: SaslMechanismName;
    readonly authcid: string;
    readonly authzid: string;
    readonly external?: ExternalIdentity;
    readonly connection: SaslConnectionInfo;
  }): Promise<boolean>;
}
