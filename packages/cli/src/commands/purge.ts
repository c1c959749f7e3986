import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { CliError, EXIT, usageError } from '../exit-codes.js'
import { confirm, print } from '../io.js'

/** `errand purge <queue>`: delete ready and delayed messages (running ones and dead letters stay). */
export function purgeCommand(ctx: CommandContext): Command {
  return new Command('purge')
    .description('delete the ready and delayed messages of a queue (not running ones, not dead letters)')
    .argument('<queue>', 'queue name')
    .option('-y, --yes', 'do not ask for confirmation')
    .action(async (queue: string, opts: { yes?: boolean }) => {
      const app = await ctx.app()
      const s = await app.stats(queue)
      const waiting = s.ready + (s.delayed ?? 0)
      if (!opts.yes) {
        if (!ctx.io.stdin.isTTY)
          throw usageError(`refusing to purge "${queue}" (${waiting} waiting) without --yes`)
        if (!(await confirm(ctx.io, `purge ${waiting} waiting messages of "${queue}"?`))) {
          throw new CliError('not confirmed: nothing done', EXIT.ok)
        }
      }
      print(ctx.io, `purged ${await app.purge(queue)} messages of "${queue}"`)
    })
}
