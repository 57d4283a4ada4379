import { defineConfig } from 'vitest/config';

// Lab tests build network namespaces and run real processes on a 2-core machine:
// files run one at a time so that they neither collide nor starve each other. Every run builds
// first (test/global-setup.ts): child processes run dist/ and the addon, never a stale build.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
