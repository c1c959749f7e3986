import type { WireNode } from './envelope.js'
import { CanceledError, NotSupportedError, TaskFailedError, TimeoutError } from './errors.js'
import type { ResultBackend, TaskRecord, TaskState } from './result-backend.js'

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

function waitSignal(options: GetOptions, id: string): { signal: AbortSignal; dispose: () => void } {
  const signals: AbortSignal[] = []
  let timer: NodeJS.Timeout | undefined
  if (options.signal) signals.push(options.signal)
  if (options.timeoutMs !== undefined) {
    const ctrl = new AbortController()
    timer = setTimeout(
      () => ctrl.abort(new TimeoutError(`no result for task ${id} within ${options.timeoutMs} ms`)),
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
  ) {}

  async state(): Promise<TaskState> {
    return (await (await backendFrom(this.backend)).getState(this.id))?.state ?? 'PENDING'
  }

  async info(): Promise<TaskRecord | undefined> {
    return (await backendFrom(this.backend)).getState(this.id)
  }

  async get(options: GetOptions = {}): Promise<T> {
    const backend = await backendFrom(this.backend)
    const { signal, dispose } = waitSignal(options, this.id)
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

  async get(options: GetOptions = {}): Promise<T> {
    requireBackend(this.backend)
    const { signal, dispose } = waitSignal(options, this.id)
    try {
      return (await Promise.all(this.children.map((c) => c.get({ signal })))) as T
    } finally {
      dispose()
    }
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

/** The handle for a sent node. */
export function resultFor<T>(node: WireNode, backend: ResultBackend | undefined): AsyncResult<T> {
  switch (node.kind) {
    case 'task':
      return new TaskResult<T>(node.id, backend)
    case 'chain': {
      const children = node.steps.map((s) => resultFor<unknown>(s, backend))
      const last = children[children.length - 1]
      if (!last) return new GroupResult<T>('empty-chain', backend, [])
      return new Delegating<T>(last as AsyncResult<T>, children)
    }
    case 'group':
      return new GroupResult<T>(
        node.id,
        backend,
        node.members.map((m) => resultFor<unknown>(m, backend)),
      )
    case 'chord': {
      const body = resultFor<T>(node.body, backend)
      return new Delegating<T>(
        body,
        node.header.map((m) => resultFor<unknown>(m, backend)),
      )
    }
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
}
