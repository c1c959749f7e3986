import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'
import { print, printJson } from '../io.js'
import { table } from '../table.js'

/** `errand stats <queue> [--watch]`: one queue's counts, once or every interval. */
export function statsCommand(ctx: CommandContext): Command {
  return new Command('stats')
    .description("one queue's ready, delayed, in-flight and dead counts")
    .argument('<queue>', 'queue name')
    .option('--watch', 'print the counts again every interval until Ctrl-C')
    .option('--interval <ms>', 'interval of --watch in ms', '1000')
    .option('--json', 'print JSON (one object per line with --watch)')
    .action(async (queue: string, opts: { watch?: boolean; interval: string; json?: boolean }) => {
      const interval = Number(opts.interval)
      if (!Number.isInteger(interval) || interval < 100)
        throw usageError('--interval must be an integer >= 100 (ms)')
      const app = await ctx.app()
      const once = async () => {
        const s = await app.stats(queue)
        const row = { queue, at: new Date().toISOString(), ...s }
        if (opts.json) ctx.io.stdout.write(`${JSON.stringify(row)}\n`)
        else if (opts.watch)
          print(
            ctx.io,
            `${row.at}  ready ${s.ready}  delayed ${s.delayed ?? '-'}  in flight ${s.inFlight ?? '-'}  dead ${s.dead}`,
          )
        else
          print(
            ctx.io,
            table(
              ['queue', 'ready', 'delayed', 'in flight', 'dead'],
              [[queue, s.ready, s.delayed ?? '-', s.inFlight ?? '-', s.dead]],
            ),
          )
      }
      if (!opts.watch) {
        if (opts.json) return printJson(ctx.io, { queue, ...(await app.stats(queue)) })
        return once()
      }
      let stopped = false
      const stop = () => {
        stopped = true
      }
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      try {
        while (!stopped) {
          await once()
          await new Promise((resolve) => setTimeout(resolve, interval))
        }
      } finally {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
      }
    })
}
