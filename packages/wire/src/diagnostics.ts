/**
 * `diagnostics_channel` names published by @pigeonpost/wire. Subscribe with
 * `diagnostics_channel.subscribe(channels.connection, handler)`; publishing
 * costs nothing while nobody listens.
 */
export const channels = Object.freeze({
  /** A connection was accepted. Message: `{ listener, connection }`. */
  connection: 'pigeonpost:wire:connection',
  /** A connection was refused by a limit. Message: `{ listener, remoteAddress, reason }`. */
  reject: 'pigeonpost:wire:reject',
  /** A connection ended. Message: `{ listener, connection, reason }`. */
  close: 'pigeonpost:wire:close',
  /** A connection hit its idle timeout. Message: `{ listener, connection }`. */
  idle: 'pigeonpost:wire:idle',
  /** A PROXY protocol header was read. Message: `{ listener, connection, proxy }`. */
  proxy: 'pigeonpost:wire:proxy',
  /** A TLS handshake finished (implicit TLS or STARTTLS). Message: `{ socket, protocol, cipher, servername }`. */
  tlsSecure: 'pigeonpost:wire:tls-secure',
  /** A TLS handshake failed. Message: `{ socket, error }`. */
  tlsError: 'pigeonpost:wire:tls-error',
  /** A SASL exchange finished. Message: `{ mechanism, ok, identity? }`. Credentials are never published. */
  sasl: 'pigeonpost:wire:sasl',
});

export type ChannelName = (typeof channels)[keyof typeof channels];
