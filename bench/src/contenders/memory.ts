import { MemoryBroker, MemoryResultBackend } from '@errand/core'
import type { ContenderSet } from '../contender.js'
import { errandContender } from './errand.js'

/** Errand on the in-memory store, without and with results. */
export const contenders: ContenderSet = () => [
  errandContender({ name: 'errand memory', broker: () => new MemoryBroker({ name: 'bench' }) }),
  errandContender({
    name: 'errand memory +results',
    broker: () => new MemoryBroker({ name: 'bench' }),
    backend: () => new MemoryResultBackend({ name: 'bench' }),
  }),
]
