import { serveDashboard } from '@errand/dashboard'
import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { usageError } from '../exit-codes.js'

/** Addresses only this machine can reach. */
const isLoopback = (host: string) =>
  host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host)

/**
 * `errand dashboard [--port 4000] [--host 127.0.0.1] [--read-only]`: serve the web dashboard until
 * SIGINT/SIGTERM. Loopback only by default: the dashboard can requeue and delete, and this command
 * has no login (mount `createDashboard` with an `authorize` hook for that).
 */
export function dashboardCommand(ctx: CommandContext): Command {
  return new Command('dashboard')
    .description('serve the web dashboard (queues, dead letters, tasks) on 127.0.0.1 until Ctrl-C')
    .option('-p, --port <n>', 'port to listen on (0: any free port)', '4000')
    .option(
      '--host <address>',
      'address to bind; anything but loopback lets the network requeue and purge',
      '127.0.0.1',
    )
    .option('--read-only', 'show everything, change nothing (no write buttons; writes refused)')
    .action(async (opts: { port: string; host: string; readOnly?: boolean }) => {
      const port = Number(opts.port)
      if (!Number.isInteger(port) || port < 0 || port > 65_535)
        throw usageError('--port must be an integer from 0 to 65535')
      const app = await ctx.app()
      const running = await serveDashboard({ app, port, host: opts.host, readOnly: opts.readOnly === true })
      ctx.io.stdout.write(`dashboard: ${running.url}${opts.readOnly ? ' (read-only)' : ''}\n`)
      if (!isLoopback(opts.host)) {
        ctx.io.stderr.write(
          `errand: warning: the dashboard listens on ${opts.host} with no login: anyone who can reach it can requeue and purge (add --read-only, or mount createDashboard with authorize)\n`,
        )
      }
      ctx.io.stderr.write('errand: dashboard running; Ctrl-C stops it\n')
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await running.close()
    })
}
