import type { DeadLetterReason } from './broker.js'
import type { Envelope } from './envelope.js'
import { InvalidOptionError, NotSupportedError, type SerializedError } from './errors.js'
import {
  type EventStore,
  type EventsOptions,
  eventError,
  hasEventStore,
  isTaskEventType,
  type TaskEvent,
  type TaskEventBase,
  type TaskEventType,
} from './events.js'
import { EventSink } from './events-sink.js'
import { DEFAULT_EVENT_BUFFER, EventStream } from './events-stream.js'
import type { Logger } from './logger.js'
import { MemoryEvents } from './memory/memory-events.js'
import type { ResultBackend } from './result-backend.js'

/** How an app's events flow once connected. Internal. */
export interface EventsRuntime {
  /** Where `app.events()` reads; undefined when the backend cannot store events. */
  readonly store: EventStore | undefined
  /** Where workers and `send` write; undefined with `events: false` or without a store. */
  readonly sink: EventSink | undefined
  /** Why `app.events()` is refused, when it is. */
  readonly refusal: string | undefined
}

/**
 * Pick where events go: the result backend when it has the events capability; with no backend at
 * all, a private in-process store (this app's own workers and sends only); a backend without the
 * capability: none (`app.events()` is refused, saying what is available).
 */
export function eventsRuntime(
  backend: ResultBackend | undefined,
  enabled: boolean,
  logger: Logger,
): EventsRuntime {
  let store: EventStore | undefined
  let refusal: string | undefined
  if (backend === undefined) store = new MemoryEvents()
  else if (hasEventStore(backend)) store = backend
  else
    refusal =
      `app.events() needs a result backend with the events capability; "${backend.name}" has none. ` +
      'Events are stored by the memory://, redis://, postgres:// and sqlite:// backends. Inside a worker process, ' +
      'the worker hooks (onStart, onSuccess, onFailure, onRetry, onDeadLetter) see the same lifecycle'
  return { store, sink: enabled && store ? new EventSink(store, logger) : undefined, refusal }
}

/** Open a subscription for `app.events()`. */
export async function openEvents(
  rt: EventsRuntime,
  options: EventsOptions,
  register: (stream: EventStream) => () => void,
): Promise<EventStream> {
  checkEventsOptions(options)
  if (rt.store === undefined) throw new NotSupportedError(rt.refusal ?? 'this app cannot read events')
  const stream = new EventStream(options.bufferSize ?? DEFAULT_EVENT_BUFFER, options.signal)
  stream.onClosed(register(stream))
  if (options.signal?.aborted) {
    await stream.close()
    return stream
  }
  const subscription = await rt.store.subscribeEvents(
    { queues: options.queues, types: options.types },
    (event) => stream.push(event),
  )
  stream.attach(subscription)
  return stream
}

/** `app.recentEvents()`. */
export async function recentEvents(rt: EventsRuntime, queue: string, limit: number): Promise<TaskEvent[]> {
  if (typeof queue !== 'string' || queue === '')
    throw new InvalidOptionError('queue', 'expected a queue name')
  if (!(Number.isInteger(limit) && limit >= 1 && limit <= 10_000)) {
    throw new InvalidOptionError('limit', `expected an integer in [1, 10000], got ${String(limit)}`)
  }
  if (rt.store === undefined) throw new NotSupportedError(rt.refusal ?? 'this app cannot read events')
  return rt.store.recentEvents(queue, limit)
}

function checkEventsOptions(options: EventsOptions): void {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('events', 'expected an options object')
  const { queues, types, bufferSize } = options
  if (queues !== undefined && !(Array.isArray(queues) && queues.every((q) => typeof q === 'string' && q))) {
    throw new InvalidOptionError('queues', 'expected an array of queue names')
  }
  if (types !== undefined && !(Array.isArray(types) && types.every(isTaskEventType))) {
    throw new InvalidOptionError(
      'types',
      'expected an array of sent, started, progress, succeeded, failed, dead-lettered, canceled',
    )
  }
  if (bufferSize !== undefined && !(Number.isInteger(bufferSize) && bufferSize >= 1)) {
    throw new InvalidOptionError('bufferSize', `expected an integer >= 1, got ${String(bufferSize)}`)
  }
}

/** Fields every event of `env` shares. */
export function eventBase<T extends TaskEventType>(
  type: T,
  env: Envelope,
  attempt: number,
): TaskEventBase & { type: T } {
  const base: { -readonly [K in keyof TaskEventBase]: TaskEventBase[K] } & { type: T } = {
    type,
    id: env.id,
    task: env.task,
    queue: env.queue,
    attempt,
    at: Date.now(),
  }
  if (env.root !== undefined) base.root = env.root
  if (env.parent !== undefined) base.parent = env.parent
  return base
}

/**
 * The worker's side of the event model: one method per transition, each a single object handed
 * to the sink (no await). The worker's hooks are called at the same points with the same facts.
 */
export class WorkerEvents {
  constructor(private readonly sink: EventSink) {}

  started(env: Envelope, attempt: number): void {
    this.sink.emit(eventBase('started', env, attempt))
  }

  progress(env: Envelope, attempt: number, value: unknown): void {
    this.sink.emit({ ...eventBase('progress', env, attempt), value })
  }

  succeeded(env: Envelope, attempt: number, startedAt: number): void {
    // One object: the base with the duration added (the fields in the same order as a spread).
    const event = eventBase('succeeded', env, attempt) as TaskEventBase & {
      type: 'succeeded'
      durationMs: number
    }
    event.durationMs = event.at - startedAt
    this.sink.emit(event)
  }

  failed(
    env: Envelope,
    attempt: number,
    error: SerializedError,
    retryDelayMs: number | undefined,
    startedAt: number | undefined,
  ): void {
    const base = eventBase('failed', env, attempt)
    const event: TaskEvent = {
      ...base,
      error: eventError(error),
      willRetry: retryDelayMs !== undefined,
      ...(retryDelayMs !== undefined && { retryDelayMs }),
      ...(startedAt !== undefined && { durationMs: base.at - startedAt }),
    }
    this.sink.emit(event)
  }

  deadLettered(env: Envelope, attempt: number, reason: DeadLetterReason, error: SerializedError): void {
    this.sink.emit({ ...eventBase('dead-lettered', env, attempt), reason, error: eventError(error) })
  }

  canceled(env: Envelope, attempt: number): void {
    this.sink.emit(eventBase('canceled', env, attempt))
  }
}

/** `sent` events for envelopes a producer just published. */
export function emitSent(sink: EventSink, envelopes: readonly Envelope[]): void {
  for (const env of envelopes) {
    const event = eventBase('sent', env, env.attempt)
    sink.emit(env.eta === undefined ? event : { ...event, eta: env.eta })
  }
}
