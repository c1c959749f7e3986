import type { WireNode } from './envelope.js'
import { CanceledError, NotSupportedError, TaskFailedError, TimeoutError } from './errors.js'
import type { ResultBackend, TaskLogLine, TaskRecord, TaskState } from './result-backend.js'

/** Options of {@link AsyncResult.get}. */
export interface GetOptions {
  /** Reject with `ERR_TIMEOUT` after this long. Default: wait as long as it takes. */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

/**
 * A handle on something sent: a task, or a whole canvas. `get()` resolves with the output (a
 * chain's last step, a group's array, a chord's callback), or rejects with `ERR_TASK_FAILED` /
 * `ERR_CANCELED`. Waiting is pushed by the backend where it can.
 */
export interface AsyncResult<T> {
  /** The id to look the result up by: the task's, or the last task's of a chain/chord. */
  readonly id: string
  /** Handles of the parts: a chain's steps, a group's members, a chord's header. */
  readonly children: readonly AsyncResult<unknown>[]
  /** Current state (`PENDING` when nothing is recorded yet). */
  state(): Promise<TaskState>
  /** The stored record, if any. */
  info(): Promise<TaskRecord | undefined>
  /** Wait for the output. */
  get(options?: GetOptions): Promise<T>
  /**
   * The last value the task passed to `ctx.progress` (stored at most every 250 ms while it runs,
   * and with its outcome), or undefined. For a group: undefined (ask its members).
   */
  progress(): Promise<unknown>
  /** The lines the task wrote with `ctx.log` in its latest attempt, oldest first (capped). */
  logs(): Promise<TaskLogLine[]>
}

function requireBackend(backend: ResultBackend | undefined): ResultBackend {
  if (!backend) throw new NotSupportedError('results need a result backend: pass `backend` to createApp()')
  return backend
}

/** Where a task handle finds its backend: at hand, or once the app has connected. */
export type BackendSource = ResultBackend | undefined | (() => Promise<ResultBackend | undefined>)

async function backendFrom(source: BackendSource): Promise<ResultBackend> {
  return requireBackend(typeof source === 'function' ? await source() : source)
}

/** @internal What the app knows about its setup that a timeout message should mention. */
export interface WaitHints {
  /** Results live in this process's memory while the broker is shared with other processes. */
  readonly localResults: boolean
}

/** @internal What a timeout message can say: where the awaited tasks went, how the app is set up. */
export interface TimeoutFacts {
  readonly queues?: readonly string[]
  readonly localResults?: boolean
}

/** @internal Gives the {@link TimeoutFacts} of a handle; asked only when a wait times out. */
export interface Explain {
  explain(): TimeoutFacts
}

/** The `ERR_TIMEOUT` message of `get()`: what was awaited, and the likely causes. */
export function timeoutMessage(what: string, ms: number | undefined, explain: Explain | undefined): string {
  const ctx = explain?.explain()
  const queues = ctx?.queues?.length ? ctx.queues.map((q) => `"${q}"`).join(', ') : undefined
  let message =
    `no result for ${what} within ${ms} ms. Likely causes: no worker is consuming ` +
    `${queues ? `queue ${queues}` : 'its queue'} (or none registers the task), or it is still queued or running`
  if (ctx?.localResults) {
    message +=
      "; or its result is in another process's memory: this app keeps results in memory (backend " +
      'memory://) while its broker is shared, so a worker in another process stores them where this ' +
      'process cannot see them (pass a shared backend)'
  }
  return message
}

function waitSignal(
  options: GetOptions,
  what: string,
  explain: Explain | undefined,
): { signal: AbortSignal; dispose: () => void } {
  const signals: AbortSignal[] = []
  let timer: NodeJS.Timeout | undefined
  if (options.signal) signals.push(options.signal)
  if (options.timeoutMs !== undefined) {
    const ctrl = new AbortController()
    timer = setTimeout(
      () => ctrl.abort(new TimeoutError(timeoutMessage(what, options.timeoutMs, explain))),
      options.timeoutMs,
    )
    signals.push(ctrl.signal)
  }
  const signal =
    signals.length === 0
      ? new AbortController().signal
      : signals.length === 1
        ? (signals[0] as AbortSignal)
        : AbortSignal.any(signals)
  return { signal, dispose: () => clearTimeout(timer) }
}

/** The result of one task id. */
export class TaskResult<T> implements AsyncResult<T> {
  constructor(
    readonly id: string,
    private readonly backend: BackendSource,
    readonly children: readonly AsyncResult<unknown>[] = [],
    /** @internal Context for the timeout message. */
    private readonly explain?: Explain,
  ) {}

  async state(): Promise<TaskState> {
    return (await (await backendFrom(this.backend)).getState(this.id))?.state ?? 'PENDING'
  }

  async info(): Promise<TaskRecord | undefined> {
    return (await backendFrom(this.backend)).getState(this.id)
  }

  async progress(): Promise<unknown> {
    return (await this.info())?.progress
  }

  async logs(): Promise<TaskLogLine[]> {
    return [...((await this.info())?.logs ?? [])]
  }

  async get(options: GetOptions = {}): Promise<T> {
    const backend = await backendFrom(this.backend)
    const { signal, dispose } = waitSignal(options, `task ${this.id}`, this.explain)
    try {
      const record = await backend.waitFor(this.id, { signal })
      return unwrap<T>(record)
    } finally {
      dispose()
    }
  }
}

/** The result of a group: every member's output, in member order. */
export class GroupResult<T> implements AsyncResult<T> {
  constructor(
    readonly id: string,
    private readonly backend: ResultBackend | undefined,
    readonly children: readonly AsyncResult<unknown>[],
    /** @internal Context for the timeout message. */
    private readonly explain?: Explain,
  ) {}

