// @pigeonpost/testkit: real peer programs for interop tests (private package).
export { startDovecot, dovecotAvailable } from './dovecot.js';
export type { StartDovecotOptions, RunningDovecot, DovecotUser, DovecotPorts, DovecotProtocol, DovecotRunAs, DovecotTlsFiles } from './dovecot.js';
export { RawImap, connectImap, imapQuote } from './raw-imap.js';
export type { RawResponse, ImapResult, RawImapOptions } from './raw-imap.js';
export { RawPop3, connectPop3 } from './raw-pop3.js';
export type { Pop3Result, RawPop3Options } from './raw-pop3.js';
export { RawSmtp, connectSmtp } from './raw-smtp.js';
export type { SmtpReply, RawSmtpOptions } from './raw-smtp.js';
export { deliverLmtp, deliverWithLda } from './delivery.js';
export type { LmtpReply, DeliverLmtpOptions, DeliverWithLdaOptions } from './delivery.js';
export { freePorts } from './ports.js';
export type { ConnectOptions } from './framed-socket.js';
export { startPostfix, postfixAvailable } from './postfix.js';
export type { StartPostfixOptions, RunningPostfix, PostfixPorts, PostfixTlsFiles, PostfixTlsLevel, PostfixRelay } from './postfix.js';
export { startDnsmasq, dnsmasqAvailable } from './dnsmasq.js';
export type { StartDnsmasqOptions, RunningDnsmasq } from './dnsmasq.js';
