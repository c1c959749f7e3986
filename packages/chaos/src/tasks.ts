import { setTimeout as sleep } from 'node:timers/promises'
import { defineTask, RejectTaskError, type TaskContext } from '@errand/core'
import { z } from 'zod'
import type { RunLog } from './run-log.js'

/** What a single task does: succeed, fail for good (`reject`), or fail its first run (`retry`). */
export const singleModes = ['ok', 'reject', 'retry'] as const
/** @see singleModes */
export type SingleMode = (typeof singleModes)[number]

/**
 * The chaos suite's tasks, on one queue. Every handler first records its run in `runs` (so the
 * suite can count runs per task id: duplicates, chord callbacks), then works for a few ms (so that
 * kills and cuts land while tasks are running), then answers.
 *
 * - `chaos.single` `{ n, mode }` → `n` (or fails as its mode says);
 * - `chaos.step` `n` → `n + 1` (chains of three);
 * - `chaos.member` `n` → `2n` and `chaos.total` `[...]` → the sum (chords).
 */
export function chaosTasks(queue: string, runs: RunLog) {
  const begin = async (ctx: TaskContext, planned: 'ok' | 'fail') => {
    await runs.record({ id: ctx.id, attempt: ctx.attempt, pid: process.pid, at: Date.now(), planned })
    // 1-20 ms of "work", aborted with the task (timeout, shutdown past the grace period).
    await sleep(1 + Math.floor(Math.random() * 20), undefined, { signal: ctx.signal })
  }
  const single = defineTask({
    name: 'chaos.single',
    queue,
    input: z.object({ n: z.number().int(), mode: z.enum(singleModes) }),
    output: z.number().int(),
    retry: { attempts: 3, backoff: { type: 'fixed', delayMs: 200 } },
    handler: async ({ n, mode }, ctx) => {
      const fails = mode === 'reject' || (mode === 'retry' && ctx.attempt === 1)
      await begin(ctx, fails ? 'fail' : 'ok')
      if (mode === 'reject') throw new RejectTaskError(`chaos: task ${n} rejects by design`)
      if (fails) throw new Error(`chaos: task ${n} fails its first run by design`)
      return n
    },
  })
  const step = defineTask({
    name: 'chaos.step',
    queue,
    input: z.number().int(),
    output: z.number().int(),
    handler: async (n, ctx) => {
      await begin(ctx, 'ok')
      return n + 1
    },
  })
  const member = defineTask({
    name: 'chaos.member',
    queue,
    input: z.number().int(),
    output: z.number().int(),
    handler: async (n, ctx) => {
      await begin(ctx, 'ok')
      return 2 * n
    },
  })
  const total = defineTask({
    name: 'chaos.total',
    queue,
    input: z.array(z.number().int()),
    output: z.number().int(),
    handler: async (xs, ctx) => {
      await begin(ctx, 'ok')
      return xs.reduce((s, x) => s + x, 0)
    },
  })
  return { single, step, member, total, all: [single, step, member, total] as const }
}

/** The tasks of {@link chaosTasks}. */
export type ChaosTasks = ReturnType<typeof chaosTasks>
