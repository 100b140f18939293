// The Maildir backend's public names (re-exported by src/index.ts).
export { createMaildirStore } from './store.js';
export type { MaildirReadMode, MaildirStoreOptions } from './store.js';
