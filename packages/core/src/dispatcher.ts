import type { Broker, OutgoingMessage } from './broker.js'
import type { ErrorCallbackInput } from './canvas.js'
import { linkFrames, mergeInput, planMap, resultValue, storeResult } from './dispatcher-frames.js'
import { ENVELOPE_VERSION, type Envelope, encodeEnvelope, type WireFrame, type WireNode } from './envelope.js'
import { NotSupportedError, PayloadTooLargeError, type SerializedError, ValidationError } from './errors.js'
import { type Instrumentation, notifyPublish } from './instrumentation.js'
import type { MemberOutcome, ResultBackend } from './result-backend.js'
import type { AnyTask } from './task.js'
import { envelopeProblem } from './wire-check.js'

/** The previous step's output, when there is one. */
export type Upstream = { readonly has: false } | { readonly has: true; readonly value: unknown }

const NO_INPUT: Upstream = { has: false }

/** Lineage and headers carried from a task to the ones it starts. */
export interface Lineage {
  readonly root?: string | undefined
  readonly parent?: string | undefined
  readonly headers?: Readonly<Record<string, string>> | undefined
}

/** Settings the dispatcher needs from the app. */
export interface DispatcherSettings {
  readonly defaultQueue: string
  readonly resultTtlMs: number
  /** Chunk size for one `publish` call when sending many messages. */
  readonly publishChunk: number
  /** Tracing and metrics hooks (`createApp({ instrumentation })`). Default none. */
  readonly instrumentation?: readonly Instrumentation[]
}

/** Where the dispatcher sends: the broker, or the user's transaction. */
export type PublishTarget = (queue: string, messages: readonly OutgoingMessage[]) => Promise<void>

/**
 * Turns canvases into envelopes and envelopes into published messages; walks continuation stacks
 * on success and failure. Shared by `app.send` and the worker, so a workflow behaves the same
 * whoever moves it on.
 */
export class Dispatcher {
  /** The app's instrumentation; the worker reads it too (empty: nothing is called). */
  readonly instrumentation: readonly Instrumentation[]

  constructor(
    private readonly broker: Broker,
    private readonly backend: ResultBackend | undefined,
    private readonly tasks: ReadonlyMap<string, AnyTask>,
    private readonly settings: DispatcherSettings,
  ) {
    this.instrumentation = settings.instrumentation ?? []
  }

  /** The queue a task node goes to: its own option, else its task's, else the app's default. */
  readonly queueOf = (node: Extract<WireNode, { kind: 'task' }>): string =>
    node.options?.queue ?? this.tasks.get(node.task)?.queue ?? this.settings.defaultQueue

  /** Add to `out` the envelopes that start `node`, on top of `stack`. */
  async plan(
    node: WireNode,
    upstream: Upstream,
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    const base = linkFrames(node, stack)
    switch (node.kind) {
      case 'task':
        out.push(this.envelopeFor(node, upstream, base, lineage))
        return
      case 'chain': {
        const [first, ...rest] = node.steps
        if (first === undefined)
          return this.advance(upstream.has ? upstream.value : undefined, base, lineage, out)
        const frames = rest.reverse().map((n): WireFrame => ({ t: 'next', node: n }))
        return this.plan(first, upstream, [...base, ...frames], lineage, out)
      }
      case 'group':
        return this.planGroup(node.id, node.members, false, upstream, base, lineage, out)
      case 'chord':
        return this.planGroup(
          node.id,
          node.header,
          node.tolerant === true,
          upstream,
          [...base, { t: 'next', node: node.body }],
          lineage,
          out,
        )
      case 'map':
        return planMap(this, node, upstream, base, lineage, out)
    }
  }

  private async planGroup(
    id: string,
    members: readonly WireNode[],
    tolerant: boolean,
    upstream: Upstream,
    stack: readonly WireFrame[],
    lineage: Lineage,
    out: Envelope[],
  ): Promise<void> {
    if (members.length === 0) return this.advance([], stack, lineage, out)
    this.requireBackend('groups and chords')
    const size = members.length
    for (let index = 0; index < size; index++) {
      const join: WireFrame = tolerant
        ? { t: 'join', group: id, index, size, tolerant }
        : { t: 'join', group: id, index, size }
      await this.plan(members[index] as WireNode, upstream, [...stack, join], lineage, out)
    }
  }