  async state(): Promise<TaskState> {
    const states = await Promise.all(this.children.map((c) => c.state()))
    if (states.includes('FAILURE')) return 'FAILURE'
    if (states.includes('CANCELED')) return 'CANCELED'
    if (states.every((s) => s === 'SUCCESS')) return 'SUCCESS'
    if (states.some((s) => s !== 'PENDING')) return 'STARTED'
    return 'PENDING'
  }

  async info(): Promise<TaskRecord | undefined> {
    requireBackend(this.backend)
    return { id: this.id, state: await this.state(), children: this.children.map((c) => c.id) }
  }

  /** Undefined: a group reports no progress of its own (ask `children`). */
  async progress(): Promise<unknown> {
    requireBackend(this.backend)
    return undefined
  }

  /** Empty: a group keeps no log lines of its own (ask `children`). */
  async logs(): Promise<TaskLogLine[]> {
    requireBackend(this.backend)
    return []
  }

  async get(options: GetOptions = {}): Promise<T> {
    requireBackend(this.backend)
    const { signal, dispose } = waitSignal(options, `group ${this.id}`, this.explain)
    // One listener on the shared signal and a controller per member: handing the shared signal to
    // every member's waitFor put one listener per member on it (MaxListenersExceededWarning past
    // 10; 10,000 for a 10,000-member group). An AbortController costs well under a microsecond.
    const members = this.children.map(() => new AbortController())
    const abortAll = (reason: unknown) => {
      for (const m of members) m.abort(reason)
    }
    const onAbort = () => abortAll(signal.reason)
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    let settled = false
    try {
      const outputs = await Promise.all(
        this.children.map((c, i) => c.get({ signal: (members[i] as AbortController).signal })),
      )
      settled = true
      return outputs as T
    } finally {
      signal.removeEventListener('abort', onAbort)
      // A member failed or the wait ended: release the other members' waiters in the backend.
      if (!settled) abortAll(new CanceledWait())
      dispose()
    }
  }
}

/** Why the other members' waits end once one member of a group failed. */
class CanceledWait extends Error {
  constructor() {
    super('another member of the group settled the wait')
  }
}

function unwrap<T>(record: TaskRecord): T {
  switch (record.state) {
    case 'SUCCESS':
      return record.result as T
    case 'CANCELED':
      throw new CanceledError(record.id)
    default:
      throw new TaskFailedError(
        record.id,
        record.error ?? { name: 'Error', message: `task ended in state ${record.state}` },
      )
  }
}

type TaskNode = Extract<WireNode, { kind: 'task' }>

/** @internal How {@link resultFor} learns where each task was sent, for timeout messages. */
export interface ResultContext {
  readonly queueOf: (node: TaskNode) => string
  readonly hints: WaitHints
}

function collectQueues(node: WireNode, context: ResultContext, into: Set<string>): void {
  if (node.kind === 'task') into.add(context.queueOf(node))
  else if (node.kind === 'chain') for (const s of node.steps) collectQueues(s, context, into)
  else if (node.kind === 'group') for (const m of node.members) collectQueues(m, context, into)
  else if (node.kind === 'map') collectQueues(node.node, context, into)
  else {
    for (const m of node.header) collectQueues(m, context, into)
    collectQueues(node.body, context, into)
  }
}

/** Collects a node's queues on timeout only: one small object per handle made by `send`. */
class NodeFacts implements Explain {
  constructor(
    private readonly node: WireNode,
    private readonly context: ResultContext,
  ) {}

  explain(): TimeoutFacts {
    const queues = new Set<string>()
    collectQueues(this.node, this.context, queues)
    return { queues: [...queues], localResults: this.context.hints.localResults }
  }
}

function explainFor(node: WireNode, context: ResultContext | undefined): Explain | undefined {
  return context ? new NodeFacts(node, context) : undefined
}

/** The handle for a sent node. */
export function resultFor<T>(
  node: WireNode,
  backend: ResultBackend | undefined,
  context?: ResultContext,
): AsyncResult<T> {
  switch (node.kind) {
    case 'task':
      return new TaskResult<T>(node.id, backend, [], explainFor(node, context))
    case 'chain': {
      const children = node.steps.map((s) => resultFor<unknown>(s, backend, context))
      const last = children[children.length - 1]
      if (!last) return new GroupResult<T>('empty-chain', backend, [])
      return new Delegating<T>(last as AsyncResult<T>, children)
    }
    case 'group':
      return new GroupResult<T>(
        node.id,
        backend,
        node.members.map((m) => resultFor<unknown>(m, backend, context)),
        explainFor(node, context),
      )
    case 'chord': {
      const body = resultFor<T>(node.body, backend, context)
      return new Delegating<T>(
        body,
        node.header.map((m) => resultFor<unknown>(m, backend, context)),
      )
    }
    case 'map':
      // Members are made when the array is known: the map's result is stored under its own id.
      return new TaskResult<T>(node.id, backend, [], explainFor(node, context))
  }
}

/** A handle that answers as `inner` but lists other children. */
class Delegating<T> implements AsyncResult<T> {
  constructor(
    private readonly inner: AsyncResult<T>,
    readonly children: readonly AsyncResult<unknown>[],
  ) {}
  get id(): string {
    return this.inner.id
  }
  state(): Promise<TaskState> {
    return this.inner.state()
  }
  info(): Promise<TaskRecord | undefined> {
    return this.inner.info()
  }
  get(options?: GetOptions): Promise<T> {
    return this.inner.get(options)
  }
  progress(): Promise<unknown> {
    return this.inner.progress()
  }
  logs(): Promise<TaskLogLine[]> {
    return this.inner.logs()
  }
}
