import type { z } from 'zod'
import type { appOptionsSchema } from './app-options.js'
import type { Broker } from './broker.js'
import { Dispatcher } from './dispatcher.js'
import { type EventsRuntime, eventsRuntime } from './events-runtime.js'
import type { QueueLimits } from './limits.js'
import type { Logger } from './logger.js'
import { resolveBroker, resolveResultBackend } from './resolve-adapter.js'
import type { ResultBackend } from './result-backend.js'
import { localResultsWarning } from './split-results.js'
import type { AnyTask } from './task.js'

type AppConfig = z.output<typeof appOptionsSchema>

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

/**
 * Connect the app's broker and backend (the backend's failure closes the broker again) and build
 * the runtime on them. Fills `waitHints` with what a `get()` timeout can say about this setup.
 */
export async function openRuntime(
  options: AppConfig,
  tasks: ReadonlyMap<string, AnyTask>,
  logger: Logger,
  waitHints: { localResults: boolean },
): Promise<Runtime> {
  const lookup = { adapters: options.adapters, logger }
  const broker = await resolveBroker(options.broker, lookup)
  const backend =
    options.backend === undefined ? undefined : await resolveResultBackend(options.backend, lookup)
  await broker.connect()
  try {
    await backend?.connect()
  } catch (err) {
    await broker.close().catch(() => {})
    throw err
  }
  const warning = localResultsWarning(broker, backend)
  waitHints.localResults = warning !== undefined
  if (warning) logger.warn(warning, { broker: broker.name, backend: backend?.name })
  const dispatcher = new Dispatcher(broker, backend, tasks, {
    defaultQueue: options.defaultQueue,
    resultTtlMs: options.resultTtlMs,
    publishChunk: 1000,
    instrumentation: options.instrumentation,
  })
  return {
    broker,
    backend,
    dispatcher,
    tasks,
    logger,
    defaultQueue: options.defaultQueue,
    resultTtlMs: options.resultTtlMs,
    maxEnvelopeBytes: options.maxMessageBytes,
    queueLimits: new Map(Object.entries(options.queues) as [string, QueueLimits][]),
    events: eventsRuntime(backend, options.events, logger),
  }
}
