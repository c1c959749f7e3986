import { runBrokerConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { startSqs, testOptions } from './fauxqs.js'

const sqs = await startSqs()
afterAll(() => sqs.stop())

runBrokerConformance({
  name: 'sqs',
  factory: () => new SqsBroker(testOptions(sqs.endpoint)),
})
