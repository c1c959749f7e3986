import { z } from 'zod'
import type { Adapter } from './adapter.js'
import type { Broker } from './broker.js'
import { DEFAULT_MAX_ENVELOPE_BYTES } from './envelope.js'
import type { Instrumentation } from './instrumentation.js'
import { queueLimitsSchema } from './limits.js'
import type { Logger } from './logger.js'
import type { ResultBackend } from './result-backend.js'
import type { AnyTask } from './task.js'

// The options of `createApp`, checked at run time (zod, unknown keys refused); apart from app.ts
// so the App class reads as what it does.

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null
const brokerLike = z.custom<Broker>(
  (v) =>
    isObject(v) &&
    typeof v.publish === 'function' &&
    typeof v.consume === 'function' &&
    isObject(v.capabilities),
  { message: 'expected a URL string or a Broker instance' },
)
const backendLike = z.custom<ResultBackend>(
  (v) => isObject(v) && typeof v.setState === 'function' && typeof v.waitFor === 'function',
  { message: 'expected a URL string or a ResultBackend instance' },
)
const taskLike = z.custom<AnyTask>(
  (v) => isObject(v) && typeof v.name === 'string' && typeof v.handler === 'function',
  {
    message: 'expected a task made by defineTask()',
  },
)

const adapterLike = z.custom<Adapter>(
  (v) => isObject(v) && typeof v.name === 'string' && Array.isArray(v.schemes),
  {
    message: 'expected an adapter { name, schemes, createBroker?, createResultBackend? } (see defineAdapter)',
  },
)

const instrumentationLike = z.custom<Instrumentation>(
  (v) =>
    isObject(v) &&
    (v.onPublish === undefined || typeof v.onPublish === 'function') &&
    (v.wrapRun === undefined || typeof v.wrapRun === 'function'),
  { message: 'expected an instrumentation { onPublish?, wrapRun? }' },
)

/** Options of {@link createApp}. Unknown keys are refused, naming the key. */
export const appOptionsSchema = z
  .object({
    /** A URL (`memory://`, `redis://…`, `amqp://…`, `sqs://…`, `postgres://…`) or a Broker. */
    broker: z.union([z.string().min(1), brokerLike]),
    /** Where results, groups, dedup keys and schedules live: a URL or a ResultBackend. Optional. */
    backend: z.union([z.string().min(1), backendLike]).optional(),
    /** Tasks this app sends and runs. */
    tasks: z.array(taskLike).default([]),
    /**
     * Limits on everything run from a queue, across every worker: `{ emails: { rateLimit: { max:
     * 100, perMs: 60_000 } } }` (see {@link QueueLimits}). Needs a backend with flow control.
     */
    queues: z.record(z.string().min(1).max(200), queueLimitsSchema).default({}),
    /** Queue for tasks that name none. Default `default`. */
    defaultQueue: z.string().min(1).max(200).default('default'),
    /** How long results and workflow bookkeeping are kept. Default one day. */
    resultTtlMs: z.number().int().positive().default(86_400_000),
    /** Largest envelope a worker decodes; bigger ones are dead-lettered. Default 10 MiB. */
    maxMessageBytes: z.number().int().positive().default(DEFAULT_MAX_ENVELOPE_BYTES),
    /**
     * Store adapters for schemes Errand does not ship (`mysql://` from a third-party package),
     * checked before the built-in ones. See {@link Adapter}.
     */
    adapters: z.array(adapterLike).default([]),
    /**
     * Emit task events (`sent` from send, `started`, `progress`, `succeeded`, `failed`, …
     * from workers) to the result backend, for `app.events()` and `errand events`. Default true;
     * false turns off writing them from this app (reading other apps' events still works).
     */
    events: z.boolean().default(true),
    /**
     * Tracing and metrics hooks, e.g. `errandOtel()` from `@errand/otel`. Default none (then
     * publishing and running pay one `length === 0` check each).
     */
    instrumentation: z.array(instrumentationLike).default([]),
    /** Where logs go (credentials are masked). Default: warnings and errors to the console. */
    logger: z
      .custom<Logger>((v) => isObject(v) && typeof v.warn === 'function' && typeof v.error === 'function', {
        message: 'expected a logger with debug/info/warn/error',
      })
      .optional(),
  })
  .strict()

/** @see appOptionsSchema */
export type AppOptions = z.input<typeof appOptionsSchema>
