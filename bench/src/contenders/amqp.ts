/**
 * RabbitMQ contenders, side by side on the RabbitMQ at AMQP_URL (default guest@127.0.0.1:5672):
 * - `errand amqp`: Errand's app + worker over @errand/amqp's AmqpBroker, no result backend
 *   (RabbitMQ has no result store);
 * - `errand amqp + redis results`: the same with every result stored in RedisResultBackend;
 * - `errand amqp broker`: the AmqpBroker alone (publish / consume / ack), the adapter's floor;
 * - `raw amqplib 2.3.1`: the loop the issue asks to keep pace with: a durable queue, persistent
 *   messages on a confirm channel (one by one: await each confirm; bulk: publish all, then
 *   `waitForConfirms`), a consumer channel with `prefetch` = concurrency and a manual ack per
 *   message.
 *
 * All queues are durable classic queues without priorities (Errand's default); `errand amqp
 * broker, maxPriority 9` shows what `x-max-priority` costs RabbitMQ.
 *
 * Run: cd bench && pnpm exec tsx --conditions=source src/cli.ts --store amqp
 */
import { AmqpBroker } from '@errand/amqp'
import { RedisResultBackend } from '@errand/redis'
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib'
import type { BenchPayload, Contender, ContenderSet } from '../contender.js'
import { brokerContender } from './broker-only.js'
import { errandContender } from './errand.js'

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const _encoder = new TextEncoder()
const _decoder = new TextDecoder()

/** Delete `queue` with the dead-letter and delay queues the adapter may have made for it. */
async function deleteQueue(queue: string): Promise<void> {
  const broker = new AmqpBroker({ url: AMQP_URL })
  try {
    await broker.connect()
    await broker.deleteQueue(queue)
  } finally {
    await broker.close()
  }
}

/** The AmqpBroker alone: publish, consume, ack. */
function errandBroker(maxPriority = 0): Contender {
  return brokerContender({
    name: maxPriority === 0 ? 'errand amqp broker' : `errand amqp broker, maxPriority ${maxPriority}`,
    broker: () => new AmqpBroker({ url: AMQP_URL, maxPriority }),
    prepare: (broker, queue) => broker.stats(queue),
    cleanup: (broker, queue) => broker.deleteQueue(queue),
  })
}

/** A plain amqplib loop: confirm channel, persistent messages, prefetch, manual acks. */
function rawAmqplib(): Contender {
  let model: ChannelModel | undefined
  let pub: ConfirmChannel | undefined
  let sub: Channel | undefined
  let queue = ''
  return {
    name: 'raw amqplib 2.3.1',
    async open(q) {
      queue = q
      model = await amqp.connect(AMQP_URL, { noDelay: true })
      pub = await model.createConfirmChannel()
      await pub.assertQueue(queue, { durable: true })
    },
    enqueueOne(p) {
      return new Promise<void>((resolve, reject) => {
        pub!.sendToQueue(queue, Buffer.from(JSON.stringify(p)), { persistent: true }, (err: unknown) =>
          err ? reject(err as Error) : resolve(),
        )
      })
    },
    async enqueueBulk(ps) {
      for (const p of ps) pub!.sendToQueue(queue, Buffer.from(JSON.stringify(p)), { persistent: true })
      await pub!.waitForConfirms()
    },
    async startWorker(concurrency, onJob) {
      sub = await model!.createChannel()
      await sub.prefetch(concurrency)
      await sub.consume(
        queue,
        (msg) => {
          if (msg === null) return
          onJob(JSON.parse(msg.content.toString()) as BenchPayload)
          sub!.ack(msg)
        },
        { noAck: false },
      )
    },
    async stopWorker() {
      await sub?.close()
      sub = undefined
    },
    async close() {
      await pub!.deleteQueue(queue)
      await model!.close()
    },
  }
}

function errandApp(withResults: boolean): Contender {
  const keyPrefix = `bench-errand-amqp-${process.pid}`
  return errandContender({
    name: withResults ? 'errand amqp + redis results' : 'errand amqp',
    broker: () => new AmqpBroker({ url: AMQP_URL }),
    ...(withResults && { backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix }) }),
    cleanup: deleteQueue,
  })
}

/** The RabbitMQ contenders. */
export const contenders: ContenderSet = () => [
  errandApp(false),
  errandApp(true),
  errandBroker(),
  errandBroker(9),
  ...(process.env.BENCH_PRIORITIES ?? '')
    .split(',')
    .filter(Boolean)
    .map((p) => errandBroker(Number(p))),
  rawAmqplib(),
]
