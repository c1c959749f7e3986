import { z } from 'zod'
import { Signature } from './canvas.js'
import { MapCanvas } from './canvas-map.js'
import { RejectTaskError, ValidationError } from './errors.js'
import { Replaced } from './replaced.js'
import { parseOutput } from './running-task.js'
import { defineTask, type Task } from './task.js'
import { formatPath } from './validation.js'
import { checkWireValue } from './wire-check.js'

/**
 * Name of the built-in task that runs one chunk: input `{ task, items }`, output the task's
 * outputs for `items` in order. Workers provide it for every task they register; a worker of an
 * older version does not know it and dead-letters the chunk as `unregistered`.
 */
export const CHUNK_TASK = 'errand.chunk'

/**
 * Split `items` into chunks of `size` and run each chunk as one message: the task's handler runs
 * over the chunk's items one after another in a single worker slot. The chunks run in parallel
 * (a group made at send); the output is every item's output, in item order (the chunks' arrays
 * joined). Few large messages instead of many small ones: use it for many cheap items. Each item
 * is checked against the task's input schema here (`ERR_VALIDATION` names `items[i]`) and again
 * by the worker, and each item's output against its output schema. A chunk retries as a whole
 * under the task's retry policy; a chunk's timeout is the task's (if it has one) times `size`.
 * Needs a result backend. Celery's `chunks`.
 *
 * @example
 * ```ts
 * const all = await app.send(chunks(resize, images, 100)) // 10,000 images in 100 messages
 * ```
 */
export function chunks<In, Out>(
  task: Task<In, Out>,
  items: readonly In[],
  size: number,
): MapCanvas<unknown, Out[], true> {
  if (!Array.isArray(items)) {
    throw new ValidationError('chunks: items must be an array', [
      { path: ['items'], message: 'not an array' },
    ])
  }
  if (!(Number.isSafeInteger(size) && size > 0)) {
    throw new ValidationError(`chunks: size must be an integer > 0, got ${String(size)}`, [
      { path: ['size'], message: 'not an integer > 0' },
    ])
  }
  items.forEach((item, i) => {
    task.parseInput(item)
    const wire = checkWireValue(item)
    if (!wire.ok) {
      throw new ValidationError(
        `chunks: ${formatPath(`items[${i}]`, wire.issue.path)}: ${wire.issue.message}`,
        [{ path: ['items', i, ...wire.issue.path], message: wire.issue.message }],
      )
    }
  })
  const slices: unknown[][] = []
  for (let i = 0; i < items.length; i += size) slices.push(items.slice(i, i + size))
  const template = new Signature<never, unknown, false>(
    CHUNK_TASK,
    false,
    { task: task.name },
    false,
    {
      // The chunk goes where the task goes, so the workers that run the task run its chunks.
      ...(task.queue !== undefined && { queue: task.queue }),
      ...(task.priority !== undefined && { priority: task.priority }),
      ...(task.timeoutMs !== undefined && { timeoutMs: task.timeoutMs * size }),
    },
    [],
    undefined,
    { into: 'items' },
  )
  return new MapCanvas(template, slices, undefined, true)
}

const runners = new WeakMap<Task<never, unknown>, Task<never, unknown>>()

/**
 * The chunk runner for a chunk envelope, made from the task it names (undefined when that task
 * is not registered here: the chunk is then dead-lettered as `unregistered`). Its input schema
 * checks every item with the task's schema, so a bad item is `invalid-input` naming
 * `items[i].field`.
 */
export function chunkRunnerFor(
  input: unknown,
  tasks: ReadonlyMap<string, Task<never, unknown>>,
): Task<never, unknown> | undefined {
  const name = (input as { task?: unknown } | null | undefined)?.task
  const target = typeof name === 'string' ? tasks.get(name) : undefined
  if (!target) return undefined
  let runner = runners.get(target)
  if (!runner) {
    runner = makeRunner(target)
    runners.set(target, runner)
  }
  return runner
}

function makeRunner(target: Task<never, unknown>): Task<never, unknown> {
  const schema = z.object({ task: z.literal(target.name), items: z.array(target.inputSchema) }).strict()
  const run = target.handler
  return defineTask({
    name: CHUNK_TASK,
    input: schema,
    retry: target.retry,
    ...(target.resultTtlMs !== undefined && { resultTtlMs: target.resultTtlMs }),
    handler: async ({ items }, ctx) => {
      const outputs: unknown[] = []
      for (const item of items) {
        ctx.signal.throwIfAborted()
        const output = await run(item, ctx)
        if (output instanceof Replaced) {
          // One message stands for many items here: there is no single place to hand over.
          throw new RejectTaskError(
            `task "${target.name}" called ctx.replace inside chunks(), which cannot replace an item`,
          )
        }
        outputs.push(parseOutput(target, output))
      }
      return outputs
    },
  }) as Task<never, unknown>
}
