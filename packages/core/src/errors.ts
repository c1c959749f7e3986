/**
 * Stable error codes. Tests and callers switch on `err.code`, never on the class or the message.
 */
export type ErrandErrorCode =
  | 'ERR_NOT_SUPPORTED'
  | 'ERR_CONNECTION'
  | 'ERR_CLOSED'
  | 'ERR_TIMEOUT'
  | 'ERR_VALIDATION'
  | 'ERR_SERIALIZATION'
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_INVALID_OPTION'
  | 'ERR_ADAPTER_NOT_INSTALLED'
  | 'ERR_UNKNOWN_TASK'
  | 'ERR_DECODE'
  | 'ERR_TASK_FAILED'
  | 'ERR_CANCELED'
  | 'ERR_RETRY'
  | 'ERR_REJECTED'
  | 'ERR_LOST'

/** Options accepted by every {@link ErrandError} constructor. */
export interface ErrandErrorOptions {
  /** The underlying error, kept as `err.cause`. */
  cause?: unknown
  /** The adapter that raised it (`redis`, `amqp`, …); prefixed to the message. */
  adapter?: string
}

/**
 * Base class of every error Errand raises on purpose. Carries a stable `code`, keeps `cause`,
 * and names the adapter in the message. Messages never contain credentials: build them with
 * {@link maskCredentials} when they include a URL.
 */
export class ErrandError extends Error {
  readonly code: ErrandErrorCode
  readonly adapter: string | undefined

