import { MemoryBroker, MemoryResultBackend } from '@errand/core'
import { runBrokerConformance, runResultBackendConformance } from '../src/index.js'

runBrokerConformance({ name: 'memory', factory: () => new MemoryBroker({ name: 'conformance' }) })
runResultBackendConformance({
  name: 'memory',
  factory: () => new MemoryResultBackend({ name: 'conformance' }),
})
