import type { SendOptions } from './app.js'
import { type AnyCanvas, Chain, Chord, Group, Signature } from './canvas.js'
import type { WireNode } from './envelope.js'
import { InvalidOptionError } from './errors.js'
import type { AnyTask } from './task.js'

/** Apply `send()`'s countdown/queue/priority to the tasks that start first. */
export function applySendOptions(node: WireNode, options: SendOptions): WireNode {
  const eta = options.eta instanceof Date ? options.eta.getTime() : options.eta
  const countdownMs = eta !== undefined ? Math.max(0, eta - Date.now()) : options.countdownMs
  if (countdownMs === undefined && options.queue === undefined && options.priority === undefined) return node
  if (countdownMs !== undefined && !(Number.isFinite(countdownMs) && countdownMs >= 0)) {
    throw new InvalidOptionError('countdownMs', `expected a number of ms >= 0, got ${countdownMs}`)
  }
  const apply = (n: WireNode): WireNode => {
    switch (n.kind) {
      case 'task':
        return {
          ...n,
          options: {
            ...n.options,
            ...(countdownMs !== undefined && { countdownMs: Math.round(countdownMs) }),
            ...(options.queue !== undefined && { queue: options.queue }),
            ...(options.priority !== undefined && { priority: options.priority }),
          },
        }
      case 'chain': {
        const [first, ...rest] = n.steps
        return first ? { ...n, steps: [apply(first), ...rest] } : n
      }
      case 'group':
        return { ...n, members: n.members.map(apply) }
      case 'chord':
        return { ...n, header: n.header.map(apply) }
    }
  }
  return apply(node)
}

/** Check bound inputs of every signature in a canvas against their task's schema. */
export function validateCanvas(canvas: AnyCanvas, tasks: ReadonlyMap<string, AnyTask>, first = true): void {
  if (canvas instanceof Signature) {
    const task = tasks.get(canvas.task) ?? canvas.validator
    if (!canvas.bound) {
      if (first)
        throw new TypeError(
          `signature of task "${canvas.task}" has no input: use .s(input) or .si(input) to send it`,
        )
    } else if (task) {
      task.parseInput(canvas.input)
    }
  } else if (canvas instanceof Chain) {
    canvas.steps.forEach((s, i) => {
      validateCanvas(s, tasks, first && i === 0)
    })
  } else if (canvas instanceof Group) {
    for (const m of canvas.members) validateCanvas(m, tasks, first)
  } else if (canvas instanceof Chord) {
    for (const m of canvas.header) validateCanvas(m, tasks, first)
    validateCanvas(canvas.body, tasks, false)
  }
  for (const e of canvas.errbacks) validateCanvas(e, tasks, false)
}
