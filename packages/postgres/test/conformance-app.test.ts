import { runAppConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import { dropSchema, schemaUrl, uniqueSchema } from './helpers.js'

const schema = uniqueSchema('app')
const url = schemaUrl(schema)
afterAll(() => dropSchema(schema))

runAppConformance({
  name: 'postgres',
  broker: () => new PostgresBroker({ url }),
  backend: () => new PostgresResultBackend({ url }),
})
