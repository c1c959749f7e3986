import { runBrokerConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import { dropSchema, schemaUrl, uniqueSchema } from './helpers.js'

const schema = uniqueSchema('conf')
afterAll(() => dropSchema(schema))

runBrokerConformance({
  name: 'postgres',
  factory: () => new PostgresBroker({ url: schemaUrl(schema) }),
})
