import type { DeadLetterReason } from './broker.js'
import type { SerializedError } from './errors.js'

/** Every kind of {@link TaskEvent}, in the order a task usually meets them. */
export const TASK_EVENT_TYPES = [
  'sent',
  'started',
  'progress',
  'succeeded',
  'failed',
  'dead-lettered',
  'canceled',
] as const

/** What happened to a task. */
export type TaskEventType = (typeof TASK_EVENT_TYPES)[number]

/** True when `value` names a {@link TaskEventType}. */
export function isTaskEventType(value: unknown): value is TaskEventType {
  return (TASK_EVENT_TYPES as readonly unknown[]).includes(value)
}

/**
 * An error as events carry it: what an operator needs to see on one line. No stack (events are
 * kept in a shared, bounded stream that many readers tail; the stack stays in the task record).
 */
export interface EventError {
  readonly name: string
  readonly message: string
  readonly code?: string
}

/** The most of an error message an event keeps (longer ones are cut and end in `…`). */
export const EVENT_ERROR_MESSAGE_MAX = 1_000

/** The {@link EventError} of a serialized error. */
export function eventError(error: SerializedError): EventError {
  const message =
    error.message.length > EVENT_ERROR_MESSAGE_MAX
      ? `${error.message.slice(0, EVENT_ERROR_MESSAGE_MAX - 1)}…`
      : error.message
  return error.code === undefined
    ? { name: error.name, message }
    : { name: error.name, message, code: error.code }
}

/** Fields every event has. JSON-safe: events cross processes through the result backend. */
export interface TaskEventBase {
  readonly type: TaskEventType
  /** The task id. */
  readonly id: string
  /** The task name. */
  readonly task: string
  readonly queue: string
  /** 1 on the first run; as `ctx.attempt`. On `sent`: 1. */
  readonly attempt: number
  /** When it happened (ms since the epoch, the emitting process's clock). */
  readonly at: number
  /** First task of the workflow (the task itself when it started one). */
  readonly root?: string
  /** The task whose outcome started this one. */
  readonly parent?: string
}

/** A producer published the task (`app.send`, `sendMany`). */
export interface SentEvent extends TaskEventBase {
  readonly type: 'sent'
  /** Not to run before this time, when delayed. */
  readonly eta?: number
}

/** A worker started the handler. */
export interface StartedEvent extends TaskEventBase {
  readonly type: 'started'
}

/** The handler reported progress (`ctx.progress(value)`), throttled per task. */
export interface ProgressEvent extends TaskEventBase {
  readonly type: 'progress'
  /** The value passed to `ctx.progress` (a number or small JSON). */
  readonly value: unknown
}

/** The handler returned and its outcome was stored. */
export interface SucceededEvent extends TaskEventBase {
  readonly type: 'succeeded'
  /** Time the handler ran, ms. */
  readonly durationMs: number
}

/** An attempt failed: retried (`willRetry`) or final. */
export interface FailedEvent extends TaskEventBase {
  readonly type: 'failed'
  readonly error: EventError
  /** True when another attempt is scheduled (after `retryDelayMs`); false when the failure is final. */
  readonly willRetry: boolean
  readonly retryDelayMs?: number
  /** Time the handler ran, ms (absent when it never ran: unknown task, invalid input, expired…). */
  readonly durationMs?: number
}

/** The message went to the dead letters. */
export interface DeadLetteredEvent extends TaskEventBase {
  readonly type: 'dead-lettered'
  readonly reason: DeadLetterReason
  readonly error?: EventError
}

/** A worker found the task canceled (queued or running) and dropped it. */
export interface CanceledEvent extends TaskEventBase {
  readonly type: 'canceled'
}

/** One lifecycle event of a task. Switch on `type`. */
export type TaskEvent =
  | SentEvent
  | StartedEvent
  | ProgressEvent
  | SucceededEvent
  | FailedEvent
  | DeadLetteredEvent
  | CanceledEvent

/**
 * Put in a subscription's stream where events were dropped because its reader fell behind (see
 * {@link EventsOptions.bufferSize}): `count` events between the previous item and the next.
 */
export interface EventsDropped {
  readonly type: 'dropped'
  readonly count: number
  readonly at: number
}

/** What a subscription yields. */
export type EventStreamItem = TaskEvent | EventsDropped

/** Which events a subscription wants. Absent or empty = all. */
export interface EventFilter {
  readonly queues?: readonly string[] | undefined
  readonly types?: readonly TaskEventType[] | undefined
}

/** True when `event` passes `filter`. */
export function matchesFilter(event: TaskEvent, filter: EventFilter): boolean {
  if (filter.queues?.length && !filter.queues.includes(event.queue)) return false
  if (filter.types?.length && !filter.types.includes(event.type)) return false
  return true
}

/** A live subscription held by a result backend. */
export interface BackendEventSubscription {
  /** Stop delivering; resolves once no further call of `onEvent` can happen. */
  close(): Promise<void>
}

/**
 * The optional events capability of a result backend (`capabilities.events`). Events are
 * observability, not state: a store may trim them at any time beyond its retention.
 *
 * Guarantees a backend with the capability gives (checked by `@errand/conformance`):
 * - events of one `publishEvents` call, and of successive calls from one instance, reach every
 *   subscriber in that order (so one task's events, which one process emits, stay in order);
 * - a subscription sees every event published after `subscribeEvents` resolved and before it is
 *   closed, from any instance on the same store;
 * - `recentEvents` answers the last events of a queue, oldest first, bounded by the store's
 *   retention (older ones are trimmed).
 */
export interface EventStore {
  /** Store and broadcast events (a batch; may span queues). */
  publishEvents(events: readonly TaskEvent[]): Promise<void>
  /** Call `onEvent` for each event that passes `filter`, from now on. Resolves once live. */
  subscribeEvents(filter: EventFilter, onEvent: (event: TaskEvent) => void): Promise<BackendEventSubscription>
  /** The last `limit` events of `queue`, oldest first. */
  recentEvents(queue: string, limit: number): Promise<TaskEvent[]>
}

/** A result backend that stores events. */
export function hasEventStore<B extends { readonly capabilities: { readonly events?: boolean } }>(
  backend: B | undefined,
): backend is B & EventStore {
  return (
    backend !== undefined &&
    backend.capabilities.events === true &&
    typeof (backend as Partial<EventStore>).publishEvents === 'function' &&
    typeof (backend as Partial<EventStore>).subscribeEvents === 'function' &&
    typeof (backend as Partial<EventStore>).recentEvents === 'function'
  )
}

/** Options of `app.events()`. */
export interface EventsOptions extends EventFilter {
  /** Ends the subscription when aborted (the iterator then returns). */
  readonly signal?: AbortSignal
  /**
   * Events held for a reader that is behind. Past it the oldest are dropped and a
   * {@link EventsDropped} marker says how many, so a slow reader never grows memory without
   * bound and never stalls the store's connection (which other subscribers share). Default 1000.
   */
  readonly bufferSize?: number
}

/** Parse one event read back from a store; undefined when it is not one. */
export function parseTaskEvent(json: string): TaskEvent | undefined {
  try {
    const value = JSON.parse(json) as TaskEvent | null
    if (
      typeof value !== 'object' ||
      value === null ||
      !isTaskEventType(value.type) ||
      typeof value.id !== 'string' ||
      typeof value.queue !== 'string'
    )
      return undefined
    return value
  } catch {
    return undefined
  }
}
