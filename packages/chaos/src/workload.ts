import { type App, type AsyncResult, type Canvas, chain, chord } from '@errand/core'
import type { ChaosTasks, SingleMode } from './tasks.js'

/** Members per chord. */
export const CHORD_SIZE = 100
/** Steps per chain. */
export const CHAIN_LENGTH = 3

/** One task the workload expects to run, with its place in its workflow. */
export interface PlannedTask {
  readonly id: string
  readonly kind: 'single' | 'step' | 'member' | 'callback'
  /** Index of its workflow in {@link Workload.workflows}. */
  readonly workflow: number
  /** Chain step number, or chord member number. */
  readonly position: number
  /** Singles only. */
  readonly mode?: SingleMode
}

/** One thing sent: a single task, a chain or a chord, with the value its handle should give. */
export interface Workflow {
  readonly kind: 'single' | 'chain' | 'chord'
  readonly handle: AsyncResult<number>
  /** The handle's value, or `failure` when it must reject (a single that rejects by design). */
  readonly expected: number | 'failure'
  /** Its task ids: a chain's steps in order; a chord's members, then its callback. */
  readonly taskIds: readonly string[]
}

/** Everything sent in one run. */
export interface Workload {
  readonly workflows: Workflow[]
  readonly tasks: Map<string, PlannedTask>
  readonly counts: { singles: number; chains: number; chords: number; tasks: number }
}

/** How `total` tasks split: about 40 % in chords of 100, 30 % in chains of 3, the rest single. */
export function workloadShape(total: number): { singles: number; chains: number; chords: number } {
  const chords = Math.max(1, Math.round((total * 0.4) / (CHORD_SIZE + 1)))
  const chains = Math.round((total * 0.3) / CHAIN_LENGTH)
  const singles = Math.max(0, total - chords * (CHORD_SIZE + 1) - chains * CHAIN_LENGTH)
  return { singles, chains, chords }
}

/** Mode of single number `i`: 1 in 50 rejects, 1 in 20 fails its first run, the rest succeed. */
export function singleMode(i: number): SingleMode {
  if (i % 50 === 7) return 'reject'
  if (i % 20 === 3) return 'retry'
  return 'ok'
}

type Sendable = Canvas<never, number, true>
interface Piece {
  readonly kind: Workflow['kind']
  readonly canvas: Sendable
  readonly expected: number | 'failure'
  readonly mode?: SingleMode
}

/**
 * Send a workload of about `total` tasks, mixed in random order, in `sendMany` batches of
 * `batch`, spread evenly over about `overMs`. Returns what was sent.
 */
export async function sendWorkload(
  app: App,
  tasks: ChaosTasks,
  total: number,
  options: { batch: number; overMs: number; shouldStop: () => boolean },
): Promise<Workload> {
  const shape = workloadShape(total)
  const pieces: Piece[] = []
  for (let i = 0; i < shape.singles; i++) {
    const mode = singleMode(i)
    pieces.push({
      kind: 'single',
      canvas: tasks.single.s({ n: i, mode }) as Sendable,
      expected: mode === 'reject' ? 'failure' : i,
      mode,
    })
  }
  for (let i = 0; i < shape.chains; i++) {
    const start = 1000 * i
    const canvas = chain(tasks.step.s(start), tasks.step.s(), tasks.step.s()) as unknown as Sendable
    pieces.push({ kind: 'chain', canvas, expected: start + CHAIN_LENGTH })
  }
  for (let c = 0; c < shape.chords; c++) {
    const inputs = Array.from({ length: CHORD_SIZE }, (_, i) => c * CHORD_SIZE + i)
    const canvas = chord(
      inputs.map((n) => tasks.member.s(n)),
      tasks.total.s(),
    ) as unknown as Sendable
    pieces.push({ kind: 'chord', canvas, expected: inputs.reduce((s, n) => s + 2 * n, 0) })
  }
  shuffle(pieces)
  const pauseMs = options.overMs / Math.max(1, Math.ceil(pieces.length / options.batch))
  const workflows: Workflow[] = []
  const planned = new Map<string, PlannedTask>()
  for (let at = 0; at < pieces.length && !options.shouldStop(); at += options.batch) {
    const slice = pieces.slice(at, at + options.batch)
    const handles = await app.sendMany(slice.map((p) => p.canvas))
    slice.forEach((piece, k) => {
      const handle = handles[k] as AsyncResult<number>
      const index = workflows.length
      const taskIds = idsOf(piece.kind, handle)
      taskIds.forEach((id, position) => {
        const kind =
          piece.kind === 'single'
            ? 'single'
            : piece.kind === 'chain'
              ? 'step'
              : position < CHORD_SIZE
                ? 'member'
                : 'callback'
        planned.set(id, { id, kind, workflow: index, position, ...(piece.mode && { mode: piece.mode }) })
      })
      workflows.push({ kind: piece.kind, handle, expected: piece.expected, taskIds })
    })
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs))
  }
  return {
    workflows,
    tasks: planned,
    counts: {
      singles: workflows.filter((w) => w.kind === 'single').length,
      chains: workflows.filter((w) => w.kind === 'chain').length,
      chords: workflows.filter((w) => w.kind === 'chord').length,
      tasks: planned.size,
    },
  }
}

/** Task ids behind a handle: its own; a chain's steps; a chord's members and then its callback. */
function idsOf(kind: Workflow['kind'], handle: AsyncResult<number>): string[] {
  if (kind === 'single') return [handle.id]
  if (kind === 'chain') return handle.children.map((c) => c.id)
  return [...handle.children.map((c) => c.id), handle.id]
}

function shuffle<T>(xs: T[]): void {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[xs[i], xs[j]] = [xs[j] as T, xs[i] as T]
  }
}
