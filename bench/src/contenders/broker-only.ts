import type { Broker } from '@errand/core'
import type { BenchPayload, Contender } from '../contender.js'

/** Options of {@link brokerContender}. */
export interface BrokerContenderOptions<B extends Broker> {
  readonly name: string
  /** A fresh, unconnected broker for one workload run. */
  readonly broker: () => B
  /** After connecting, before the run (e.g. declare or empty the queue). */
  readonly prepare?: (broker: B, queue: string) => Promise<unknown>
  /** Before closing: drop what the run left (default: purge the queue). */
  readonly cleanup?: (broker: B, queue: string) => Promise<unknown>
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * An adapter's Broker alone — publish, consume, ack, no app or worker — the floor under the
 * Errand app for that store. The same for every store, so the four bench sets compare alike.
 */
export function brokerContender<B extends Broker>(options: BrokerContenderOptions<B>): Contender {
  let broker: B | undefined
  let consumer: { cancel(): Promise<void> } | undefined
  let queue = ''
  const body = (p: BenchPayload) => ({ body: encoder.encode(JSON.stringify(p)) })
  return {
    name: options.name,
    async open(q) {
      queue = q
      broker = options.broker()
      await broker.connect()
      await options.prepare?.(broker, queue)
    },
    async enqueueOne(p) {
      await broker!.publish(queue, [body(p)])
    },
    async enqueueBulk(ps) {
      await broker!.publish(queue, ps.map(body))
    },
    async startWorker(concurrency, onJob) {
      consumer = await broker!.consume(
        queue,
        (d) => {
          onJob(JSON.parse(decoder.decode(d.body)) as BenchPayload)
          void d.ack()
        },
        { prefetch: concurrency },
      )
    },
    async stopWorker() {
      await consumer?.cancel()
    },
    async close() {
      await (options.cleanup ?? ((b, q) => b.purge(q)))(broker!, queue)
      await broker!.close()
    },
  }
}
