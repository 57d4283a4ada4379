import { defineConfig } from 'vitest/config';

// Lab tests build network namespaces and run real processes on a 2-core machine:
// files run one at a time so that they neither collide nor starve each other.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
