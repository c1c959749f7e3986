/** Chaos worker on RabbitMQ, results on Redis. */
import { createBroker } from '@errand/amqp'
import { createResultBackend } from '@errand/redis'
import { runWorkerProcess } from '../worker-main.js'

await runWorkerProcess({ createBroker: (url) => createBroker(url), createResultBackend })
