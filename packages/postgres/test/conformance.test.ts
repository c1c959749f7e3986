import { runBrokerConformance, runResultBackendConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import { dropSchema, schemaUrl, uniqueSchema } from './helpers.js'

// The app suite is in conformance-app.test.ts, so that the two files run in parallel.
const schema = uniqueSchema('conf')
const url = schemaUrl(schema)
afterAll(() => dropSchema(schema))

runBrokerConformance({ name: 'postgres', factory: () => new PostgresBroker({ url }) })
runResultBackendConformance({
  name: 'postgres',
  factory: () => new PostgresResultBackend({ url, eventRetention: 100 }),
  eventRetention: 100,
})