  constructor(code: ErrandErrorCode, message: string, options: ErrandErrorOptions = {}) {
    super(options.adapter ? `[${options.adapter}] ${message}` : message, { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.adapter = options.adapter
  }
}

/** A store cannot do what was asked and core cannot emulate it. */
export class NotSupportedError extends ErrandError {
  constructor(message: string, options?: ErrandErrorOptions) {
    super('ERR_NOT_SUPPORTED', message, options)
  }
}

/** The store could not be reached or the connection broke. */
export class ConnectionError extends ErrandError {
  constructor(message: string, options?: ErrandErrorOptions) {
    super('ERR_CONNECTION', message, options)
  }
}

/** The broker, backend or app was used after `close()`. */
export class ClosedError extends ErrandError {
  constructor(message: string, options?: ErrandErrorOptions) {
    super('ERR_CLOSED', message, options)
  }
}

/** A wait (for a result, a connection, a task) ran out of time. */
export class TimeoutError extends ErrandError {
  constructor(message: string, options?: ErrandErrorOptions) {
    super('ERR_TIMEOUT', message, options)
  }
}

/** One issue found by schema validation: where and what. */
export interface ValidationIssue {
  /** Path of the bad field, e.g. `['items', 2, 'width']`. */
  path: readonly (string | number)[]
  message: string
}

/**
 * A value was refused: input or output failed its zod schema, a value `send` was given cannot
 * travel in the wire envelope (a function, a BigInt, a `__proto__` key, a negative priority, …),
 * or a canvas builder got something that is not a canvas. `issues` names every bad field by path.
 */
export class ValidationError extends ErrandError {
  readonly issues: readonly ValidationIssue[]

  constructor(message: string, issues: readonly ValidationIssue[], options?: ErrandErrorOptions) {
    super('ERR_VALIDATION', message, options)
    this.issues = issues
  }
}

/**
 * A task's output cannot be stored or passed on as JSON (a BigInt, a circular reference, a Map,
 * a function, …). Deterministic, so the worker does not retry it: the task fails for good and
 * its message is dead-lettered with reason `rejected`. `issues` names the bad field
 * (`output.total`).
 */
export class SerializationError extends ErrandError {
  readonly issues: readonly ValidationIssue[]

  constructor(message: string, issues: readonly ValidationIssue[], options?: ErrandErrorOptions) {
    super('ERR_SERIALIZATION', message, options)
    this.issues = issues
  }
}

/** A message is larger than the store (or the decoder) accepts. */
export class PayloadTooLargeError extends ErrandError {
  readonly size: number
  readonly limit: number

  constructor(size: number, limit: number, options?: ErrandErrorOptions) {
    super('ERR_PAYLOAD_TOO_LARGE', `message is ${size} bytes, over the limit of ${limit} bytes`, options)
    this.size = size
    this.limit = limit
  }
}

/** An option is missing, unknown or of the wrong shape. The message names the option. */
export class InvalidOptionError extends ErrandError {
  readonly option: string

  constructor(option: string, message: string, options?: ErrandErrorOptions) {
    super('ERR_INVALID_OPTION', `invalid option "${option}": ${message}`, options)
    this.option = option
  }
}

/** A URL names a store whose adapter package is not installed. */
export class AdapterNotInstalledError extends ErrandError {
  readonly packageName: string

  constructor(packageName: string, scheme: string, options?: ErrandErrorOptions) {
    super(
      'ERR_ADAPTER_NOT_INSTALLED',
      `the "${scheme}" scheme needs the package ${packageName}: install it with \`pnpm add ${packageName}\``,
      options,
    )
    this.packageName = packageName
  }
}

/** A message or signature names a task that is not registered with the app. */
export class UnknownTaskError extends ErrandError {
  readonly taskName: string

  constructor(taskName: string, options?: ErrandErrorOptions) {
    super('ERR_UNKNOWN_TASK', `no task named "${taskName}" is registered`, options)
    this.taskName = taskName
  }
}

/** Bytes from a queue are not a valid Errand envelope. */
export class DecodeError extends ErrandError {
  /**
   * The task id the message names, when it is a JSON object with a usable `id` (the version or
   * the schema was wrong): the worker records FAILURE under it so the sender's handle settles.
   */
  readonly taskId: string | undefined

  constructor(message: string, options?: ErrandErrorOptions & { readonly taskId?: string | undefined }) {
    super('ERR_DECODE', message, options)
    this.taskId = options?.taskId
  }
}

/** A serialised error as stored in results and dead letters. */
export interface SerializedError {
  name: string
  message: string
  code?: string
  stack?: string
}

/** `result.get()` found the task FAILED; `remote` is the handler's error as stored. */
export class TaskFailedError extends ErrandError {
  readonly taskId: string
  readonly remote: SerializedError

  constructor(taskId: string, remote: SerializedError) {
    super('ERR_TASK_FAILED', `task ${taskId} failed: ${remote.name}: ${remote.message}`)
    this.taskId = taskId
    this.remote = remote
  }
}

/** The task was canceled before it finished. */
export class CanceledError extends ErrandError {
  readonly taskId: string

  constructor(taskId: string) {
    super('ERR_CANCELED', `task ${taskId} was canceled`)
    this.taskId = taskId
  }
}

/**
 * Thrown from a handler to retry the task at a chosen time. Counts as an attempt; when the
 * attempts are used up the task is dead-lettered as exhausted.
 *
 * @example
 * ```ts
 * if (res.status === 429) throw new RetryTaskError({ delayMs: Number(res.headers.get('retry-after')) * 1000 })
 * ```
 */
export class RetryTaskError extends ErrandError {
  readonly delayMs: number | undefined

  constructor(options: { delayMs?: number; message?: string; cause?: unknown } = {}) {
    super('ERR_RETRY', options.message ?? 'task asked to be retried', { cause: options.cause })
    this.delayMs = options.delayMs
  }
}

/**
 * Thrown from a handler to fail the task for good: it is not retried and goes to the dead
 * letters with reason `rejected`.
 */
export class RejectTaskError extends ErrandError {
  constructor(message = 'task rejected', options: { cause?: unknown } = {}) {
    super('ERR_REJECTED', message, options)
  }
}

/** Turns anything thrown into a plain, JSON-safe record. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof Error) {
    const out: SerializedError = { name: err.name, message: err.message }
    const code = (err as { code?: unknown }).code
    if (typeof code === 'string') out.code = code
    if (err.stack !== undefined) out.stack = err.stack
    return out
  }
  return { name: 'Error', message: typeof err === 'string' ? err : safeString(err) }
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

/** True when `err` is an {@link ErrandError} with the given code. */
export function isErrandError(err: unknown, code?: ErrandErrorCode): err is ErrandError {
  return err instanceof ErrandError && (code === undefined || err.code === code)
}

/**
 * The store took a running task's message back (lease lost, channel closed): the handler's
 * `ctx.signal` is aborted with this and the outcome is not stored; the message runs again.
 */
export class DeliveryLostError extends ErrandError {
  constructor(message: string, options: ErrandErrorOptions = {}) {
    super('ERR_LOST', message, options)
  }
}
