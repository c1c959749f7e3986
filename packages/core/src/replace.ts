import { NO_INPUT } from './dispatcher.js'
import type { Envelope, WireFrame } from './envelope.js'
import { type SerializedError, serializeError } from './errors.js'
import { newId } from './ids.js'
import type { Replaced } from './replaced.js'
import type { Runtime } from './runtime.js'
import { validateCanvas } from './send-plan.js'

/**
 * Start the canvas a handler handed its place to (`return ctx.replace(canvas)`), in the place of
 * the task of `env`: the canvas runs with the task's continuation stack under it plus a `result`
 * frame, so its outcome is stored as the task's (whoever waits on the task's handle gets the
 * canvas's output or failure) and then goes on where the task's would have gone: the next chain
 * step, its group or chord slot. Lineage: the canvas's tasks have the task as parent and its root
 * as root. Returns the error when the canvas cannot be sent (a bad input, an open signature):
 * the task then fails for good with it, as a send would have.
 *
 * Like every step, this is at-least-once: a worker lost after publishing the canvas but before
 * the ack runs the handler again, which replaces again (the last result stored wins).
 */
export async function handOver(
  rt: Runtime,
  env: Envelope,
  replaced: Replaced<unknown>,
): Promise<SerializedError | undefined> {
  let node: ReturnType<Replaced<unknown>['canvas']['toWire']>
  try {
    validateCanvas(replaced.canvas, rt.tasks)
    node = replaced.canvas.toWire(newId)
  } catch (err) {
    return serializeError(err)
  }
  const result: WireFrame = { t: 'result', id: env.id, task: env.task }
  const out: Envelope[] = []
  await rt.dispatcher.plan(
    node,
    NO_INPUT,
    [...(env.stack ?? []), result],
    { root: env.root ?? env.id, parent: env.id, headers: env.headers },
    out,
  )
  await rt.dispatcher.publish(out)
  return undefined
}
