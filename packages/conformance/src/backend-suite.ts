import { describe } from 'vitest'
import { registerEventTests } from './backend-event-tests.js'
import { registerFlowTests } from './backend-flow-tests.js'
import { registerGroupTests } from './backend-group-tests.js'
import { registerStateTests } from './backend-state-tests.js'
import { registerWaitTests } from './backend-wait-tests.js'
import { type BackendSuiteContext, backendHarness, registrar } from './harness.js'
import type { ResultBackendConformanceOptions } from './options.js'

/**
 * Registers the result backend conformance suite (vitest `describe`/`it`) for one backend
 * variant. Each test opens fresh instances from `options.factory` (two where a test needs a
 * second connection), connects and closes them itself, and uses unique ids and keys, so the
 * factory must not wipe anything.
 *
 * Defaults: `timeScale` 1.
 *
 * @example
 * ```ts
 * import { runResultBackendConformance } from '@errand/conformance'
 * runResultBackendConformance({ name: 'redis', factory: () => new RedisResultBackend({ url }) })
 * ```
 */
export function runResultBackendConformance(options: ResultBackendConformanceOptions): void {
  const timeScale = options.timeScale ?? 1
  describe(`result backend conformance: ${options.name}`, () => {
    const { register, finish } = registrar(options.skip, 30_000 * timeScale)
    const context: BackendSuiteContext = {
      test: register,
      h: backendHarness(options.factory, timeScale),
      soon: 5_000 * timeScale,
    }
    registerStateTests(context)
    registerWaitTests(context)
    registerGroupTests(context)
    registerEventTests(context, { retention: options.eventRetention ?? 1000 })
    registerFlowTests(context)
    finish()
  })
}
