import { writeFileSync } from 'node:fs'
import { defineConfig } from 'vitest/config'
import type { Reporter } from 'vitest/reporters'

const report = process.env.ERRAND_TEST_REPORT

/**
 * Vitest's JSON report has no field for unhandled errors (a rejection nobody caught, an error
 * thrown after a test ended): it can say "0 failed" on a run that vitest itself fails. This
 * reporter writes them beside the report so `.ci/summary.mjs` counts each one as a failure.
 */
const unhandledErrors: Reporter = {
  onTestRunEnd(_modules, errors) {
    if (!report) return
    const list = errors.map((e) => {
      const err = e as { name?: unknown; message?: unknown; stack?: unknown }
      return {
        name: String(err.name ?? 'Error'),
        message: String(err.message ?? e),
        stack: String(err.stack ?? ''),
      }
    })
    writeFileSync(`${report}.unhandled.json`, JSON.stringify(list))
  },
}

// Fault tests restart the shared servers (Redis, PostgreSQL, RabbitMQ) or cut connections, so they
// run after every other test, one file at a time, where they cannot disturb a neighbour.
export default defineConfig({
  // Run workspace packages from their TypeScript sources (no build needed). Tests run in Vite's
  // SSR environment, which takes its conditions from `ssr.resolve`, not `resolve`.
  resolve: { conditions: ['source'] },
  ssr: { resolve: { conditions: ['source'], externalConditions: ['source'] } },
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    maxWorkers: 2,
    reporters: report ? ['default', 'json', unhandledErrors] : ['default'],
    outputFile: report ? { json: report } : {},
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['packages/*/test/**/*.test.ts', 'examples/*/test/**/*.test.ts'],
          exclude: [
            'packages/*/test/**/*.fault.test.ts',
            'examples/*/test/**/*.fault.test.ts',
            '**/node_modules/**',
          ],
          typecheck: {
            enabled: true,
            include: ['packages/*/test/**/*.test-d.ts'],
            tsconfig: './tsconfig.typetest.json',
          },
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'fault',
          include: ['packages/*/test/**/*.fault.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
})
