// The shared conformance suite against the Maildir backend (temp folders, removed after each test).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMaildirStore } from '../src/maildir/index.js';
import { defineStoreConformance } from '../src/testing/conformance.js';

defineStoreConformance(
  {
    name: 'maildir',
    capabilities: { limits: true, persistent: true, largeMessages: true },
    async create(options) {
      const root = await mkdtemp(join(tmpdir(), 'pp-maildir-conf-'));
      // The system clock: dot-lock waits run on it (a virtual clock would never fire them).
      const make = () => createMaildirStore({ root, fsync: false, ...(options.limits ? { limits: options.limits } : {}) });
      let store = make();
      return {
        get store() {
          return store;
        },
        async reopen() {
          await store.close();
          store = make();
          return store;
        },
        async cleanup() {
          await rm(root, { recursive: true, force: true });
        },
      };
    },
  },
  { describe, it, expect: expect as never, beforeEach, afterEach },
);
