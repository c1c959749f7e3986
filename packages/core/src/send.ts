import { type AsyncResult, resultFor, TaskResult, type WaitHints } from './async-result.js'
import type { Broker, OutgoingMessage } from './broker.js'
import type { AnyCanvas } from './canvas.js'
import { NO_INPUT } from './dispatcher.js'
import type { Envelope } from './envelope.js'
import { InvalidOptionError, NotSupportedError, ValidationError } from './errors.js'
import { emitSent } from './events-runtime.js'
import { newId } from './ids.js'
import type { Runtime } from './runtime.js'
import { applySendOptions, checkSendOptions, validateCanvas } from './send-plan.js'
import type { AnyTask } from './task.js'

/** Options of `App.send`. Unknown keys are refused (`ERR_INVALID_OPTION`). */
export interface SendOptions {
  /** Run no sooner than this many ms from now. */
  readonly countdownMs?: number
  /** Run no sooner than this time. */
  readonly eta?: Date | number
  /** Override the queue of the first task(s): 1 to 200 characters. */
  readonly queue?: string
  /** Override the priority of the first task(s): an integer >= 0. */
  readonly priority?: number
  /**
   * Headers carried by every task of the workflow (e.g. W3C `traceparent`): string values, no
   * `__proto__` key.
   */
  readonly headers?: Readonly<Record<string, string>>
  /** A second send with the same key within `dedupTtlMs` returns the first send's handle. */
  readonly dedupKey?: string
  /** Dedup window. Default one hour. */
  readonly dedupTtlMs?: number
  /**
   * Enqueue inside the caller's transaction (e.g. a `pg` client in `BEGIN`): the tasks exist iff
   * it commits. Needs a broker that supports it (`@errand/postgres`).
   */
  readonly tx?: unknown
}

/** A broker that can publish inside a caller's transaction. */
export interface TransactionalBroker extends Broker {
  publishInTransaction(tx: unknown, queue: string, messages: readonly OutgoingMessage[]): Promise<void>
}

function isTransactional(b: Broker): b is TransactionalBroker {
  return typeof (b as Partial<TransactionalBroker>).publishInTransaction === 'function'
}

/**
 * Everything `send` checks before it connects: the options and every canvas (run-time checks, so
 * plain JavaScript callers get `ERR_VALIDATION` / `ERR_INVALID_OPTION` naming the problem too).
 */
export function checkSend(canvases: unknown, options: unknown, tasks: ReadonlyMap<string, AnyTask>): void {
  if (!Array.isArray(canvases)) {
    throw new ValidationError('sendMany: expected an array of signatures or canvases', [
      { path: [], message: 'not an array' },
    ])
  }
  checkSendOptions(options)
  for (const c of canvases) validateCanvas(c, tasks)
}

/** Plan, claim dedup, publish: the part of `send` that needs the connection. */
export async function sendCanvases(
  rt: Runtime,
  canvases: readonly AnyCanvas[],
  options: SendOptions,
  hints: WaitHints,
): Promise<AsyncResult<unknown>[]> {
  if (options.tx !== undefined && !isTransactional(rt.broker)) {
    throw new NotSupportedError('send({ tx }) needs a broker that can publish in a transaction', {
      adapter: rt.broker.name,
    })
  }
  if (options.dedupKey !== undefined && canvases.length !== 1) {
    throw new InvalidOptionError('dedupKey', 'dedupKey applies to one send, not to sendMany()')
  }
  const envelopes: Envelope[] = []
  const results: AsyncResult<unknown>[] = []
  const context = { queueOf: rt.dispatcher.queueOf, hints }
  for (const canvas of canvases) {
    const node = applySendOptions(canvas.toWire(newId), options)
    const result = resultFor<unknown>(node, rt.backend, context)
    if (options.dedupKey !== undefined) {
      const first = await claimDedup(rt, options.dedupKey, result.id, options.dedupTtlMs ?? 3_600_000)
      if (first !== result.id) return [new TaskResult(first, rt.backend, [], { explain: () => hints })]
    }
    await rt.dispatcher.plan(node, NO_INPUT, [], { headers: options.headers }, envelopes)
    results.push(result)
  }
  const tx = options.tx
  await rt.dispatcher.publish(
    envelopes,
    tx === undefined
      ? undefined
      : (q, m) => (rt.broker as TransactionalBroker).publishInTransaction(tx, q, m),
  )
  // After the broker has them (a failed send announces nothing), without waiting for the store.
  // In a caller's transaction the send may yet roll back, so nothing is announced then.
  if (rt.events.sink && tx === undefined) emitSent(rt.events.sink, envelopes)
  return results
}

async function claimDedup(rt: Runtime, key: string, id: string, ttlMs: number): Promise<string> {
  if (!rt.backend)
    throw new NotSupportedError('dedupKey needs a result backend: pass `backend` to createApp()')
  for (let i = 0; i < 3; i++) {
    if (await rt.backend.setIfAbsent(`dedup:${key}`, id, ttlMs)) return id
    const existing = await rt.backend.getValue(`dedup:${key}`)
    if (existing !== undefined) return existing
  }
  return id
}
