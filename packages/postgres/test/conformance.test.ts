import { runAppConformance, runBrokerConformance, runResultBackendConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import { dropSchema, schemaUrl, uniqueSchema } from './helpers.js'

const schema = uniqueSchema('conf')
const url = schemaUrl(schema)
afterAll(() => dropSchema(schema))

runBrokerConformance({ name: 'postgres', factory: () => new PostgresBroker({ url }) })
runResultBackendConformance({ name: 'postgres', factory: () => new PostgresResultBackend({ url }) })
runAppConformance({
  name: 'postgres',
  broker: () => new PostgresBroker({ url }),
  backend: () => new PostgresResultBackend({ url }),
})
