import type { Broker } from './broker.js'
import type { Dispatcher } from './dispatcher.js'
import type { EventsRuntime } from './events-runtime.js'
import type { QueueLimits } from './limits.js'
import type { Logger } from './logger.js'
import type { ResultBackend } from './result-backend.js'
import type { AnyTask } from './task.js'

/** What the app hands its workers and schedulers once connected. Internal. */
export interface Runtime {
  readonly broker: Broker
  readonly backend: ResultBackend | undefined
  readonly dispatcher: Dispatcher
  readonly tasks: ReadonlyMap<string, AnyTask>
  readonly logger: Logger
  readonly defaultQueue: string
  readonly resultTtlMs: number
  readonly maxEnvelopeBytes: number
  /** Rate and concurrency limits per queue (`createApp({ queues })`). */
  readonly queueLimits: ReadonlyMap<string, QueueLimits>
  /** Where task events are written and read. */
  readonly events: EventsRuntime
}
