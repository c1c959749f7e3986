import type { Cut } from './disruptor.js'
import type { RunRecord } from './run-log.js'
import type { StopEvent, WorkerExit } from './worker-pool.js'

/**
 * Why a task ran again:
 * - `kill`: the process of the run before was SIGKILLed after that run began;
 * - `crash`: that process died on its own (itself a failure, reported with the exits);
 * - `cut`: connections were cut between the two runs (an ack or lease lost: at-least-once);
 * - `graceful-stop`: that process was stopped gracefully (SIGTERM), which must let running tasks
 *   finish and settle, so a re-run is a defect;
 * - `chord-republish`: a chord callback published again by a redelivered member (the documented
 *   crash window: the callback is at-least-once across crashes);
 * - `republish`: a second copy of the task's message, not a redelivery of the one before: its
 *   `attempt` is not higher than the run before's (every store counts a redelivery). An earlier
 *   step that ran twice (its worker SIGKILLed after publishing the next step, before its ack)
 *   publishes the next step twice; that step's own re-run is classified where it happened, so
 *   blaming the copy on whatever befell the worker of the run before would be wrong;
 * - `unexplained`: none of the above (a lease that ran out on a starved process, or a defect).
 */
export type RerunCause =
  | 'kill'
  | 'crash'
  | 'cut'
  | 'graceful-stop'
  | 'chord-republish'
  | 'republish'
  | 'unexplained'

/** One run beyond what the task planned (planned retries are not counted). */
export interface ExtraRun {
  readonly id: string
  readonly run: RunRecord
  readonly previous: RunRecord
  readonly cause: RerunCause
}

/** After a cut is restored, clients take a while to reconnect (AMQP backs off up to 5 s). */
export const RECONNECT_SLACK_MS = 6_000

/** Everything the classification needs about the disruptions of a run. */
export interface Disruptions {
  readonly stops: readonly StopEvent[]
  readonly exits: readonly WorkerExit[]
  readonly cuts: readonly Cut[]
}

/** Runs of each task id, oldest first. */
export function runsById(runs: readonly RunRecord[]): Map<string, RunRecord[]> {
  const byId = new Map<string, RunRecord[]>()
  for (const r of runs) {
    const list = byId.get(r.id)
    if (list) list.push(r)
    else byId.set(r.id, [r])
  }
  for (const list of byId.values()) list.sort((a, b) => a.at - b.at)
  return byId
}

/** Why `run` followed `previous` (see {@link RerunCause}); chord callbacks are handled apart. */
export function rerunCause(previous: RunRecord, run: RunRecord, d: Disruptions): RerunCause {
  // A redelivery always carries a higher attempt (retries and redeliveries both count): a run
  // whose attempt is not higher is another copy of the message, published upstream.
  if (run.attempt <= previous.attempt) return 'republish'
  const stopped = (signal: StopEvent['signal']) =>
    d.stops.find((s) => s.pid === previous.pid && s.signal === signal && s.at >= previous.at)
  if (stopped('SIGKILL')) return 'kill'
  if (d.exits.some((e) => e.pid === previous.pid && e.sent === 'none')) return 'crash'
  const cutBetween = (from: number, to: number) =>
    d.cuts.some((c) => c.from <= to && c.to + RECONNECT_SLACK_MS >= from)
  const term = stopped('SIGTERM')
  if (term) {
    // Stopped gracefully: the run should have finished and settled before the process exited.
    // Only a cut while that process still lived (its ack lost) excuses the re-run.
    const exitedAt = d.exits.find((e) => e.pid === previous.pid)?.exitedAt ?? run.at
    return cutBetween(previous.at, exitedAt) ? 'cut' : 'graceful-stop'
  }
  return cutBetween(previous.at, run.at) ? 'cut' : 'unexplained'
}

/** Every unplanned extra run of the given ids (a run that follows a planned failure is a retry). */
export function extraRuns(
  byId: ReadonlyMap<string, readonly RunRecord[]>,
  ids: Iterable<string>,
  d: Disruptions,
): ExtraRun[] {
  const out: ExtraRun[] = []
  for (const id of ids) {
    const runs = byId.get(id) ?? []
    for (let i = 1; i < runs.length; i++) {
      const previous = runs[i - 1] as RunRecord
      const run = runs[i] as RunRecord
      if (previous.planned === 'fail') continue
      out.push({ id, run, previous, cause: rerunCause(previous, run, d) })
    }
  }
  return out
}

/**
 * Extra runs of one chord's callback. A fresh copy (`attempt` 1) comes from a member that was
 * redelivered after the chord completed and published the callback again: explained as long as
 * the chord has at least that many member re-runs, or a cut could have doubled the publish. A
 * redelivered copy (`attempt` > 1) is classified like any task's re-run.
 */
export function callbackExtras(
  callbackRuns: readonly RunRecord[],
  memberReruns: number,
  d: Disruptions,
): ExtraRun[] {
  const out: ExtraRun[] = []
  let fresh = 0
  for (let i = 1; i < callbackRuns.length; i++) {
    const previous = callbackRuns[i - 1] as RunRecord
    const run = callbackRuns[i] as RunRecord
    let cause: RerunCause
    if (run.attempt === 1) {
      fresh++
      const cutNear = d.cuts.some(
        (c) => c.from <= run.at && c.to + RECONNECT_SLACK_MS >= (callbackRuns[0] as RunRecord).at - 5_000,
      )
      cause = fresh <= memberReruns || cutNear ? 'chord-republish' : 'unexplained'
    } else {
      cause = rerunCause(previous, run, d)
    }
    out.push({ id: run.id, run, previous, cause })
  }
  return out
}

/** Counts by cause. */
export function countCauses(extras: readonly ExtraRun[]): Record<RerunCause, number> {
  const out: Record<RerunCause, number> = {
    kill: 0,
    crash: 0,
    cut: 0,
    'graceful-stop': 0,
    'chord-republish': 0,
    republish: 0,
    unexplained: 0,
  }
  for (const e of extras) out[e.cause]++
  return out
}
