import { defineConfig } from 'vitest/config';
// Loaded first: Node 20 polyfills for vitest's reporters.
import './scripts/vitest-node20.js';

export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.ts', 'examples/*/vitest.config.ts'],
  },
});
