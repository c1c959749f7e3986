/** Chaos worker on SQS (fauxqs), results on Redis. */
import { createResultBackend } from '@errand/redis'
import { createBroker } from '@errand/sqs'
import { runWorkerProcess } from '../worker-main.js'

await runWorkerProcess({ createBroker: (url) => createBroker(url), createResultBackend })
