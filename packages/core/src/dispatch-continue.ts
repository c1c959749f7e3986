import type { ErrorCallbackInput } from './canvas.js'
import { collectTaskIds } from './canvas-fold.js'
import type { Lineage, Planner, Settler } from './dispatch-plan.js'
import { resultValue } from './dispatcher-frames.js'
import type { Envelope, WireFrame, WireNode } from './envelope.js'
import { NotSupportedError, type SerializedError } from './errors.js'
import type { MemberOutcome, ResultBackend } from './result-backend.js'

// Continuation: what a workflow does after one of its tasks settles, walking the task's stack.
// This is where workflow steps touch the backend (group counters, `result` frames, downstream
// FAILURE records); what the walk starts is planned by the `Planner` and added to `out` for the
// caller to publish.

/** The success and failure walks of a continuation stack. */
export class Continuation implements Settler {
  constructor(
    private readonly backend: ResultBackend | undefined,
    private readonly resultTtlMs: number,
    private readonly planner: Pick<Planner, 'plan'>,
  ) {}

  /** Success walk: hand `value` to the top of `stack`, adding what it starts to `out`. */
  async advance(
    value: unknown,
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    let current = value
    for (let i = stack.length - 1; i >= 0; i--) {
      const frame = stack[i] as WireFrame
      const rest = stack.slice(0, i)
      if (frame.t === 'onError') continue
      if (frame.t === 'next')
        return this.planner.plan(frame.node, { has: true, value: current }, rest, lineage, out)
      if (frame.t === 'onSuccess') {
        // A link starts a workflow of its own (empty stack): its outcome never reaches this one.
        await this.planner.plan(frame.node, { has: true, value: current }, [], lineage, out)
        continue
      }
      if (frame.t === 'result') {
        current = resultValue(frame, current)
        await this.storeResult(frame, { ok: true, value: current })
        continue
      }
      const progress = await this.requireBackend().completeGroupMember(
        frame.group,
        frame.index,
        frame.size,
        { ok: true, value: current },
        { ttlMs: this.resultTtlMs },
      )
      if (!progress.done) return
      const outcomes = progress.outcomes ?? []
      if (frame.tolerant) {
        current = outcomes
        continue
      }
      const failed = outcomes.find((o): o is Extract<MemberOutcome, { ok: false }> => !o.ok)
      if (failed) return this.fail(failed.error, { taskId: frame.group, task: 'group' }, rest, lineage, out)
      current = outcomes.map((o) => (o as { value: unknown }).value)
    }
  }

  /**
   * Failure walk: `error` stopped a task for good. Fires `onError` callbacks, marks downstream
   * task ids FAILURE (so their result handles settle), and records the failure in groups.
   */
  async fail(
    error: SerializedError,
    failed: { taskId: string; task: string },
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    for (let i = stack.length - 1; i >= 0; i--) {
      const frame = stack[i] as WireFrame
      const rest = stack.slice(0, i)
      if (frame.t === 'onError') {
        const input: ErrorCallbackInput = { taskId: failed.taskId, task: failed.task, error }
        await this.planner.plan(frame.node, { has: true, value: input }, [], lineage, out)
        continue
      }
      if (frame.t === 'next') {
        await this.markFailed(frame.node, error)
        continue
      }
      if (frame.t === 'onSuccess') continue
      if (frame.t === 'result') {
        await this.storeResult(frame, { ok: false, error })
        continue
      }
      const progress = await this.requireBackend().completeGroupMember(
        frame.group,
        frame.index,
        frame.size,
        { ok: false, error },
        { ttlMs: this.resultTtlMs },
      )
      if (!progress.done) return
      if (frame.tolerant) return this.advance(progress.outcomes ?? [], rest, lineage, out)
      const first = (progress.outcomes ?? []).find((o): o is Extract<MemberOutcome, { ok: false }> => !o.ok)
      error = first?.error ?? error
    }
  }

  private async markFailed(node: WireNode, error: SerializedError): Promise<void> {
    const backend = this.backend
    if (!backend) return
    const now = Date.now()
    const ids: string[] = []
    collectTaskIds(node, ids)
    await Promise.all(
      ids.map((id) =>
        backend.setState(
          { id, state: 'FAILURE', error, finishedAt: now, attempts: 0 },
          { ttlMs: this.resultTtlMs },
        ),
      ),
    )
  }

  /** Store the outcome reaching a `result` frame under its id (nothing without a backend). */
  private async storeResult(
    frame: Extract<WireFrame, { t: 'result' }>,
    outcome:
      | { readonly ok: true; readonly value: unknown }
      | { readonly ok: false; readonly error: SerializedError },
  ): Promise<void> {
    if (!this.backend) return
    const base = {
      id: frame.id,
      finishedAt: Date.now(),
      ...(frame.task !== undefined && { task: frame.task }),
    }
    await this.backend.setState(
      outcome.ok
        ? { ...base, state: 'SUCCESS', result: outcome.value }
        : { ...base, state: 'FAILURE', error: outcome.error },
      { ttlMs: this.resultTtlMs },
    )
  }

  private requireBackend(): ResultBackend {
    if (!this.backend)
      throw new NotSupportedError('groups and chords need a result backend: pass `backend` to createApp()')
    return this.backend
  }
}