  /** After `env`'s task succeeded with `output`: walk its stack and publish what that starts. */
  async succeeded(env: Envelope, output: unknown): Promise<void> {
    if (!env.stack || env.stack.length === 0) return
    const next: Envelope[] = []
    await this.advance(output, env.stack, lineageAfter(env), next)
    await this.publish(next)
  }

  /** After `env`'s task failed for good with `error`: walk its failure path and publish what that starts. */
  async failed(env: Envelope, error: SerializedError): Promise<void> {
    if (!env.stack || env.stack.length === 0) return
    const next: Envelope[] = []
    await this.fail(error, { taskId: env.id, task: env.task }, env.stack, lineageAfter(env), next)
    await this.publish(next)
  }

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
      if (frame.t === 'next') return this.plan(frame.node, { has: true, value: current }, rest, lineage, out)
      if (frame.t === 'onSuccess') {
        // A link starts a workflow of its own (empty stack): its outcome never reaches this one.
        await this.plan(frame.node, { has: true, value: current }, [], lineage, out)
        continue
      }
      if (frame.t === 'result') {
        current = resultValue(frame, current)
        await storeResult(this.backend, frame, { ok: true, value: current }, this.settings.resultTtlMs)
        continue
      }
      const progress = await this.requireBackend('groups and chords').completeGroupMember(
        frame.group,
        frame.index,
        frame.size,
        { ok: true, value: current },
        { ttlMs: this.settings.resultTtlMs },
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
        await this.plan(frame.node, { has: true, value: input }, [], lineage, out)
        continue
      }
      if (frame.t === 'next') {
        await this.markFailed(frame.node, error)
        continue
      }
      if (frame.t === 'onSuccess') continue
      if (frame.t === 'result') {
        await storeResult(this.backend, frame, { ok: false, error }, this.settings.resultTtlMs)
        continue
      }
      const progress = await this.requireBackend('groups and chords').completeGroupMember(
        frame.group,
        frame.index,
        frame.size,
        { ok: false, error },
        { ttlMs: this.settings.resultTtlMs },
      )
      if (!progress.done) return
      if (frame.tolerant) return this.advance(progress.outcomes ?? [], rest, lineage, out)
      const first = (progress.outcomes ?? []).find((o): o is Extract<MemberOutcome, { ok: false }> => !o.ok)
      error = first?.error ?? error
    }
  }

  private async markFailed(node: WireNode, error: SerializedError): Promise<void> {
    if (!this.backend) return
    const now = Date.now()
    const ids: string[] = []
    collectTaskIds(node, ids)
    await Promise.all(
      ids.map((id) =>
        this.backend?.setState(
          { id, state: 'FAILURE', error, finishedAt: now, attempts: 0 },
          { ttlMs: this.settings.resultTtlMs },
        ),
      ),
    )
  }

  /** The envelope of a task node, with its input and defaults resolved. */
  envelopeFor(
    node: Extract<WireNode, { kind: 'task' }>,
    upstream: Upstream,
    stack: readonly WireFrame[],
    lineage: Lineage,
  ): Envelope {
    // An `immutable` node is bound even when its input is undefined (absent from the JSON).
    // A partial signature (`merge`) has input but is not bound: the previous output completes it.
    const bound = node.merge === undefined && (node.immutable === true || Object.hasOwn(node, 'input'))
    if (!bound && !upstream.has) {
      throw new TypeError(
        `signature of task "${node.task}" has no input: use .s(input) or put it after another step`,
      )
    }
    const def = this.tasks.get(node.task)
    const opts = node.options
    const now = Date.now()
    const env: Envelope = {
      v: ENVELOPE_VERSION,
      id: node.id,
      task: node.task,
      input: bound
        ? node.input
        : node.merge
          ? mergeInput(node, (upstream as { value: unknown }).value)
          : (upstream as { value: unknown }).value,
      queue: this.queueOf(node),
      attempt: 1,
      createdAt: now,
    }
    const priority = opts?.priority ?? def?.priority
    if (priority !== undefined) env.priority = priority
    const countdown = opts?.countdownMs
    if (countdown !== undefined && countdown > 0) env.eta = now + countdown
    const timeoutMs = opts?.timeoutMs
    if (timeoutMs !== undefined) env.timeoutMs = timeoutMs
    if (lineage.headers && Object.keys(lineage.headers).length > 0) env.headers = { ...lineage.headers }
    env.root = lineage.root ?? node.id
    if (lineage.parent !== undefined) env.parent = lineage.parent
    if (stack.length > 0) env.stack = [...stack]
    return env
  }

  /**
   * Encode and publish envelopes, grouped by queue, through `target` (default: the broker).
   * Delays longer than the broker's `maxDelayMs` go out as the longest it allows; the worker
   * re-publishes the rest (a hop) and never runs a task before its `eta`.
   */
  async publish(envelopes: readonly Envelope[], target?: PublishTarget): Promise<void> {
    if (envelopes.length === 0) return
    const send: PublishTarget = target ?? ((q, m) => this.broker.publish(q, m))
    if (this.instrumentation.length !== 0) notifyPublish(this.instrumentation, envelopes)
    const byQueue = new Map<string, OutgoingMessage[]>()
    const now = Date.now()
    for (const env of envelopes) {
      const message = this.toMessage(env, now)
      let list = byQueue.get(env.queue)
      if (!list) {
        list = []
        byQueue.set(env.queue, list)
      }
      list.push(message)
    }
    const chunk = this.settings.publishChunk
    await Promise.all(
      [...byQueue].map(async ([queue, messages]) => {
        for (let i = 0; i < messages.length; i += chunk) {
          await send(queue, i === 0 && messages.length <= chunk ? messages : messages.slice(i, i + chunk))
        }
      }),
    )
  }

  /** One envelope as a broker message; enforces the broker's capabilities. */
  toMessage(env: Envelope, now = Date.now()): OutgoingMessage {
    const caps = this.broker.capabilities
    const problem = envelopeProblem(env)
    if (problem) {
      throw new ValidationError(
        `task "${env.task}": envelope field ${problem.path.join('.')} ${problem.message}`,
        [problem],
      )
    }
    const body = encodeEnvelope(env)
    if (body.byteLength > caps.maxMessageBytes) {
      throw new PayloadTooLargeError(body.byteLength, caps.maxMessageBytes, { adapter: this.broker.name })
    }
    let delayMs: number | undefined
    if (env.eta !== undefined && env.eta > now) {
      if (caps.maxDelayMs <= 0) {
        throw new NotSupportedError(`task "${env.task}": this broker cannot delay messages`, {
          adapter: this.broker.name,
        })
      }
      delayMs = Math.min(env.eta - now, caps.maxDelayMs)
    }
    if (env.priority !== undefined && env.priority > caps.maxPriority) {
      throw new NotSupportedError(
        caps.maxPriority === 0
          ? `task "${env.task}" asks for priority ${env.priority}, but this broker has no priorities`
          : `task "${env.task}" asks for priority ${env.priority}, above this broker's highest (${caps.maxPriority})`,
        { adapter: this.broker.name },
      )
    }
    return {
      body,
      // A deferred run and each debounced send are new publishes of the same attempt.
      dedupId: `${env.id}:${env.attempt}${env.deferrals ? `:d${env.deferrals}` : ''}${env.debounce ? `:${env.debounce.slice(env.debounce.lastIndexOf(' ') + 1)}` : ''}`,
      ...(delayMs !== undefined && { delayMs }),
      ...(env.priority !== undefined && env.priority > 0 && { priority: env.priority }),
    }
  }

  private requireBackend(feature: string): ResultBackend {
    if (!this.backend)
      throw new NotSupportedError(`${feature} need a result backend: pass \`backend\` to createApp()`)
    return this.backend
  }
}

/** The lineage of the tasks that `env`'s task starts. */
function lineageAfter(env: Envelope): Lineage {
  return { root: env.root ?? env.id, parent: env.id, headers: env.headers }
}

/** Every task id inside a node, in order. */
export function collectTaskIds(node: WireNode, into: string[]): void {
  switch (node.kind) {
    case 'task':
      into.push(node.id)
      return
    case 'chain':
      for (const s of node.steps) collectTaskIds(s, into)
      return
    case 'group':
      for (const m of node.members) collectTaskIds(m, into)
      return
    case 'chord':
      for (const m of node.header) collectTaskIds(m, into)
      collectTaskIds(node.body, into)
      return
    case 'map':
      // Its members do not exist yet; its handle waits on the map's own id.
      into.push(node.id)
  }
}

export { NO_INPUT }
