import { Cron } from 'croner'
import type { Canvas } from './canvas.js'
import { InvalidOptionError, NotSupportedError } from './errors.js'
import type { Logger } from './logger.js'
import type { ResultBackend } from './result-backend.js'

/** When a schedule fires: a cron pattern (5 or 6 fields, seconds first) or a fixed interval. */
export type ScheduleSpec = string | { readonly everyMs: number }

/** Options of `app.schedule()`. */
export interface ScheduleOptions {
  /** IANA time zone for cron patterns (`Europe/Paris`). Default: UTC. */
  readonly timezone?: string
  /**
   * Ticks missed while no scheduler ran: `'skip'` them (default), or `{ withinMs }` to fire the
   * ones of that last stretch that no scheduler fired.
   */
  readonly catchUp?: 'skip' | { readonly withinMs: number }
}

/** A running schedule. Stopped by `stop()` or `app.close()`. */
export interface Schedule {
  readonly name: string
  /** The next tick time, if any. */
  nextTick(): Date | undefined
  /**
   * Stop firing. A tick that is already due is still fired (claimed by one scheduler) even when
   * its timer has not run yet; resolves once no tick send is in flight.
   */
  stop(): Promise<void>
}

/** A schedule armed in this process, as `app.schedules()` lists it. */
export interface ScheduleInfo {
  readonly name: string
  /** The cron pattern, or `every <n> ms`. */
  readonly when: string
  /** IANA time zone of a cron pattern (UTC when none was given). */
  readonly timezone: string | undefined
  /** The next tick time, if any. */
  readonly nextTick: Date | undefined
}

/** Sends one tick; resolves when the broker has it. */
export type TickSender = (canvas: Canvas<never, unknown, true>, tick: Date) => Promise<void>

const MAX_TIMER = 2 ** 31 - 1
const NAME = /^[A-Za-z0-9_.:-]{1,200}$/

/** Next tick strictly after `after`, or undefined when there is none. */
type NextTick = (after: Date) => Date | undefined

function ticker(spec: ScheduleSpec, timezone: string | undefined): NextTick {
  if (typeof spec === 'object' && spec !== null && 'everyMs' in spec) {
    const every = spec.everyMs
    if (!(Number.isInteger(every) && every >= 10)) {
      throw new InvalidOptionError('everyMs', `expected an integer number of ms >= 10, got ${every}`)
    }
    // Aligned on the epoch, so every scheduler process computes the same tick times.
    return (after) => new Date((Math.floor(after.getTime() / every) + 1) * every)
  }
  if (typeof spec !== 'string')
    throw new InvalidOptionError('schedule', 'expected a cron pattern or { everyMs }')
  let cron: Cron
  try {
    cron = new Cron(spec, { paused: true, ...(timezone !== undefined ? { timezone } : { timezone: 'UTC' }) })
  } catch (err) {
    throw new InvalidOptionError('schedule', `bad cron pattern "${spec}": ${(err as Error).message}`, {
      cause: err,
    })
  }
  return (after) => cron.nextRun(after) ?? undefined
}

/**
 * Runs one named schedule in this process. Any number of processes may run the same schedule:
 * each tick is claimed with the backend's set-if-absent on `schedule:<name>:<tick time>`, so
 * exactly one process sends it. (If the claimer dies between claim and send, that tick is lost:
 * ticks are at most once, never twice.)
 */
export class Scheduler implements Schedule {
  private timer: NodeJS.Timeout | undefined
  private next: Date | undefined
  /** True from arming the timer of `next` until that timer runs. */
  private armed = false
  private stopped = false
  private readonly nextAfter: NextTick
  private inflight: Promise<void> = Promise.resolve()

  constructor(
    readonly name: string,
    spec: ScheduleSpec,
    private readonly canvas: Canvas<never, unknown, true>,
    private readonly options: ScheduleOptions,
    private readonly backend: () => Promise<ResultBackend | undefined>,
    private readonly send: TickSender,
    private readonly logger: Logger,
  ) {
    if (!NAME.test(name))
      throw new InvalidOptionError('name', `schedule names are 1-200 characters of [A-Za-z0-9_.:-]`)
    this.nextAfter = ticker(spec, options.timezone)
    const catchUp = options.catchUp ?? 'skip'
    if (catchUp !== 'skip' && !(Number.isInteger(catchUp.withinMs) && catchUp.withinMs > 0)) {
      throw new InvalidOptionError('catchUp.withinMs', `expected a positive integer, got ${catchUp.withinMs}`)
    }
  }

  /** Claim the ticks to catch up, then arm the timer. */
  async start(): Promise<void> {
    const backend = await this.backend()
    if (!backend)
      throw new NotSupportedError(
        'schedules need a result backend to claim ticks: pass `backend` to createApp()',
      )
    const now = new Date()
    const catchUp = this.options.catchUp ?? 'skip'
    if (catchUp !== 'skip') {
      let t = this.nextAfter(new Date(now.getTime() - catchUp.withinMs - 1))
      while (t && t.getTime() <= now.getTime() && !this.stopped) {
        await this.fire(t)
        t = this.nextAfter(t)
      }
    }
    this.arm(now)
  }

  nextTick(): Date | undefined {
    return this.next
  }

  /**
   * Stop firing. A tick already due whose timer has not run yet is fired first: a busy event loop
   * runs timers late, and a tick that came due before `stop()` must not be dropped because its
   * timer lagged (with several schedulers in one process, all of them would drop it).
   */
  async stop(): Promise<void> {
    if (!this.stopped) {
      this.stopped = true
      clearTimeout(this.timer)
      const due = this.next
      if (this.armed && due && due.getTime() <= Date.now())
        this.inflight = this.inflight.then(() => this.fire(due))
      this.armed = false
    }
    await this.inflight
  }

  private arm(after: Date): void {
    if (this.stopped) return
    this.next = this.nextAfter(after)
    if (!this.next) return
    const tick = this.next
    const wait = Math.min(MAX_TIMER, Math.max(0, tick.getTime() - Date.now()))
    this.armed = true
    this.timer = setTimeout(() => {
      this.armed = false
      if (Date.now() < tick.getTime()) return this.arm(after) // a long wait is done in chunks
      this.inflight = this.fire(tick).finally(() => this.arm(tick))
    }, wait)
    this.timer.unref()
  }

  private async fire(tick: Date): Promise<void> {
    try {
      const backend = await this.backend()
      if (!backend) return
      const ttlMs =
        Math.max(3_600_000, (this.options.catchUp !== 'skip' && this.options.catchUp?.withinMs) || 0) * 2
      const claimed = await backend.setIfAbsent(
        `schedule:${this.name}:${tick.getTime()}`,
        String(Date.now()),
        ttlMs,
      )
      if (claimed) await this.send(this.canvas, tick)
    } catch (err) {
      this.logger.error(`schedule ${this.name}: could not fire the tick of ${tick.toISOString()}`, {
        error: String(err),
      })
    }
  }
}
