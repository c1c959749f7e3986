import { isErrandError, type TaskLogLine, type TaskRecord } from '@errand/core'
import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { CliError, EXIT, usageError } from '../exit-codes.js'
import { print, printJson } from '../io.js'
import { when } from '../table.js'

/** A task record as an operator reads it. */
function describe(record: TaskRecord): Record<string, unknown> {
  const duration =
    record.startedAt !== undefined && record.finishedAt !== undefined
      ? record.finishedAt - record.startedAt
      : undefined
  return {
    id: record.id,
    task: record.task,
    queue: record.queue,
    state: record.state,
    attempts: record.attempts,
    createdAt: when(record.createdAt),
    startedAt: when(record.startedAt),
    finishedAt: when(record.finishedAt),
    durationMs: duration,
    result: record.result,
    error: record.error,
    root: record.root,
    parent: record.parent,
    children: record.children,
    progress: record.progress,
    logs: record.logs,
  }
}

/** Log lines as an operator reads them: time, level, message. */
function logLines(logs: readonly TaskLogLine[]): string {
  return logs.map((l) => `\n  ${new Date(l.at).toISOString()} ${l.level.padEnd(5)} ${l.message}`).join('')
}

/** `errand result <id>`: state, attempts, timings, result or error, lineage (queue, root, parent), progress and log lines of a task. */
export function resultCommand(ctx: CommandContext): Command {
  return new Command('result')
    .description('state, attempts, timings, result or error, progress and log lines of a task')
    .argument('<id>', 'task id (printed by send, shown by dlq list)')
    .option('--wait <ms>', 'wait up to this long for a final state')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { wait?: string; json?: boolean }) => {
      const app = await ctx.app()
      const handle = app.result(id)
      if (opts.wait !== undefined) {
        const ms = Number(opts.wait)
        if (!Number.isInteger(ms) || ms < 0) throw usageError('--wait must be an integer >= 0 (ms)')
        await handle.get({ timeoutMs: ms }).catch((err: unknown) => {
          // The record says how it ended; only a timeout is an error here.
          if (isErrandError(err, 'ERR_TIMEOUT')) throw err
        })
      }
      const record = await handle.info()
      if (!record) {
        throw new CliError(
          `no record of task "${id}" (unknown id, expired after its TTL, or stored in another backend)`,
          EXIT.notFound,
        )
      }
      const view = describe(record)
      if (opts.json) printJson(ctx.io, view)
      else {
        for (const [key, value] of Object.entries(view)) {
          if (value === undefined) continue
          if (key === 'logs') {
            print(ctx.io, `logs:${logLines(value as TaskLogLine[])}`)
            continue
          }
          print(
            ctx.io,
            `${`${key}:`.padEnd(12)}${typeof value === 'string' ? value : JSON.stringify(value, null, 2)}`,
          )
        }
      }
      if (opts.wait !== undefined && (record.state === 'FAILURE' || record.state === 'CANCELED')) {
        throw new CliError(`task ${id} ended ${record.state}`, EXIT.taskFailed)
      }
    })
}
