// Curated public surface of @pigeonpost/wire (filled in as parts land).
export { PigeonpostError, FramingError, TlsError, SaslError, ProxyProtocolError, ListenerError, CertificateError } from './errors.js';
export type { ProtocolSide, ProtocolReply, PigeonpostErrorOptions } from './errors.js';
export { defaultLimits, resolveLimits, PROXY_V1_MAX_HEADER_BYTES } from './limits.js';
export type {
  WireLimits,
  LineFramerLimits,
  DataDecoderLimits,
  LiteralLimits,
  ProxyProtocolLimits,
  ListenerLimits,
  SaslLimits,
  SaslCredentialLimits,
  SaslServerLimits,
  PasswordHashLimits,
} from './limits.js';
export { silentLogger } from './logger.js';
export type { Logger, LogFn } from './logger.js';
export type { Clock, TimerHandle } from './clock.js';
export { Secret } from './secret.js';
export { channels } from './diagnostics.js';
export type { ChannelName } from './diagnostics.js';
export { decodeProxyHeader, encodeProxyHeaderV1, encodeProxyHeaderV2, PROXY_V2_SIGNATURE, ProxyTlvType } from './codec/proxy-protocol.js';
export type {
  ProxyHeader,
  ProxyDecodeResult,
  ProxyDecodeOptions,
  ProxyHeaderInit,
  ProxyAddresses,
  ProxyInetAddresses,
  ProxyUnixAddresses,
  ProxyTlv,
  ProxySslInfo,
  ProxyAddressFamily,
  ProxyTransport,
} from './codec/proxy-protocol.js';
export { LineFramer, frameLines } from './codec/line-framer.js';
export type {
  LineFramerOptions,
  LineFramerEvent,
  LineEvent,
  LiteralEvent,
  LiteralDataEvent,
  LiteralEndEvent,
  LineErrorEvent,
  LineEnding,
  LiteralMode,
} from './codec/line-framer.js';
export { DataDecoder, DataEncoder, decodeData, encodeData, encodeDataStream } from './codec/data-codec.js';
export type { DataDecoderOptions, DataDecoderEvent, DataChunkEvent, DataErrorEvent, DataEndEvent, DecodedData } from './codec/data-codec.js';
export type { FramingErrorCode } from './codec/framing-errors.js';
// SASL: src/sasl/index.ts is the curated list of its public names.
export * from './sasl/index.js';
