import type { DeadLetter, QueueStats, TaskRecord } from '@errand/core'
import { sortDeadLetters } from './dead-letter-sort.js'
import {
  callbackExtras,
  countCauses,
  type Disruptions,
  type ExtraRun,
  extraRuns,
  runsById,
} from './duplicates.js'
import type { ChaosReport } from './report.js'
import type { RunRecord } from './run-log.js'
import type { GarbageItem } from './stores/rig.js'
import type { WorkerExit } from './worker-pool.js'
import { CHORD_SIZE, type Workload } from './workload.js'

/** How a handle's `get()` ended. */
export type HandleOutcome =
  | { readonly status: 'resolved'; readonly value: unknown }
  | { readonly status: 'rejected'; readonly code: string; readonly message: string }
  | { readonly status: 'unsettled'; readonly message: string }

/** Everything a run collected, for {@link verify}. */
export interface Collected {
  readonly meta: Pick<
    ChaosReport,
    'store' | 'backend' | 'variant' | 'queue' | 'sources' | 'startedAt' | 'durationMs'
  >
  readonly workload: Workload
  readonly outcomes: readonly HandleOutcome[]
  readonly states: ReadonlyMap<string, TaskRecord | undefined>
  readonly runs: readonly RunRecord[]
  readonly deadLetters: readonly DeadLetter[]
  readonly garbage: readonly GarbageItem[]
  readonly disruptions: Disruptions
  readonly spawned: number
  /** When the disruptions ended (SIGTERMs after it are the final graceful stop). */
  readonly chaosEndedAt: number
  readonly queueAtEnd: QueueStats | string
  /** Failures the runner itself saw (a writer that threw, a drain that timed out…). */
  readonly runnerFailures: readonly string[]
}

const SAMPLE = 10
const bump = (o: Record<string, number>, k: string, n = 1) => {
  o[k] = (o[k] ?? 0) + n
}
const dec = new TextDecoder()
const show = (dl: DeadLetter) =>
  `${dl.reason}: ${JSON.stringify(dec.decode(dl.body.subarray(0, 80)))}${dl.error ? ` (${dl.error.message})` : ''}`

/**
 * Check a run against the suite's assertions and build its report. Assertions: no task lost
 * (SUCCESS, or FAILURE with a dead letter and a reason, its own or an upstream one); every handle
 * settles, with the right value; no worker process dies but by the kills, and graceful stops exit
 * 0; every chord callback fires, extras only in the documented crash window; no task re-runs after
 * a graceful stop; every garbage item ends in the dead letters as `undecodable`; the queue is
 * empty at the end.
 */
