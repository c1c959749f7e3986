import type { App } from '@errand/core'
import { Command } from 'commander'
import type { CommandContext } from '../context.js'
import { type DeadLetterView, viewDeadLetter } from '../dead-letter-view.js'
import { CliError, EXIT, usageError } from '../exit-codes.js'
import { confirm, print, printJson } from '../io.js'
import { progress } from '../progress.js'
import { table } from '../table.js'

/** Ids moved or deleted per store call: large enough to be fast, small enough to show progress. */
const CHUNK = 1000

interface Filters {
  readonly reason?: string
  readonly task?: string
}

function matches(v: DeadLetterView, f: Filters): boolean {
  return (f.reason === undefined || v.reason === f.reason) && (f.task === undefined || v.task === f.task)
}

/** Every dead letter of the queue (the store lists oldest first), decoded and filtered. */
async function listAll(app: App, queue: string, f: Filters): Promise<DeadLetterView[]> {
  const { dead } = await app.stats(queue)
  const all = await app.deadLetters(queue).list({ limit: Math.max(dead, 1) })
  return all.map(viewDeadLetter).filter((v) => matches(v, f))
}

function filtersOf(opts: { reason?: string; task?: string }): Filters {
  return {
    ...(opts.reason !== undefined && { reason: opts.reason }),
    ...(opts.task !== undefined && { task: opts.task }),
  }
}

/**
 * Requeue or purge: by ids, by filter, or all. With neither ids nor filters it works through the
 * queue in chunks (list the oldest, act on them), so 100,000 dead letters never sit in memory at once.
 */
async function bulk(
  ctx: CommandContext,
  verb: 'requeue' | 'purge',
  queue: string,
  ids: readonly string[],
  opts: { reason?: string; task?: string; yes?: boolean },
): Promise<void> {
  const app = await ctx.app()
  const dl = app.deadLetters(queue)
  const act = (chunk: readonly string[]) => (verb === 'requeue' ? dl.requeue(chunk) : dl.purge(chunk))
  const f = filtersOf(opts)
  const filtered = f.reason !== undefined || f.task !== undefined
  let targets: readonly string[] | undefined
  let total: number
  if (ids.length > 0) {
    if (filtered) throw usageError('give ids or --reason/--task, not both')
    targets = ids
    total = ids.length
  } else if (filtered) {
    targets = (await listAll(app, queue, f)).map((v) => v.id)
    total = targets.length
  } else {
    total = (await app.stats(queue)).dead
  }
  if (total === 0) {
    print(ctx.io, `nothing to ${verb} in "${queue}"`)
    return
  }
  const what = `${total} dead letter${total === 1 ? '' : 's'} of "${queue}"`
  if (!opts.yes) {
    if (!ctx.io.stdin.isTTY)
      throw usageError(`refusing to ${verb} ${what} without --yes (no terminal to ask)`)
    if (!(await confirm(ctx.io, `${verb} ${what}?`)))
      throw new CliError('not confirmed: nothing done', EXIT.ok)
  }
  const bar = progress(ctx.io, verb === 'requeue' ? 'requeued' : 'purged', total)
  let done = 0
  try {
    if (targets !== undefined) {
      for (let i = 0; i < targets.length; i += CHUNK) {
        const n = await act(targets.slice(i, i + CHUNK))
        done += n
        bar.advance(Math.min(CHUNK, targets.length - i))
      }
    } else {
      // All of them: the oldest CHUNK each round, by id, so what arrives meanwhile is not touched.
      while (done < total) {
        const chunk = await dl.list({ limit: Math.min(CHUNK, total - done) })
        if (chunk.length === 0) break
        const n = await act(chunk.map((d) => d.id))
        done += n
        bar.advance(chunk.length)
      }
    }
  } finally {
    bar.stop()
  }
  print(ctx.io, `${verb === 'requeue' ? 'requeued' : 'purged'} ${done} of ${what}`)
}

/** `errand dlq list|show|requeue|purge`. */
export function dlqCommand(ctx: CommandContext): Command {
  const dlq = new Command('dlq').description('dead letters: list, show, requeue, purge')
  dlq
    .command('list')
    .description('dead letters of a queue, oldest first')
    .argument('<queue>', 'queue name')
    .option('--reason <reason>', 'only this reason (exhausted, rejected, undecodable, invalid-input, …)')
    .option('--task <name>', 'only this task')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'print JSON')
    .action(
      async (queue: string, opts: { reason?: string; task?: string; limit: string; json?: boolean }) => {
        const limit = Number(opts.limit)
        if (!Number.isInteger(limit) || limit < 1) throw usageError('--limit must be an integer >= 1')
        const app = await ctx.app()
        const f = filtersOf(opts)
        const views =
          f.reason === undefined && f.task === undefined
            ? (await app.deadLetters(queue).list({ limit })).map(viewDeadLetter)
            : (await listAll(app, queue, f)).slice(0, limit)
        if (opts.json) return printJson(ctx.io, views)
        if (views.length === 0) return print(ctx.io, `no dead letters in "${queue}"`)
        print(
          ctx.io,
          table(
            ['id', 'dead at', 'reason', 'task', 'task id', 'attempt', 'error'],
            views.map((v) => [
              v.id,
              v.deadAt,
              v.reason,
              v.task ?? '(not an envelope)',
              v.taskId ?? '-',
              v.attempt ?? '-',
              v.error ? `${v.error.name}: ${v.error.message}`.slice(0, 80) : '-',
            ]),
          ),
        )
      },
    )
  dlq
    .command('show')
    .description('one dead letter: error, stack and original payload')
    .argument('<queue>', 'queue name')
    .argument('<id>', 'dead-letter id (from dlq list)')
    .option('--json', 'print JSON')
    .action(async (queue: string, id: string, opts: { json?: boolean }) => {
      const app = await ctx.app()
      const found = (await listAll(app, queue, {})).find((v) => v.id === id)
      if (!found) throw new CliError(`no dead letter "${id}" in "${queue}"`, EXIT.notFound)
      if (opts.json) return printJson(ctx.io, found)
      print(
        ctx.io,
        `id:       ${found.id}\nqueue:    ${found.queue}\nreason:   ${found.reason}\ndead at:  ${found.deadAt}`,
      )
      print(
        ctx.io,
        `task:     ${found.task ?? '(not an envelope)'}\ntask id:  ${found.taskId ?? '-'}\nattempt:  ${found.attempt ?? '-'}`,
      )
      if (found.error) {
        print(
          ctx.io,
          `error:    ${found.error.name}${found.error.code ? ` (${found.error.code})` : ''}: ${found.error.message}`,
        )
        if (found.error.stack) print(ctx.io, `stack:\n${found.error.stack}`)
      }
      print(ctx.io, `payload:\n${JSON.stringify(found.payload, null, 2)}`)
    })
  for (const verb of ['requeue', 'purge'] as const) {
    dlq
      .command(verb)
      .description(
        verb === 'requeue' ? 'put dead letters back on their queue' : 'delete dead letters for good',
      )
      .argument('<queue>', 'queue name')
      .argument('[ids...]', 'dead-letter ids (default: all, or those matching --reason/--task)')
      .option('--reason <reason>', 'only this reason')
      .option('--task <name>', 'only this task')
      .option('-y, --yes', 'do not ask for confirmation')
      .action((queue: string, ids: string[], opts: { reason?: string; task?: string; yes?: boolean }) =>
        bulk(ctx, verb, queue, ids, opts),
      )
  }
  return dlq
}
