export { VirtualClock } from './virtual-clock.js';
export { findPeer } from './peers.js';
export type { PeerStatus, FindPeerOptions } from './peers.js';
export { createSessionHarness, runTranscript } from './session-harness.js';
export type {
  HarnessSession,
  SessionHarness,
  SessionHarnessEvent,
  SessionHarnessOptions,
  TranscriptTarget,
  TranscriptOptions,
  TranscriptResult,
} from './session-harness.js';
export { dataScanWasmActive, setDataScanWasm } from '../codec/data-scan.js';
export type { DataScanWasmOptions } from '../codec/data-scan.js';
