export { VirtualClock } from './virtual-clock.js';
export { findPeer } from './peers.js';
export type { PeerStatus, FindPeerOptions } from './peers.js';
