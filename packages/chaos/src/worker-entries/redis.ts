/** Chaos worker on Redis (broker and result backend). */
import { createBroker, createResultBackend } from '@errand/redis'
import { runWorkerProcess } from '../worker-main.js'

await runWorkerProcess({ createBroker, createResultBackend })
