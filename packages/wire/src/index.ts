// Curated public surface of @pigeonpost/wire (filled in as parts land).
export { PigeonpostError, FramingError, TlsError, SaslError, ProxyProtocolError, ListenerError, CertificateError } from './errors.js';
export type { ProtocolSide, ProtocolReply, PigeonpostErrorOptions } from './errors.js';
export { defaultLimits, resolveLimits, PROXY_V1_MAX_HEADER_BYTES } from './limits.js';
export type { WireLimits, LineFramerLimits, DataDecoderLimits, LiteralLimits, ProxyProtocolLimits, ListenerLimits, SaslLimits } from './limits.js';
export { silentLogger } from './logger.js';
export type { Logger, LogFn } from './logger.js';
export type { Clock, TimerHandle } from './clock.js';
export { Secret } from './secret.js';
export { channels } from './diagnostics.js';
export type { ChannelName } from './diagnostics.js';
