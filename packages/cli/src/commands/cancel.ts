import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { print } from '../io.js'

/** `errand cancel <id>`. */
export function cancelCommand(ctx: CommandContext): Command {
  return new Command('cancel')
    .description('cancel a task: dead-lettered as canceled if queued, its signal aborted if running')
    .argument('<id>', 'task id')
    .action(async (id: string) => {
      const app = await ctx.app()
      await app.cancel(id)
      print(ctx.io, `canceled ${id}`)
    })
}
