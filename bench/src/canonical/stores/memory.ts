/** Errand's in-memory store: the ceiling (no I/O), without and with results. */
import { MemoryBroker, MemoryResultBackend } from '@errand/core'
import type { ContenderMeta, StoreModule } from '../types.js'
import { errand } from './errand.js'

const metas: ContenderMeta[] = [
  {
    name: 'errand',
    class: 'ceiling',
    errand: true,
    durability: 'none (process memory)',
    durabilityShort: 'none',
    library: '@errand/core (workspace)',
    settings: 'defaults, MemoryBroker (trackStarted on)',
    // One process's memory: other worker processes cannot see it.
    unsupported: ['drain-c*-p*'],
  },
  {
    name: 'errand+results',
    class: 'ceiling',
    errand: true,
    durability: 'none (process memory)',
    durabilityShort: 'none',
    library: '@errand/core (workspace)',
    settings: 'defaults, MemoryBroker + MemoryResultBackend (trackStarted on)',
    unsupported: ['drain-c*-p*'],
  },
]

export const store: StoreModule = {
  metas,
  create(name, id, run) {
    const broker = () => new MemoryBroker({ name: `bench-${id}` })
    if (name === 'errand') return errand({ queue: `q-${id}`, broker, ...(run && { run }) })
    if (name === 'errand+results')
      return errand({
        queue: `q-${id}`,
        broker,
        backend: () => new MemoryResultBackend({ name: `bench-${id}` }),
        ...(run && { run }),
      })
    throw new Error(`unknown memory contender ${name}`)
  },
  async versions() {
    return {}
  },
}
