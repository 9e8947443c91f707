import { defineConfig } from 'vitest/config'

// Two projects: fast pure unit tests next to the code, and integration / end-to-end tests that start real
// processes (nats-server, git http-backend, TLS servers) and therefore get longer timeouts.
export default defineConfig({
  test: {
    // dist/ is built once here, never by a test file while other files run processes from it
    globalSetup: ['./test/helpers/global-build.ts'],
    projects: [
      {
        test: {
          name: 'unit',
          include: [
            'reconciler/**/*.test.ts',
            'egress/**/*.test.ts',
            'schemas/**/*.test.ts',
            'cli/**/*.test.ts',
            'lib/**/*.test.ts',
            'test/unit/**/*.test.ts',
          ],
          testTimeout: 20_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/e2e/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          // integration tests start servers on random ports; run files in parallel but not too many on 2 cores
          maxWorkers: 2,
          // unit tests run first, then this group with its own worker limit
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          // fault tests start 3-node nats-server clusters and kill processes: one file at a time, after the rest
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 90_000,
          maxWorkers: 1,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
})
