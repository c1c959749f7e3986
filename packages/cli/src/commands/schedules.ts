import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'
import { print, printJson } from '../io.js'
import { table, when } from '../table.js'

/**
 * `errand schedules --app <module>`: the schedules the app module arms, with their next tick.
 * Schedules live in the processes that arm them (no store lists them), so this needs the module.
 */
export function schedulesCommand(ctx: CommandContext, hasApp: () => boolean): Command {
  return new Command('schedules')
    .description('the schedules your app module arms (app.schedule), with their next tick')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      if (!hasApp()) {
        throw usageError(
          'schedules live in the process that arms them: pass --app <module> (the one calling app.schedule)',
        )
      }
      const list = (await ctx.app()).schedules()
      if (opts.json) {
        return printJson(
          ctx.io,
          list.map((s) => ({ ...s, nextTick: s.nextTick?.toISOString() })),
        )
      }
      if (list.length === 0) return print(ctx.io, 'the app module arms no schedules')
      print(
        ctx.io,
        table(
          ['name', 'when', 'time zone', 'next tick'],
          list.map((s) => [s.name, s.when, s.timezone ?? '-', when(s.nextTick?.getTime())]),
        ),
      )
    })
}
