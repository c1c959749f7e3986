import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import type { QueueStats } from '@errand/core'
import type { RerunCause } from './duplicates.js'
import type { WorkerExit } from './worker-pool.js'

/** What one chaos run did and found. Written as JSON; printed as a short text. */
export interface ChaosReport {
  readonly store: string
  readonly backend: string
  readonly variant: string
  readonly queue: string
  /** Commit of the sources the workers were bundled from, and packages with uncommitted changes. */
  readonly sources: string
  readonly startedAt: string
  readonly durationMs: number
  readonly tasks: {
    readonly sent: number
    readonly singles: number
    readonly chains: number
    readonly chords: number
    readonly chordSize: number
  }
  /** Final states of every task id sent. */
  readonly outcome: {
    readonly succeeded: number
    readonly failed: number
    /** Neither SUCCESS nor an accounted-for FAILURE. */
    readonly lost: number
    readonly lostSample: readonly string[]
    readonly states: Record<string, number>
    /** FAILURE of a task not designed to fail, by dead-letter reason. */
    readonly unexpectedFailures: Record<string, number>
  }
  readonly handles: {
    readonly total: number
    readonly resolved: number
    readonly rejected: number
    readonly unsettled: number
    readonly wrong: number
    readonly wrongSample: readonly string[]
  }
  readonly deadLetters: {
    readonly total: number
    readonly byReason: Record<string, number>
    readonly ofTasks: number
    readonly ofGarbage: number
    /** A garbage item's second (third…) dead letter. */
    readonly garbageRepeats: number
    readonly unexplained: number
    readonly unexplainedSample: readonly string[]
  }
  readonly duplicates: {
    /** Task ids that ran more than they planned to. */
    readonly tasks: number
    readonly extraRuns: number
    readonly byCause: Record<RerunCause, number>
    readonly plannedRetries: number
    readonly sample: readonly string[]
  }
  readonly chordCallbacks: {
    readonly chords: number
    readonly fired: number
    readonly neverFired: number
    readonly extras: number
    readonly extrasByCause: Record<RerunCause, number>
  }
  readonly garbage: {
    readonly written: number
    readonly undecodable: number
    /** Garbage dead-lettered with another reason. */
    readonly otherReason: Record<string, number>
    /** Garbage dead-lettered with a reason its item allows besides `undecodable` (`exhausted`). */
    readonly allowedReason: Record<string, number>
    /** Writes the store refused (a constraint): nothing to dead-letter. */
    readonly refused: number
    readonly refusedSample: readonly string[]
    readonly missing: number
    readonly missingSample: readonly string[]
    /** Items the store cannot identify by body: matched by count only. */
    readonly countedOnly: number
  }
  readonly workers: {
    readonly spawned: number
    readonly kills: number
    readonly gracefulStops: number
    /** Workers that exited 1 with ERR_CONNECTION while starting during a cut (restarted; not a failure). */
    readonly startupExitsDuringCuts: number
    readonly unexpectedExits: readonly WorkerExit[]
  }
  readonly cuts: { readonly count: number; readonly totalMs: number }
  readonly queueAtEnd: QueueStats | string
  /** Every assertion that failed, in words, with its evidence. Empty: the run passed. */
  readonly failures: readonly string[]
  readonly passed: boolean
}

/** A few lines for a terminal. */
export function formatReport(r: ChaosReport): string {
  const kv = (o: Record<string, number>) =>
    Object.entries(o)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ') || 'none'
  const lines = [
    `== chaos ${r.store} (${r.variant}, backend ${r.backend}): ${r.passed ? 'PASSED' : 'FAILED'} in ${(r.durationMs / 1000).toFixed(1)} s`,
    `sources ${r.sources}`,
    `tasks sent ${r.tasks.sent} (${r.tasks.singles} singles, ${r.tasks.chains} chains, ${r.tasks.chords} chords of ${r.tasks.chordSize})`,
    `completed ${r.outcome.succeeded}, failed ${r.outcome.failed}, lost ${r.outcome.lost}; unexpected failures: ${kv(r.outcome.unexpectedFailures)}`,
    `handles ${r.handles.total}: resolved ${r.handles.resolved}, rejected ${r.handles.rejected}, unsettled ${r.handles.unsettled}, wrong ${r.handles.wrong}`,
    `dead letters ${r.deadLetters.total} (${kv(r.deadLetters.byReason)}): tasks ${r.deadLetters.ofTasks}, garbage ${r.deadLetters.ofGarbage} (+${r.deadLetters.garbageRepeats} repeats), unexplained ${r.deadLetters.unexplained}`,
    `duplicates: ${r.duplicates.tasks} tasks, ${r.duplicates.extraRuns} extra runs (${kv(r.duplicates.byCause)}); planned retries ${r.duplicates.plannedRetries}`,
    `chord callbacks: ${r.chordCallbacks.fired}/${r.chordCallbacks.chords} fired, never ${r.chordCallbacks.neverFired}, extras ${r.chordCallbacks.extras} (${kv(r.chordCallbacks.extrasByCause)})`,
    `garbage ${r.garbage.written}: undecodable ${r.garbage.undecodable}, allowed other reasons ${kv(r.garbage.allowedReason)}, wrong reasons ${kv(r.garbage.otherReason)}, refused by the store ${r.garbage.refused}, missing ${r.garbage.missing}, counted only ${r.garbage.countedOnly}`,
    `workers spawned ${r.workers.spawned}, kills ${r.workers.kills}, graceful stops ${r.workers.gracefulStops}, startup exits during cuts ${r.workers.startupExitsDuringCuts}, unexpected exits ${r.workers.unexpectedExits.length}`,
    `cuts ${r.cuts.count} (${(r.cuts.totalMs / 1000).toFixed(1)} s in all); queue at end ${JSON.stringify(r.queueAtEnd)}`,
    ...r.failures.map((f) => `FAIL: ${f}`),
  ]
  return lines.join('\n')
}

/** Write the report as JSON (creating the folder). */
export function writeReport(path: string, report: ChaosReport): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`)
}
