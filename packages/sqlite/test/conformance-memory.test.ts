import { runBrokerConformance, runResultBackendConformance } from '@errand/conformance'
import { SqliteBroker, SqliteResultBackend } from '../src/index.js'

// sqlite::memory: is one database per process, kept open for the life of the process (so a
// second instance, or the next one after a close, sees the same queues, as with a file).
runBrokerConformance({
  name: 'sqlite memory',
  factory: () => new SqliteBroker({ url: 'sqlite::memory:' }),
  queuePrefix: 'mem',
})
runResultBackendConformance({
  name: 'sqlite memory',
  factory: () => new SqliteResultBackend({ url: 'sqlite::memory:', eventRetention: 100 }),
  eventRetention: 100,
})
