import { MemoryBroker } from '@errand/core'
import { runBrokerConformance } from '../src/index.js'

// The memory broker made to look like smaller stores, so that every capability-gated branch of
// the suite (refusal with ERR_NOT_SUPPORTED, no leases, small bodies) runs somewhere in CI.
runBrokerConformance({
  name: 'memory without delays, priorities or leases',
  factory: () =>
    new MemoryBroker({
      name: 'conformance-limited',
      capabilities: { maxDelayMs: 0, maxPriority: 0, leases: false, maxMessageBytes: 4096, maxBatchSize: 1 },
    }),
  stressMessages: 2000,
})

runBrokerConformance({
  name: 'memory with short delays and two priorities',
  factory: () =>
    new MemoryBroker({
      name: 'conformance-short',
      capabilities: { maxDelayMs: 5000, maxPriority: 1, maxBatchSize: 10 },
    }),
  stressMessages: 2000,
})
