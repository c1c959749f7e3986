/**
 * The `errand` command's exit codes. Scripts can tell a usage mistake (fix the command line) from
 * a failure of the store or the task (retry, alert).
 */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** The operation failed: the store was unreachable, refused, or answered an error. */
  failure: 1,
  /** The command line is wrong: unknown option, missing argument, bad JSON, invalid input. */
  usage: 2,
  /** What was asked for does not exist (a task id with no record, a dead-letter id). */
  notFound: 3,
  /** `send --wait` or `result --wait`: the task ended in FAILURE or CANCELED. */
  taskFailed: 4,
  /** Interrupted by SIGINT (Ctrl-C). */
  interrupted: 130,
} as const

/** An error the CLI reports as one line, with its exit code (never a stack trace). */
export class CliError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode: number) {
    super(message)
    this.name = 'CliError'
    this.exitCode = exitCode
  }
}

/** A mistake on the command line (exit code 2). */
export function usageError(message: string): CliError {
  return new CliError(message, EXIT.usage)
}
