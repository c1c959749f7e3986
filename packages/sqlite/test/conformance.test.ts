import { runBrokerConformance, runResultBackendConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { SqliteBroker, SqliteResultBackend } from '../src/index.js'
import { fileUrl, tempDir } from './helpers.js'

const tmp = tempDir('conf')
const url = fileUrl(tmp.dir)
afterAll(() => tmp.remove())

runBrokerConformance({ name: 'sqlite file', factory: () => new SqliteBroker({ url }) })
runResultBackendConformance({
  name: 'sqlite file',
  factory: () => new SqliteResultBackend({ url, eventRetention: 100 }),
  eventRetention: 100,
})