export function verify(c: Collected): ChaosReport {
  const failures = [...c.runnerFailures]
  const { workload } = c
  const taskIds = new Set(workload.tasks.keys())
  const sorted = sortDeadLetters(c.deadLetters, taskIds, c.garbage)
  const byId = runsById(c.runs)

  // Outcome of every task id.
  const states: Record<string, number> = {}
  const unexpectedFailures: Record<string, number> = {}
  const lost: string[] = []
  const noRun: string[] = []
  let succeeded = 0
  let failed = 0
  const hasOwnDeadLetter = (id: string) => (sorted.byTask.get(id)?.length ?? 0) > 0
  for (const w of workload.workflows) {
    w.taskIds.forEach((id, position) => {
      const state = c.states.get(id)?.state ?? 'MISSING'
      bump(states, state)
      const planned = workload.tasks.get(id)
      if (state === 'SUCCESS') {
        succeeded++
        if (!byId.has(id)) noRun.push(id)
        if (planned?.mode === 'reject') failures.push(`task ${id} rejects by design but ended SUCCESS`)
        return
      }
      if (state === 'FAILURE') {
        failed++
        // Upstream: an earlier chain step, or any member of the chord whose callback this is.
        const upstream =
          planned?.kind === 'callback' ? w.taskIds.slice(0, CHORD_SIZE) : w.taskIds.slice(0, position)
        const own = sorted.byTask.get(id)?.[0]
        const accounted = own !== undefined || upstream.some(hasOwnDeadLetter)
        if (!accounted) lost.push(`${id} (FAILURE without a dead letter)`)
        if (planned?.mode !== 'reject') bump(unexpectedFailures, own?.reason ?? 'upstream')
        return
      }
      // The evidence: each run (attempt, process, ms from the first run) and how its process ended.
      const runs = byId.get(id) ?? []
      const t0 = runs[0]?.at ?? 0
      const story = runs
        .map((r) => {
          const stop = c.disruptions.stops.find((x) => x.pid === r.pid && x.at >= r.at)
          return `attempt ${r.attempt} pid ${r.pid} +${r.at - t0} ms${r.planned ? ` (${r.planned})` : ''}${stop ? ` then ${stop.signal} +${stop.at - t0} ms` : ''}`
        })
        .join('; ')
      lost.push(`${id} (${state}; runs: ${story || 'none'}; planned ${planned?.mode ?? '?'})`)
    })
  }
  if (lost.length > 0) {
    failures.push(
      `${lost.length} task(s) lost (not SUCCESS, not FAILURE with a dead letter): ${lost.slice(0, SAMPLE).join(', ')}`,
    )
  }
  if (noRun.length > 0) {
    failures.push(
      `${noRun.length} task(s) SUCCESS without any recorded run: ${noRun.slice(0, SAMPLE).join(', ')}`,
    )
  }

  // Handles.
  let resolved = 0
  let rejected = 0
  const unsettled: string[] = []
  const wrong: string[] = []
  c.outcomes.forEach((o, i) => {
    const w = workload.workflows[i]
    if (!w) return
    if (o.status === 'resolved') {
      resolved++
      if (o.value !== w.expected)
        wrong.push(`${w.kind} ${w.handle.id}: got ${JSON.stringify(o.value)}, expected ${w.expected}`)
    } else if (o.status === 'rejected') {
      rejected++
      const explained = w.expected === 'failure' || w.taskIds.some(hasOwnDeadLetter)
      if (!explained)
        wrong.push(`${w.kind} ${w.handle.id}: rejected (${o.code}: ${o.message}) with no dead letter`)
    } else unsettled.push(`${w.kind} ${w.handle.id}: ${o.message}`)
  })
  if (unsettled.length > 0)
    failures.push(`${unsettled.length} handle(s) never settled: ${unsettled.slice(0, SAMPLE).join('; ')}`)
  if (wrong.length > 0)
    failures.push(`${wrong.length} handle(s) settled wrong: ${wrong.slice(0, SAMPLE).join('; ')}`)

  // Workers. A worker that could not connect while it was starting during a cut exits 1 from
  // runWorker (connect rejects with ERR_CONNECTION): a supervisor restarts it, as ours does. That
  // is counted apart and reported; any other death outside the kills fails the run.
  const duringCut = (e: WorkerExit) =>
    c.disruptions.cuts.some((cut) => cut.from <= e.exitedAt && cut.to + 1_000 >= e.startedAt)
  // `sent` may be SIGKILL: a kill can pick a worker whose exit is not processed yet.
  const startupExits = c.disruptions.exits.filter(
    (e) =>
      e.sent !== 'SIGTERM' &&
      !e.wasReady &&
      e.code === 1 &&
      e.stderrTail.includes('ERR_CONNECTION') &&
      duringCut(e),
  )
  const unexpectedExits = c.disruptions.exits.filter(
    (e) =>
      !startupExits.includes(e) &&
      (e.sent === 'none' ||
        (e.sent === 'SIGKILL' && e.signal !== 'SIGKILL') ||
        (e.sent === 'SIGTERM' && e.code !== 0)),
  )
  for (const e of unexpectedExits) {
    const what =
      e.sent === 'SIGTERM'
        ? 'after a graceful SIGTERM'
        : e.sent === 'SIGKILL'
          ? 'before its SIGKILL'
          : 'on its own'
    failures.push(
      `worker ${e.pid} exited ${what} with code ${e.code} signal ${e.signal} after ${e.exitedAt - e.startedAt} ms (${e.wasReady ? 'was consuming' : 'still starting'}); stderr tail: ${e.stderrTail.slice(-800)}`,
    )
  }

  // Duplicates: singles, steps and members; chord callbacks apart.
  const plainIds = [...workload.tasks.values()].filter((t) => t.kind !== 'callback').map((t) => t.id)
  const plainExtras = extraRuns(byId, plainIds, c.disruptions)
  let plannedRetries = 0
  for (const id of plainIds) {
    const runs = byId.get(id) ?? []
    for (let i = 1; i < runs.length; i++) if (runs[i - 1]?.planned === 'fail') plannedRetries++
  }
  const callbackExtraRuns: ExtraRun[] = []
  let fired = 0
  const neverFired: string[] = []
  for (const w of workload.workflows) {
    if (w.kind !== 'chord') continue
    const callbackId = w.taskIds[w.taskIds.length - 1] as string
    const runs = byId.get(callbackId) ?? []
    if (runs.length > 0) fired++
    else if (c.states.get(callbackId)?.state !== 'FAILURE') neverFired.push(callbackId)
    const members = new Set(w.taskIds.slice(0, CHORD_SIZE))
    const memberReruns = plainExtras.filter((e) => members.has(e.id)).length
    callbackExtraRuns.push(...callbackExtras(runs, memberReruns, c.disruptions))
  }
  if (neverFired.length > 0)
    failures.push(
      `${neverFired.length} chord callback(s) never fired: ${neverFired.slice(0, SAMPLE).join(', ')}`,
    )
  const badCallbacks = callbackExtraRuns.filter(
    (e) => e.cause === 'unexplained' || e.cause === 'graceful-stop',
  )
  if (badCallbacks.length > 0) {
    failures.push(
      `${badCallbacks.length} chord callback run(s) beyond the first outside the crash window: ${badCallbacks
        .slice(0, SAMPLE)
        .map((e) => `${e.id} attempt ${e.run.attempt} pid ${e.run.pid} (${e.cause})`)
        .join(', ')}`,
    )
  }
  const afterGraceful = plainExtras.filter((e) => e.cause === 'graceful-stop')
  if (afterGraceful.length > 0) {
    failures.push(
      `${afterGraceful.length} task(s) ran again after the worker that ran them stopped gracefully (SIGTERM, exit 0): ${afterGraceful
        .slice(0, SAMPLE)
        .map((e) => {
          // When the run began against the stop and the exit, and what the worker said on stderr.
          const stop = c.disruptions.stops.find((s) => s.pid === e.previous.pid && s.signal === 'SIGTERM')
          const exit = c.disruptions.exits.find((x) => x.pid === e.previous.pid)
          const tail = exit?.stderrTail.trim().slice(-300)
          return `${e.id} pid ${e.previous.pid} → ${e.run.pid} (run began ${stop ? stop.at - e.previous.at : '?'} ms before SIGTERM, exit ${exit ? exit.exitedAt - e.previous.at : '?'} ms after it began, rerun ${e.run.at - e.previous.at} ms after${tail ? `; stderr: ${tail}` : ''})`
        })
        .join(', ')}`,
    )
  }
  const allExtras = [...plainExtras, ...callbackExtraRuns]

  // Garbage.
  const otherReason: Record<string, number> = {}
  const allowedReason: Record<string, number> = {}
  const missing: string[] = []
  let undecodable = 0
  for (const g of sorted.garbage) {
    if (g.deadLetter === undefined) missing.push(g.item.label)
    else if (g.deadLetter.reason === 'undecodable') undecodable++
    else if (g.item.reasons?.includes(g.deadLetter.reason)) bump(allowedReason, g.deadLetter.reason)
    else bump(otherReason, g.deadLetter.reason)
  }
  if (missing.length > 0) {
    failures.push(
      `${missing.length} garbage item(s) not in the dead letters: ${missing.slice(0, SAMPLE).join(', ')}`,
    )
  }
  if (Object.keys(otherReason).length > 0) {
    failures.push(
      `garbage dead-lettered with a reason other than undecodable: ${JSON.stringify(otherReason)}`,
    )
  }

  // The queue at the end.
  const q = c.queueAtEnd
  if (typeof q === 'string') failures.push(`queue stats at the end failed: ${q}`)
  else if (q.ready !== 0 || (q.delayed ?? 0) !== 0 || (q.inFlight ?? 0) !== 0) {
    failures.push(`queue not empty at the end: ${JSON.stringify(q)}`)
  }

  const byReason: Record<string, number> = {}
  for (const dl of c.deadLetters) bump(byReason, dl.reason)
  const kills = c.disruptions.stops.filter((s) => s.signal === 'SIGKILL').length
  const gracefulStops = c.disruptions.stops.filter(
    (s) => s.signal === 'SIGTERM' && s.at < c.chaosEndedAt,
  ).length
  return {
    ...c.meta,
    tasks: {
      sent: workload.counts.tasks,
      singles: workload.counts.singles,
      chains: workload.counts.chains,
      chords: workload.counts.chords,
      chordSize: CHORD_SIZE,
    },
    outcome: {
      succeeded,
      failed,
      lost: lost.length,
      lostSample: lost.slice(0, SAMPLE),
      states,
      unexpectedFailures,
    },
    handles: {
      total: workload.workflows.length,
      resolved,
      rejected,
      unsettled: unsettled.length,
      wrong: wrong.length,
      wrongSample: wrong.slice(0, SAMPLE),
    },
    deadLetters: {
      total: c.deadLetters.length,
      byReason,
      ofTasks: [...sorted.byTask.values()].reduce((n, l) => n + l.length, 0),
      ofGarbage: sorted.garbage.filter((g) => g.deadLetter !== undefined).length,
      garbageRepeats: sorted.garbageRepeats.length,
      unexplained: sorted.unexplained.length,
      unexplainedSample: sorted.unexplained.slice(0, SAMPLE).map(show),
    },
    duplicates: {
      tasks: new Set(allExtras.map((e) => e.id)).size,
      extraRuns: allExtras.length,
      byCause: countCauses(allExtras),
      plannedRetries,
      sample: allExtras
        .filter((e) => e.cause !== 'kill')
        .slice(0, SAMPLE)
        .map((e) => `${e.id} ${e.cause} (pid ${e.previous.pid} → ${e.run.pid}, attempt ${e.run.attempt})`),
    },
    chordCallbacks: {
      chords: workload.counts.chords,
      fired,
      neverFired: neverFired.length,
      extras: callbackExtraRuns.length,
      extrasByCause: countCauses(callbackExtraRuns),
    },
    garbage: {
      written: c.garbage.length,
      undecodable,
      otherReason,
      allowedReason,
      refused: c.garbage.filter((g) => g.refused !== undefined).length,
      refusedSample: [...new Set(c.garbage.flatMap((g) => (g.refused ? [g.refused] : [])))].slice(0, 3),
      missing: missing.length,
      missingSample: missing.slice(0, SAMPLE),
      countedOnly: c.garbage.filter((g) => g.bodies.length === 0 && g.refused === undefined).length,
    },
    workers: {
      spawned: c.spawned,
      kills,
      gracefulStops,
      startupExitsDuringCuts: startupExits.length,
      unexpectedExits,
    },
    cuts: {
      count: c.disruptions.cuts.length,
      totalMs: c.disruptions.cuts.reduce((n, x) => n + x.to - x.from, 0),
    },
    queueAtEnd: c.queueAtEnd,
    failures,
    passed: failures.length === 0,
  }
}
