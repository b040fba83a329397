import { defineConfig } from 'vitest/config';

// Two projects: unit tests need nothing; integration tests (*.int.test.ts) share
// one real control plane per run, started by the global setup.
export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.int.test.ts'],
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/**/*.int.test.ts'],
          globalSetup: ['test/support/global-setup.ts'],
          // One control plane, and controllers that watch every namespace: two files running at
          // once would have two operators reconciling each other's invitations.
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
