import { type EventStreamItem, isTaskEventType, type TaskEvent, type TaskEventType } from '@errand/core'
import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'
import { print } from '../io.js'

function list(value: string | undefined): string[] | undefined {
  const items = value
    ?.split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
  return items && items.length > 0 ? items : undefined
}

/** What follows the common columns of an event line: the facts of its type. */
function details(e: TaskEvent): string {
  switch (e.type) {
    case 'sent':
      return e.eta === undefined ? '' : `eta ${new Date(e.eta).toISOString()}`
    case 'progress':
      return JSON.stringify(e.value)
    case 'succeeded':
      return `${e.durationMs} ms`
    case 'failed':
      return `${e.willRetry ? `will retry in ${e.retryDelayMs ?? 0} ms` : 'final'}: ${e.error.name}${e.error.code ? ` ${e.error.code}` : ''}: ${e.error.message}`
    case 'dead-lettered':
      return `${e.reason}${e.error ? `: ${e.error.message}` : ''}`
    default:
      return ''
  }
}

/** One event as a line of text: time, type, queue, task, id, attempt, details. */
export function formatEvent(item: EventStreamItem): string {
  const time = new Date(item.at).toISOString().slice(11, 23)
  if (item.type === 'dropped') return `${time}  (${item.count} events dropped: this reader fell behind)`
  const cols = [time, item.type.padEnd(13), item.queue, item.task, item.id, `#${item.attempt}`, details(item)]
  return cols.filter((c) => c !== '').join('  ')
}

/**
 * `errand events`: follow task events live (every producer and worker on the app's result
 * backend) until Ctrl-C / SIGTERM; `--recent n` prints a queue's last events first.
 */
export function eventsCommand(ctx: CommandContext): Command {
  return new Command('events')
    .description('follow task events live (sent, started, progress, succeeded, failed, …); Ctrl-C stops')
    .option('-q, --queue <names>', 'only these queues (comma-separated)')
    .option('-t, --type <types>', 'only these event types (comma-separated)')
    .option('--recent <n>', "first print each --queue's last n events")
    .option('--json', 'one JSON event per line')
    .action(async (opts: { queue?: string; type?: string; recent?: string; json?: boolean }) => {
      const queues = list(opts.queue)
      const types = list(opts.type)
      for (const t of types ?? []) {
        if (!isTaskEventType(t))
          throw usageError(
            `--type: unknown event type "${t}" (sent, started, progress, succeeded, failed, dead-lettered, canceled)`,
          )
      }
      const recent = opts.recent === undefined ? 0 : Number(opts.recent)
      if (!Number.isInteger(recent) || recent < 0 || recent > 10_000)
        throw usageError('--recent must be an integer in [0, 10000]')
      if (recent > 0 && !queues) throw usageError('--recent needs --queue (history is kept per queue)')
      const app = await ctx.app()
      const stop = new AbortController()
      const onSignal = () => stop.abort()
      process.once('SIGINT', onSignal)
      process.once('SIGTERM', onSignal)
      const show = (item: EventStreamItem) =>
        opts.json ? print(ctx.io, JSON.stringify(item)) : print(ctx.io, formatEvent(item))
      try {
        // Subscribe first, so nothing falls between the history and the live tail.
        const events = await app.events({
          ...(queues && { queues }),
          ...(types && { types: types as TaskEventType[] }),
          signal: stop.signal,
        })
        for (const q of recent > 0 ? (queues ?? []) : []) {
          for (const e of await app.recentEvents(q, { limit: recent })) {
            if (!types || types.includes(e.type)) show(e)
          }
        }
        ctx.io.stderr.write('errand: following events; Ctrl-C stops\n')
        for await (const item of events) show(item)
      } finally {
        process.off('SIGINT', onSignal)
        process.off('SIGTERM', onSignal)
      }
    })
}
