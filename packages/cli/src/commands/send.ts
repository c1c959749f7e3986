import { type AnyTask, defineTask, isErrandError } from '@errand/core'
import { Command } from 'commander'
import { z } from 'zod'
import type { CommandContext } from '../context.js'
import { CliError, EXIT, usageError } from '../exit-codes.js'
import { print, printJson } from '../io.js'

function parseInput(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw usageError(`--input is not JSON: ${(err as Error).message}`)
  }
}

function intOption(value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) throw usageError(`${name} must be an integer >= ${min}`)
  return n
}

/**
 * `errand send <task> --input '<json>'`. With `--app`, the task's schema checks the input before
 * anything is queued; without it, the input goes as it is and the worker validates it.
 */
export function sendCommand(ctx: CommandContext, hasApp: () => boolean): Command {
  return new Command('send')
    .description('send a task by name (validated against its schema when --app is given)')
    .argument('<task>', 'task name')
    .requiredOption('--input <json>', 'the input, as JSON')
    .option('--queue <queue>', "queue (default: the task's, or the app's default)")
    .option('--countdown <ms>', 'run no sooner than this many ms from now')
    .option('--priority <n>', 'priority (where the store has them)')
    .option('--wait <ms>', 'wait up to this long for the result and print it')
    .option('--json', 'print JSON')
    .action(
      async (
        name: string,
        opts: {
          input: string
          queue?: string
          countdown?: string
          priority?: string
          wait?: string
          json?: boolean
        },
      ) => {
        const input = parseInput(opts.input)
        const countdownMs = intOption(opts.countdown, '--countdown', 0)
        const priority = intOption(opts.priority, '--priority', 0)
        const waitMs = intOption(opts.wait, '--wait', 0)
        let task: AnyTask | undefined
        let app = hasApp() ? await ctx.app() : undefined
        if (app) {
          task = app.task(name)
          if (!task) throw usageError(`the app has no task named "${name}"`)
        } else {
          // No schema here: the worker that knows the task validates the input.
          task = defineTask({ name, input: z.unknown(), handler: () => undefined }) as unknown as AnyTask
          app = await ctx.app({ tasks: [task] })
        }
        let handle: Awaited<ReturnType<typeof app.send>>
        try {
          handle = await app.send((task as AnyTask & { s(input: unknown): never }).s(input), {
            ...(opts.queue !== undefined && { queue: opts.queue }),
            ...(countdownMs !== undefined && { countdownMs }),
            ...(priority !== undefined && { priority }),
          })
        } catch (err) {
          if (isErrandError(err, 'ERR_VALIDATION') || isErrandError(err, 'ERR_INVALID_OPTION')) {
            throw usageError(err.message)
          }
          throw err
        }
        if (waitMs === undefined) {
          if (opts.json) printJson(ctx.io, { id: handle.id })
          else print(ctx.io, handle.id)
          return
        }
        try {
          const result = await handle.get({ timeoutMs: waitMs })
          if (opts.json) printJson(ctx.io, { id: handle.id, state: 'SUCCESS', result })
          else print(ctx.io, `${handle.id} SUCCESS ${JSON.stringify(result)}`)
        } catch (err) {
          if (isErrandError(err, 'ERR_TASK_FAILED') || isErrandError(err, 'ERR_CANCELED')) {
            throw new CliError(`${handle.id} ${err.message}`, EXIT.taskFailed)
          }
          throw err
        }
      },
    )
}
