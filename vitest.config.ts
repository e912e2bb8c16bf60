import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Most files spend their time waiting on child processes, servers, stores and timers: on
    // 2 cores two at once halve the suite's time (Vitest's default runs one there).
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
