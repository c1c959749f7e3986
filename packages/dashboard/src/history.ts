import type { Sample } from './sampler.js'

/** One point of the depth chart. */
export interface DepthPoint {
  readonly at: number
  readonly ready: number
  readonly inFlight: number | null
  readonly dead: number
}

/**
 * The chart's points from samples: one queue's counts, or (queue undefined) every queue's summed.
 * A sum of in-flight counts is null only when no queue could tell it.
 */
export function depthPoints(samples: readonly Sample[], queue: string | undefined): DepthPoint[] {
  const out: DepthPoint[] = []
  for (const s of samples) {
    if (queue !== undefined) {
      const c = s.queues[queue]
      if (c) out.push({ at: s.at, ready: c.ready, inFlight: c.inFlight, dead: c.dead })
      continue
    }
    let ready = 0
    let dead = 0
    let inFlight: number | null = null
    for (const c of Object.values(s.queues)) {
      ready += c.ready
      dead += c.dead
      if (c.inFlight !== null) inFlight = (inFlight ?? 0) + c.inFlight
    }
    out.push({ at: s.at, ready, inFlight, dead })
  }
  return out
}
