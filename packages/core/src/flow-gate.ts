import type { Envelope } from './envelope.js'
import { NotSupportedError } from './errors.js'
import type { FlowControlStore } from './flow-control.js'
import {
  type ConcurrencyLimit,
  DEFAULT_SLOT_LEASE_MS,
  limitKey,
  type QueueLimits,
  type RateLimit,
} from './limits.js'
import type { Logger } from './logger.js'
import type { AnyTask } from './task.js'

/** One concurrency slot a run holds until it settles. */
interface Slot {
  readonly key: string
  readonly holder: string
  readonly max: number
  readonly leaseMs: number
}

/** What {@link FlowGate.admit} decides. */
export type Admission =
  | { readonly admitted: true; readonly release: () => Promise<void> }
  | { readonly admitted: false; readonly delayMs: number; readonly why: string }

/** Slot waits back off from 50 ms to this, so a full group is asked a few times a second at most. */
const MAX_SLOT_WAIT_MS = 2_000

/**
 * Decides whether a task may start now under its rate limit and concurrency limit and its queue's,
 * through the store's atomic primitives ({@link FlowControlStore}). Slots are taken first (task,
 * then queue), then rate budget (queue, then task): a run turned away by a rate gives its slots
 * back, and a rate is only spent by a run that starts (a queue budget spent before the task's own
 * limit turned the run away is the one thing lost, which errs on the slow side, never over).
 *
 * Held slots are renewed every third of their lease while the run goes on and released when it
 * settles; a worker that dies stops renewing, and its slots come back when their lease runs out.
 */
export class FlowGate {
  readonly #held = new Set<Slot>()
  #timer: NodeJS.Timeout | undefined
  #period = Number.POSITIVE_INFINITY

  constructor(
    private readonly store: FlowControlStore,
    private readonly queues: ReadonlyMap<string, QueueLimits>,
    private readonly logger: Logger,
  ) {}

  /** True when some limit applies to `task` run from `queue` (checked without I/O). */
  applies(task: AnyTask, queue: string): boolean {
    return task.rateLimit !== undefined || task.concurrency !== undefined || this.queues.has(queue)
  }

  /**
   * Take what the run needs, or say how long to wait. Throws `ERR_INVALID_OPTION` when a key
   * function fails on this input (the worker dead-letters the task as `invalid-input`).
   */
  async admit(task: AnyTask, env: Envelope, input: unknown): Promise<Admission> {
    const q = this.queues.get(env.queue)
    const holder = `${env.id}/${Math.random().toString(36).slice(2, 10)}`
    const slots: Slot[] = []
    const wanted: [ConcurrencyLimit<never> | undefined, string][] = [
      [task.concurrency, `task:${task.name}`],
      [q?.concurrency, `queue:${env.queue}`],
    ]
    const rates: [RateLimit<never> | undefined, string][] = [
      [q?.rateLimit, `queue:${env.queue}`],
      [task.rateLimit, `task:${task.name}`],
    ]
    // Keys first: a key function that throws must not leave slots or budget taken.
    const slotKeys = wanted.map(([l, scope]) => (l ? `${scope}:${limitKey(l, input, 'concurrency')}` : ''))
    const rateKeys = rates.map(([l, scope]) => (l ? `${scope}:${limitKey(l, input, 'rateLimit')}` : ''))
    const deferrals = env.deferrals ?? 0
    for (let i = 0; i < wanted.length; i++) {
      const limit = wanted[i]?.[0]
      if (!limit) continue
      const slot: Slot = {
        key: `slot:${slotKeys[i]}`,
        holder,
        max: limit.max,
        leaseMs: limit.leaseMs ?? DEFAULT_SLOT_LEASE_MS,
      }
      if (!(await this.store.acquireSlot(slot.key, holder, slot.max, slot.leaseMs))) {
        await this.#release(slots)
        const base = Math.min(MAX_SLOT_WAIT_MS, 50 * 2 ** Math.min(deferrals, 6))
        return { admitted: false, delayMs: Math.round(base * (0.5 + Math.random())), why: slot.key }
      }
      slots.push(slot)
    }
    for (let i = 0; i < rates.length; i++) {
      const limit = rates[i]?.[0]
      if (!limit) continue
      const key = `rate:${rateKeys[i]}`
      const wait = await this.store.takeRate(key, limit.max, limit.perMs)
      if (wait > 0) {
        await this.#release(slots)
        // Everyone turned away is told the same moment; later refusals spread out so a backlog
        // does not come back all at once, each time.
        const spread = (wait * Math.random() * Math.min(deferrals, 8)) / 4
        return { admitted: false, delayMs: Math.ceil(wait + spread), why: key }
      }
    }
    if (slots.length === 0) return { admitted: true, release: async () => {} }
    for (const s of slots) this.#held.add(s)
    this.#startRenewing()
    return { admitted: true, release: () => this.#release(slots) }
  }

  /** Stop renewing (the worker stopped); slots still held run out with their lease. */
  close(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#period = Number.POSITIVE_INFINITY
  }

  async #release(slots: readonly Slot[]): Promise<void> {
    for (const s of slots) this.#held.delete(s)
    if (this.#held.size === 0) this.close()
    await Promise.all(
      slots.map((s) =>
        this.store.releaseSlot(s.key, s.holder).catch((err: unknown) => {
          this.logger.warn('could not release a concurrency slot; its lease will free it', {
            key: s.key,
            error: String(err),
          })
        }),
      ),
    )
  }

  #startRenewing(): void {
    let shortest = Number.POSITIVE_INFINITY
    for (const s of this.#held) shortest = Math.min(shortest, s.leaseMs)
    const period = Math.max(50, Math.floor(shortest / 3))
    if (this.#timer && this.#period <= period) return
    clearInterval(this.#timer)
    this.#period = period
    this.#timer = setInterval(() => void this.#renew(), period)
    this.#timer.unref()
  }

  async #renew(): Promise<void> {
    await Promise.all(
      [...this.#held].map(async (s) => {
        try {
          if (!(await this.store.acquireSlot(s.key, s.holder, s.max, s.leaseMs))) {
            this.logger.warn('a running task lost its concurrency slot (its lease ran out before renewal)', {
              key: s.key,
            })
          }
        } catch (err) {
          this.logger.warn('could not renew a concurrency slot', { key: s.key, error: String(err) })
        }
      }),
    )
  }
}

/**
 * The gate a worker needs: undefined when no task and no queue of the app has a limit. Throws
 * `ERR_NOT_SUPPORTED` naming the first limit when the backend has no flow control (a limit that
 * one worker cannot see across the others would silently not hold).
 */
export function flowGateFor(
  rt: {
    readonly tasks: ReadonlyMap<string, AnyTask>
    readonly queueLimits: ReadonlyMap<string, QueueLimits>
    readonly backend: { readonly name: string } | undefined
    readonly logger: Logger
  },
  store: FlowControlStore | undefined,
): FlowGate | undefined {
  let limited: string | undefined
  for (const t of rt.tasks.values()) {
    if (t.rateLimit || t.concurrency) {
      limited = `task "${t.name}"`
      break
    }
  }
  if (limited === undefined && rt.queueLimits.size > 0) limited = `queue "${[...rt.queueLimits.keys()][0]}"`
  if (limited === undefined) return undefined
  if (!store) {
    throw new NotSupportedError(
      `the limits of ${limited} need a result backend with flow control (memory://, redis://, postgres://, sqlite://)${rt.backend ? `; "${rt.backend.name}" has none` : ': pass `backend` to createApp()'}`,
    )
  }
  return new FlowGate(store, rt.queueLimits, rt.logger)
}
