import { runAppConformance } from '../../conformance/src/app-suite.js'
import { MemoryBroker, MemoryResultBackend } from '../src/index.js'

runAppConformance({
  name: 'memory',
  broker: () => new MemoryBroker({ name: 'app-conformance' }),
  backend: () => new MemoryResultBackend({ name: 'app-conformance' }),
})
