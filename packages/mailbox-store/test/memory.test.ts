import { VirtualClock } from '@pigeonpost/wire/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../src/index.js';
import { defineStoreConformance } from '../src/testing/index.js';

defineStoreConformance(
  {
    name: 'memory',
    create: ({ limits }) => {
      const clock = new VirtualClock(Date.UTC(2025, 0, 1));
      const store = createMemoryStore({ clock, ...(limits === undefined ? {} : { limits }) });
      return Promise.resolve({ store, clock, cleanup: () => Promise.resolve() });
    },
  },
  { describe, it, expect, beforeEach, afterEach },
);
