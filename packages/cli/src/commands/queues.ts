import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { print, printJson } from '../io.js'
import { table } from '../table.js'

/** `errand queues`: every queue with its counts. */
export function queuesCommand(ctx: CommandContext): Command {
  return new Command('queues')
    .description('every queue with ready, delayed, in-flight and dead counts')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const app = await ctx.app()
      const names = await app.queues()
      const rows = await Promise.all(names.map(async (queue) => ({ queue, ...(await app.stats(queue)) })))
      if (opts.json) return printJson(ctx.io, rows)
      print(
        ctx.io,
        table(
          ['queue', 'ready', 'delayed', 'in flight', 'dead'],
          rows.map((r) => [r.queue, r.ready, r.delayed ?? '-', r.inFlight ?? '-', r.dead]),
        ),
      )
    })
}
