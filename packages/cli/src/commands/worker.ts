import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'

/** `errand worker`: run the app's worker until SIGTERM/SIGINT (graceful: running tasks finish). */
export function workerCommand(ctx: CommandContext, hasApp: () => boolean): Command {
  return new Command('worker')
    .description("run the app's worker; SIGTERM or SIGINT stops it gracefully (a second one exits at once)")
    .option('-c, --concurrency <n>', 'tasks run at once', '10')
    .option('-q, --queues <list>', 'comma-separated queues to consume (default: those of the tasks)')
    .option('--shutdown-grace <ms>', 'how long running tasks get to finish after a signal', '30000')
    .action(async (opts: { concurrency: string; queues?: string; shutdownGrace: string }) => {
      if (!hasApp()) throw usageError("a worker runs your tasks' code: pass --app <module>")
      const concurrency = Number(opts.concurrency)
      if (!Number.isInteger(concurrency) || concurrency < 1)
        throw usageError('--concurrency must be an integer >= 1')
      const shutdownGraceMs = Number(opts.shutdownGrace)
      if (!Number.isInteger(shutdownGraceMs) || shutdownGraceMs < 0)
        throw usageError('--shutdown-grace must be an integer >= 0')
      const queues = opts.queues
        ?.split(',')
        .map((q) => q.trim())
        .filter((q) => q !== '')
      const app = await ctx.app()
      const closed = new Promise<void>((resolve) => app.onClose(async () => resolve()))
      await app.runWorker({ concurrency, shutdownGraceMs, ...(queues && queues.length > 0 && { queues }) })
      ctx.io.stderr.write(`errand: worker running (concurrency ${concurrency}); SIGTERM or Ctrl-C stops it\n`)
      await closed
      ctx.io.stderr.write('errand: worker stopped\n')
    })
}
