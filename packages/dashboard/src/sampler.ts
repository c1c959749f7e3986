import type { App } from '@errand/core'

/** One queue's counts in a sample; `null` where the store cannot tell (JSON has no undefined). */
export interface QueueCounts {
  readonly ready: number
  readonly delayed: number | null
  readonly inFlight: number | null
  readonly dead: number
}

/** The counts of every queue at one instant. */
export interface Sample {
  /** When the sample was taken (ms since epoch). */
  readonly at: number
  readonly queues: Readonly<Record<string, QueueCounts>>
}

/** Options of {@link Sampler}. */
export interface SamplerOptions {
  /** Time between samples. Default 5 000 ms. */
  readonly intervalMs?: number
  /** How much history is kept. Default one hour. */
  readonly historyMs?: number
  /** Most queues sampled per tick (the first ones by name); bounds the store load. Default 100. */
  readonly maxQueues?: number
  /** Clock, for tests. */
  readonly now?: () => number
}

/**
 * Samples `stats()` of every queue on a timer into a bounded ring buffer (one hour by default).
 *
 * This is queue depth over time. Throughput ("processed per minute") cannot be derived from depth
 * samples — a queue that takes in and finishes 1 000 tasks between two samples shows the same depth
 * as an idle one — so it comes from task events instead (see `Activity`).
 */
export class Sampler {
  readonly intervalMs: number
  readonly historyMs: number
  private readonly maxQueues: number
  private readonly now: () => number
  private readonly ring: (Sample | undefined)[]
  private next = 0
  private timer: NodeJS.Timeout | undefined
  private running: Promise<Sample | undefined> | undefined
  private readonly listeners = new Set<(sample: Sample) => void>()
  /** The last sampling error (shown on the page), cleared by the next good sample. */
  lastError: string | undefined

  constructor(
    private readonly app: App,
    options: SamplerOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? 5_000
    this.historyMs = options.historyMs ?? 3_600_000
    this.maxQueues = options.maxQueues ?? 100
    this.now = options.now ?? Date.now
    if (!Number.isInteger(this.intervalMs) || this.intervalMs < 100)
      throw new RangeError('sampleIntervalMs must be an integer >= 100')
    if (!Number.isInteger(this.historyMs) || this.historyMs < this.intervalMs)
      throw new RangeError('historyMs must be an integer >= sampleIntervalMs')
    this.ring = new Array(Math.ceil(this.historyMs / this.intervalMs) + 1)
  }

  /** Sample now and then every `intervalMs`. The timer does not keep the process alive. */
  start(): void {
    if (this.timer) return
    void this.tick()
    this.timer = setInterval(() => void this.tick(), this.intervalMs)
    this.timer.unref()
  }

  /** Stop sampling (history is kept). */
  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  /** Take one sample now (a tick still running is shared, so a slow store is never asked twice). */
  tick(): Promise<Sample | undefined> {
    this.running ??= this.take().finally(() => {
      this.running = undefined
    })
    return this.running
  }

  private async take(): Promise<Sample | undefined> {
    let sample: Sample
    try {
      const names = (await this.app.queues()).slice(0, this.maxQueues)
      const counts = await Promise.all(names.map((q) => this.app.stats(q)))
      const queues: Record<string, QueueCounts> = Object.create(null)
      names.forEach((name, i) => {
        const s = counts[i]!
        queues[name] = {
          ready: s.ready,
          delayed: s.delayed ?? null,
          inFlight: s.inFlight ?? null,
          dead: s.dead,
        }
      })
      sample = { at: this.now(), queues }
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err)
      // A closed app will never answer again: stop instead of logging the same error forever.
      if ((err as { code?: unknown }).code === 'ERR_CLOSED') this.stop()
      return undefined
    }
    this.lastError = undefined
    this.ring[this.next] = sample
    this.next = (this.next + 1) % this.ring.length
    for (const listener of this.listeners) listener(sample)
    return sample
  }

  /** Samples of the last `historyMs`, oldest first. */
  history(): Sample[] {
    const since = this.now() - this.historyMs
    const out: Sample[] = []
    for (let i = 0; i < this.ring.length; i++) {
      const s = this.ring[(this.next + i) % this.ring.length]
      if (s && s.at >= since) out.push(s)
    }
    return out
  }

  /** The newest sample, if any. */
  latest(): Sample | undefined {
    return this.ring[(this.next - 1 + this.ring.length) % this.ring.length]
  }

  /** Call `listener` with every new sample; returns the unsubscribe function. */
  subscribe(listener: (sample: Sample) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}
