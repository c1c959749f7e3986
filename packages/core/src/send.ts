import { type AsyncResult, resultFor, TaskResult, type WaitHints } from './async-result.js'
import type { Broker } from './broker.js'
import { type AnyCanvas, Signature } from './canvas.js'
import { claimDedup } from './dedup.js'
import { type Lineage, NO_INPUT, type PublishTarget } from './dispatcher.js'
import type { Envelope, WireNode } from './envelope.js'
import { InvalidOptionError, NotSupportedError, ValidationError } from './errors.js'
import { emitSent } from './events-runtime.js'
import { newId } from './ids.js'
import type { Runtime } from './runtime.js'
import type { SendOptions } from './send-options.js'
import { applySendOptions, checkSendOptions, validateCanvas } from './send-plan.js'
import type { AnyTask } from './task.js'
import { isTransactionalBroker } from './transactional-broker.js'

export type { SendOptions } from './send-options.js'

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
  lineage: Lineage = {},
): Promise<AsyncResult<unknown>[]> {
  const tx = options.tx
  // Checked before anything is claimed or planned: a send that cannot publish does nothing.
  const target = tx === undefined ? undefined : publishInTransaction(rt.broker, tx)
  if (options.dedupKey !== undefined && canvases.length !== 1) {
    throw new InvalidOptionError('dedupKey', 'dedupKey applies to one send, not to sendMany()')
  }
  const envelopes: Envelope[] = []
  const results: AsyncResult<unknown>[] = []
  const context = { queueOf: rt.dispatcher.queueOf, hints }
  const expiresAt = expiryOf(options)
  const mode = options.dedupKey === undefined ? undefined : (options.dedupMode ?? 'keep-first')
  // The same for every canvas of this call (the planner does not keep or change it).
  const planLineage: Lineage = { ...lineage, headers: options.headers ?? lineage.headers }
  for (const canvas of canvases) {
    let node: WireNode
    let result: AsyncResult<unknown>
    let debounce: string | undefined
    if (mode === 'debounce') {
      if (!(canvas instanceof Signature)) {
        throw new InvalidOptionError('dedupMode', `'debounce' applies to one signature, not to a canvas`)
      }
      const ttlMs = options.dedupTtlMs ?? 3_600_000
      const claim = await claimDedup(rt.backend, options.dedupKey as string, mode, ttlMs, newId())
      debounce = claim.debounce
      const { eta: _eta, ...rest } = options
      node = applySendOptions(
        canvas.toWire(() => claim.id),
        { ...rest, countdownMs: ttlMs },
      )
      result = resultFor<unknown>(node, rt.backend, context)
    } else {
      node = applySendOptions(canvas.toWire(newId), options)
      result = resultFor<unknown>(node, rt.backend, context)
      if (mode !== undefined) {
        const ttlMs = options.dedupTtlMs ?? 3_600_000
        const claim = await claimDedup(rt.backend, options.dedupKey as string, mode, ttlMs, result.id)
        if (!claim.publish) return [new TaskResult(claim.id, rt.backend, [], { explain: () => hints })]
      }
    }
    const from = envelopes.length
    await rt.dispatcher.plan(node, NO_INPUT, [], planLineage, envelopes)
    if (expiresAt !== undefined || debounce !== undefined) {
      for (let i = from; i < envelopes.length; i++) {
        const env = envelopes[i] as Envelope
        if (expiresAt !== undefined) env.expiresAt = expiresAt
        if (debounce !== undefined) env.debounce = debounce
      }
    }
    results.push(result)
  }
  await rt.dispatcher.publish(envelopes, target)
  // After the broker has them (a failed send announces nothing), without waiting for the store.
  // In a caller's transaction the send may yet roll back, so nothing is announced then.
  if (rt.events.sink && tx === undefined) emitSent(rt.events.sink, envelopes)
  return results
}

/** Where `send({ tx })` publishes: the broker, inside the caller's transaction `tx`. */
function publishInTransaction(broker: Broker, tx: unknown): PublishTarget {
  if (!isTransactionalBroker(broker)) {
    throw new NotSupportedError('send({ tx }) needs a broker that can publish in a transaction', {
      adapter: broker.name,
    })
  }
  return (queue, messages) => broker.publishInTransaction(tx, queue, messages)
}

/** The expiry a send asks for (ms since the epoch), if any. */
function expiryOf(options: SendOptions): number | undefined {
  if (options.expiresAt !== undefined) {
    return options.expiresAt instanceof Date ? options.expiresAt.getTime() : options.expiresAt
  }
  return options.expiresInMs === undefined ? undefined : Date.now() + options.expiresInMs
}
