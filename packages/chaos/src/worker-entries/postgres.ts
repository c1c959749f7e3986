/** Chaos worker on PostgreSQL (broker and result backend). */
import { createBroker, createResultBackend } from '@errand/postgres'
import { runWorkerProcess } from '../worker-main.js'

await runWorkerProcess({
  createBroker: (url) => createBroker(url),
  createResultBackend: (url) => createResultBackend(url),
})
