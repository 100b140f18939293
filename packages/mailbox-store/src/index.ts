// Curated public surface of @pigeonpost/mailbox-store (backends are added as they land).
export { HIERARCHY_DELIMITER, SYSTEM_FLAGS } from './types.js';
export type {
  SystemFlag,
  SpecialUse,
  MessageSource,
  ByteRange,
  MailboxListEntry,
  MailboxStatus,
  CreateMailboxOptions,
  MessageMeta,
  AppendOptions,
  AppendResult,
  FlagChangeMode,
  FlagChange,
  FlagChangeResult,
  CopyResult,
  MailboxChanges,
  MailboxHandle,
  OpenMailboxOptions,
  StoreChange,
  StoreWatch,
  WatchOptions,
  QuotaLimits,
  QuotaUsage,
  Pop3Message,
  Pop3Maildrop,
  CreateUserOptions,
  UserMailStore,
  DeliveryRequest,
  MailStore,
} from './types.js';
export { StoreError } from './errors.js';
export type { StoreErrorCode } from './errors.js';
export { defaultStoreLimits, resolveStoreLimits } from './limits.js';
export type { StoreLimits } from './limits.js';
export { normalizeMailboxName, normalizeFlag, isSameMailbox, parentNames } from './names.js';
export { normalizeUserName } from './users.js';

// Building blocks shared by every backend.
export {
  flagKey,
  hasFlag,
  isSeen,
  isDeleted,
  isKeyword,
  sameFlags,
  normalizeFlags,
  applyFlagChange,
  withSeen,
  passesUnchangedSince,
  planFlagChange,
  MailboxKeywords,
} from './flags.js';
export type { PlannedFlagUpdate } from './flags.js';
export { MessageSizeCounter, rfc822Size, sourceChunks, meterMessageSource, readMessageSource } from './source.js';
export type { MessageSizes, MeteredSource } from './source.js';
export { ChangeHub } from './notifications.js';
export type { ChangeHubOptions } from './notifications.js';
export { computeStructure, StructureCache } from './structure.js';
export type { MessageStructure, StructureCacheOptions } from './structure.js';
export { InProcessMaildropLocks, pop3Uidl, topOfMessage, createPop3Maildrop } from './pop3.js';
export type { MaildropLock, MaildropLocker, Pop3Source } from './pop3.js';

// Backends.
export { createMemoryStore } from './memory/index.js';
export type { MemoryStoreOptions } from './memory/index.js';
export { createMaildirStore } from './maildir/index.js';
export type { MaildirReadMode, MaildirStoreOptions } from './maildir/index.js';
