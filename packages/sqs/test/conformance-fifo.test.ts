import { runBrokerConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { startSqs, testOptions } from './fauxqs.js'

const sqs = await startSqs()
afterAll(() => sqs.stop())

// Every queue of this broker is a FIFO queue (the adapter appends `.fifo` to the suite's names),
// with priorities 1-2 mapped to queues of their own.
runBrokerConformance({
  name: 'sqs-fifo with priority queues',
  factory: () => new SqsBroker(testOptions(sqs.endpoint, { fifo: true, priorityLevels: 2 })),
})
