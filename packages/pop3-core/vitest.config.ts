import { defineProject } from 'vitest/config';
// Node 20 polyfills for vitest's reporters, also when the package is tested on its own.
import '../../scripts/vitest-node20.js';

export default defineProject({
  test: {
    name: 'pop3-core',
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
  },
});
