import { describe } from 'vitest'
import { registerAppBasicTests } from './app-basic-tests.js'
import { registerAppCanvasExtrasTests, registerAppReplaceTests } from './app-canvas-extras-tests.js'
import { registerAppControlTests } from './app-control-tests.js'
import { registerAppFailureTests } from './app-failure-tests.js'
import { registerAppFlowTests } from './app-flow-tests.js'
import { type AppSuiteContext, appHarness } from './app-harness.js'
import { registerAppLifecycleTests } from './app-lifecycle-tests.js'
import { registerAppSendFlowTests } from './app-send-flow-tests.js'
import { registerAppTimingTests } from './app-timing-tests.js'
import { registerAppWorkflowTests } from './app-workflow-tests.js'
import { registrar } from './harness.js'
import type { AppConformanceOptions } from './options.js'

/**
 * Registers the end-to-end suite for one broker + result backend pair: tasks, retries, dead
 * letters, delays, priorities, shutdown, redelivery, workflows (chain, group, chord, nesting,
 * failure paths, chord exactly-once under two workers), schedules, dedup and cancellation, flow
 * control (rate limits, group concurrency, pause, expiry, dedup modes, ctx.send lineage).
 * Each test creates its own apps (fresh connections from the factories) on unique queues and
 * empties those queues afterwards.
 *
 * @example
 * ```ts
 * runAppConformance({
 *   name: 'redis',
 *   broker: () => new RedisBroker({ url }),
 *   backend: () => new RedisResultBackend({ url }),
 * })
 * ```
 */
export function runAppConformance(options: AppConformanceOptions): void {
  const timeScale = options.timeScale ?? 1
  describe(`app conformance: ${options.name}`, () => {
    const { register, finish } = registrar(options.skip, 60_000 * timeScale)
    const context: AppSuiteContext = {
      test: register,
      h: appHarness(options.broker, options.backend, timeScale, options.queuePrefix ?? 'app'),
      soon: 10_000 * timeScale,
    }
    registerAppBasicTests(context)
    registerAppFailureTests(context)
    registerAppTimingTests(context)
    registerAppLifecycleTests(context)
    registerAppWorkflowTests(context)
    registerAppCanvasExtrasTests(context)
    registerAppReplaceTests(context)
    registerAppControlTests(context)
    registerAppFlowTests(context)
    registerAppSendFlowTests(context)
    finish()
  })
}
