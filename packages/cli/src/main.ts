import { type AnyTask, type App, isErrandError } from '@errand/core'
import { Command, CommanderError } from 'commander'
import { cancelCommand } from './commands/cancel.js'
import { dashboardCommand } from './commands/dashboard.js'
import { dlqCommand } from './commands/dlq.js'
import { eventsCommand } from './commands/events.js'
import { purgeCommand } from './commands/purge.js'
import { queuesCommand } from './commands/queues.js'
import { resultCommand } from './commands/result.js'
import { schedulesCommand } from './commands/schedules.js'
import { sendCommand } from './commands/send.js'
import { statsCommand } from './commands/stats.js'
import { workerCommand } from './commands/worker.js'
import type { CommandContext } from './context.js'
import { CliError, EXIT } from './exit-codes.js'
import { type Io, processIo } from './io.js'
import { type AppSource, loadApp } from './load-app.js'

/** Error codes that mean the command line asked for something wrong, not that the store failed. */
const USAGE_CODES = new Set(['ERR_INVALID_OPTION', 'ERR_VALIDATION', 'ERR_ADAPTER_NOT_INSTALLED'])

/**
 * Run the `errand` command line with `argv` (without `node` and the script) and return the exit
 * code (see {@link EXIT}). Errors are reported as one line on stderr, never as a stack trace
 * (set `ERRAND_DEBUG=1` to see one).
 */
export async function run(argv: readonly string[], io: Io = processIo()): Promise<number> {
  let app: App | undefined
  let source: AppSource = {}
  const ctx: CommandContext = {
    io,
    async app(options?: { tasks?: readonly AnyTask[] }) {
      app ??= await loadApp(source, io, options?.tasks ?? [])
      return app
    },
    fromModule: (s) => s.app !== undefined,
  }
  const hasApp = () => source.app !== undefined
  const program = new Command('errand')
    .description('Look at and act on Errand queues, dead letters and results; run workers.')
    .option('--app <module>', 'a module exporting your App (TypeScript or JavaScript): its tasks and stores')
    .option('--broker <url>', 'broker URL (default: ERRAND_BROKER_URL)')
    .option('--backend <url>', 'result backend URL (default: ERRAND_BACKEND_URL)')
    .showHelpAfterError('(run errand --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride()
    .hook('preAction', (thisCommand) => {
      source = thisCommand.opts<AppSource>()
    })
  for (const command of [
    queuesCommand(ctx),
    statsCommand(ctx),
    dlqCommand(ctx),
    resultCommand(ctx),
    cancelCommand(ctx),
    sendCommand(ctx, hasApp),
    purgeCommand(ctx),
    workerCommand(ctx, hasApp),
    schedulesCommand(ctx, hasApp),
    dashboardCommand(ctx),
    eventsCommand(ctx),
  ]) {
    program.addCommand(command)
  }
  // Commands made on their own (addCommand) do not inherit the program's output and exit
  // settings: copy them, so every usage error goes through `io` and comes back as exit code 2.
  for (const c of program.commands) {
    c.copyInheritedSettings(program)
    for (const sub of c.commands) sub.copyInheritedSettings(c)
  }
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return EXIT.ok
  } catch (err) {
    return report(err, io)
  } finally {
    await app?.close().catch((err: unknown) => io.stderr.write(`errand: warning: closing: ${String(err)}\n`))
  }
}

/** One line on stderr and the exit code for `err`. */
function report(err: unknown, io: Io): number {
  if (err instanceof CommanderError) {
    // Commander has printed its message already (or the help / version, which are not errors).
    if (
      err.code === 'commander.helpDisplayed' ||
      err.code === 'commander.version' ||
      err.code === 'commander.help'
    ) {
      return EXIT.ok
    }
    return EXIT.usage
  }
  const debug = io.env.ERRAND_DEBUG === '1'
  if (err instanceof CliError) {
    io.stderr.write(`errand: ${err.message}\n`)
    return err.exitCode
  }
  if (isErrandError(err)) {
    io.stderr.write(`errand: ${err.message} (${err.code})\n`)
    if (debug && err.stack) io.stderr.write(`${err.stack}\n`)
    return USAGE_CODES.has(err.code) ? EXIT.usage : EXIT.failure
  }
  io.stderr.write(`errand: ${err instanceof Error ? err.message : String(err)}\n`)
  if (debug && err instanceof Error && err.stack) io.stderr.write(`${err.stack}\n`)
  return EXIT.failure
}
