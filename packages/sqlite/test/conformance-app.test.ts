import { runAppConformance } from '@errand/conformance'
import { afterAll } from 'vitest'
import { SqliteBroker, SqliteResultBackend } from '../src/index.js'
import { fileUrl, tempDir } from './helpers.js'

const tmp = tempDir('app')
const url = fileUrl(tmp.dir)
afterAll(() => tmp.remove())

runAppConformance({
  name: 'sqlite file',
  broker: () => new SqliteBroker({ url }),
  backend: () => new SqliteResultBackend({ url }),
})
