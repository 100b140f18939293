export { startTestDnsServer } from './dns-server.js';
export type { TestDnsRecord, TestDnsBehaviour, TestDnsQuery, StartTestDnsServerOptions, TestDnsServer } from './dns-server.js';
