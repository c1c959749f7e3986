import { MemoryBroker } from '../../core/src/memory/index.js'
import { runBrokerConformance } from '../src/index.js'

runBrokerConformance({ name: 'memory', factory: () => new MemoryBroker({ name: 'conformance' }) })
