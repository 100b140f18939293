export { createMemoryStore } from './store.js';
export type { MemoryStoreOptions } from './store.js';
