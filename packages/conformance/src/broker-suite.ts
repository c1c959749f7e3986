import { describe } from 'vitest'
import { registerAdminTests } from './broker-admin-tests.js'
import { registerBasicsTests } from './broker-basics-tests.js'
import { registerDeliveryTests } from './broker-delivery-tests.js'
import { registerFlowTests } from './broker-flow-tests.js'
import { registerLostTests } from './broker-lost-tests.js'
import { registerOutageTests } from './broker-outage-tests.js'
import { registerRedeliveryTests } from './broker-redelivery-tests.js'
import { registerScheduleTests } from './broker-schedule-tests.js'
import { type BrokerSuiteContext, brokerHarness, outageHarness, registrar } from './harness.js'
import type { BrokerConformanceOptions } from './options.js'

/**
 * Registers the broker conformance suite (vitest `describe`/`it`) for one broker variant. Each
 * test opens fresh instances from `options.factory` (connecting and closing them itself) on
 * queues named `${queuePrefix}-<unique>`, and empties those queues afterwards; nothing else on
 * the server is touched. Capabilities are read from the instances: where one is off, the test
 * checks that asking for it is refused with `ERR_NOT_SUPPORTED`.
 *
 * Defaults: `timeScale` 1, `queuePrefix` `conf`, `stressMessages` 10 000. With `outage` (a broker
 * whose way to the store can be cut), the failure tests run too.
 *
 * @example
 * ```ts
 * // test/conformance.test.ts
 * import { runBrokerConformance } from '@errand/conformance'
 * runBrokerConformance({
 *   name: 'redis',
 *   factory: () => new RedisBroker({ url: process.env.REDIS_URL }),
 *   skip: { 'priorities: higher first, or refused when maxPriority is 0': 'why, in a sentence' },
 * })
 * ```
 */
export function runBrokerConformance(options: BrokerConformanceOptions): void {
  const timeScale = options.timeScale ?? 1
  describe(`broker conformance: ${options.name}`, () => {
    const { register, finish } = registrar(options.skip, 30_000 * timeScale)
    const context: BrokerSuiteContext = {
      test: register,
      h: brokerHarness(options.factory, timeScale, options.queuePrefix ?? 'conf'),
      stressMessages: options.stressMessages ?? 10_000,
      soon: 5_000 * timeScale,
      outage: options.outage === undefined ? undefined : outageHarness(options.outage, timeScale),
    }
    registerBasicsTests(context)
    registerDeliveryTests(context)
    registerRedeliveryTests(context)
    registerLostTests(context)
    registerFlowTests(context)
    registerScheduleTests(context)
    registerAdminTests(context)
    registerOutageTests(context)
    finish()
  })
}
