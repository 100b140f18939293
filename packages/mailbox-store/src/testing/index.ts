// The conformance suite every MailStore backend must pass (imported as @pigeonpost/mailbox-store/testing).
export { defineStoreConformance } from './conformance.js';
export type {
  ConformanceSubject,
  ConformanceInstance,
  ConformanceCreateOptions,
  ConformanceCapabilities,
  ConformanceClock,
  ConformanceTestApi,
  ConformanceAssertion,
} from './conformance.js';
