import { type DeadLetter, decodeEnvelope } from '@errand/core'
import type { GarbageItem } from './stores/rig.js'

/** Dead letters split into those of our tasks and the rest, with the garbage matched up. */
export interface SortedDeadLetters {
  /** Dead letters whose body is an envelope of a task we sent, by task id. */
  readonly byTask: Map<string, DeadLetter[]>
  /** Garbage items with the dead letter each ended in (undefined: none found). */
  readonly garbage: { item: GarbageItem; deadLetter: DeadLetter | undefined }[]
  /**
   * Second dead letters of a garbage item already matched (its dead-lettering was redelivered,
   * e.g. the removal was lost in a cut after the dead letter was written: at-least-once).
   */
  readonly garbageRepeats: DeadLetter[]
  /** Dead letters that are none of the above. */
  readonly unexplained: DeadLetter[]
}

const sameBytes = (a: Uint8Array, b: Uint8Array) =>
  a.byteLength === b.byteLength && a.every((x, i) => x === b[i])

/**
 * Sort dead letters: envelopes of known task ids go to their task; every other one is matched
 * to a garbage item whose body it carries (exactly), then items the store cannot identify by body
 * take any `undecodable` dead letter left over; what remains is unexplained.
 */
export function sortDeadLetters(
  deadLetters: readonly DeadLetter[],
  taskIds: ReadonlySet<string>,
  garbage: readonly GarbageItem[],
): SortedDeadLetters {
  const byTask = new Map<string, DeadLetter[]>()
  const rest: DeadLetter[] = []
  for (const dl of deadLetters) {
    let id: string | undefined
    try {
      id = decodeEnvelope(dl.body).id
    } catch {
      id = undefined
    }
    if (id !== undefined && taskIds.has(id)) {
      const list = byTask.get(id)
      if (list) list.push(dl)
      else byTask.set(id, [dl])
    } else rest.push(dl)
  }
  const matched = garbage
    .filter((item) => item.refused === undefined)
    .map((item) => {
      const i = rest.findIndex((dl) => item.bodies.some((b) => sameBytes(b, dl.body)))
      const deadLetter = i >= 0 ? rest.splice(i, 1)[0] : undefined
      return { item, deadLetter }
    })
  for (const m of matched) {
    if (m.deadLetter !== undefined || m.item.bodies.length > 0) continue
    const i = rest.findIndex((dl) => dl.reason === 'undecodable')
    if (i >= 0) m.deadLetter = rest.splice(i, 1)[0]
  }
  const garbageRepeats = rest.filter((dl) => garbage.some((g) => g.bodies.some((b) => sameBytes(b, dl.body))))
  const unexplained = rest.filter((dl) => !garbageRepeats.includes(dl))
  return { byTask, garbage: matched, garbageRepeats, unexplained }
}
