import { openPostgresRunLog } from './run-log-postgres.js'
import { openRedisRunLog } from './run-log-redis.js'

/** One run of a handler, as the handler itself recorded it before doing its work. */
export interface RunRecord {
  /** Task id. */
  readonly id: string
  /** `ctx.attempt` of this run (retries and redeliveries both count). */
  readonly attempt: number
  /** The worker process that ran it. */
  readonly pid: number
  /** When the run started (ms since epoch). */
  readonly at: number
  /** `fail` when the handler meant to fail this run (a planned reject or retry), else `ok`. */
  readonly planned: 'ok' | 'fail'
}

/**
 * Where runs are counted: a place outside the store under test, reached directly (never through
 * the cuttable proxy), so that the measurement is not disturbed by the chaos it measures.
 */
export type RunLogSpec =
  | { readonly kind: 'redis'; readonly url: string; readonly key: string }
  | { readonly kind: 'postgres'; readonly url: string; readonly table: string }

/** Append-only log of handler runs shared by every worker process. */
export interface RunLog {
  record(run: RunRecord): Promise<void>
  /** Every run recorded so far. */
  readAll(): Promise<RunRecord[]>
  close(): Promise<void>
}

/** Open the run log a spec names (creating its table where it has one). */
export function openRunLog(spec: RunLogSpec): Promise<RunLog> {
  return spec.kind === 'redis'
    ? openRedisRunLog(spec.url, spec.key)
    : openPostgresRunLog(spec.url, spec.table)
}

/** One line per run: `id|attempt|pid|at|planned` (ids never contain `|`). */
export function formatRun(run: RunRecord): string {
  return `${run.id}|${run.attempt}|${run.pid}|${run.at}|${run.planned}`
}

/** Reads a line written by {@link formatRun}. */
export function parseRun(line: string): RunRecord {
  const [id = '', attempt, pid, at, planned] = line.split('|')
  return {
    id,
    attempt: Number(attempt),
    pid: Number(pid),
    at: Number(at),
    planned: planned === 'fail' ? 'fail' : 'ok',
  }
}
