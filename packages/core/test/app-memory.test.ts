import { MemoryBroker, MemoryResultBackend } from '../src/index.js'
import { runAppConformance } from '../../conformance/src/app-suite.js'

runAppConformance({
  name: 'memory',
  broker: () => new MemoryBroker({ name: 'app-conformance' }),
  backend: () => new MemoryResultBackend({ name: 'app-conformance' }),
})
