/**
 * RabbitMQ at AMQP_URL: durable classic queues, persistent messages, publisher confirms, manual
 * acks, prefetch = concurrency, on both sides. Every run has its own queue, deleted at the end.
 */
import { AmqpBroker } from '@errand/amqp'
import { RedisResultBackend } from '@errand/redis'
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from 'amqplib'
import { Redis } from 'ioredis'
import type { Contender, ContenderMeta, Payload, RunOptions, StoreModule } from '../types.js'
import { errand } from './errand.js'
import { pkgVersion } from './versions.js'

const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672'
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const DURABLE = 'durable classic queue, persistent messages, publish resolves on the broker confirm'

async function deleteErrandQueue(queue: string): Promise<void> {
  const broker = new AmqpBroker({ url: AMQP_URL })
  try {
    await broker.connect()
    await broker.deleteQueue(queue)
  } finally {
    await broker.close()
  }
}

async function deleteKeys(pattern: string): Promise<void> {
  const client = new Redis(REDIS_URL)
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 5000)
      cursor = next
      if (keys.length > 0) await client.unlink(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
}

function errandAmqp(id: string, run: RunOptions, results: boolean): Contender {
  const queue = `bench-c-${id}`
  const keyPrefix = `bench-c-${id}`
  return errand({
    run,
    queue,
    broker: () => new AmqpBroker({ url: AMQP_URL }),
    ...(results && { backend: () => new RedisResultBackend({ url: REDIS_URL, keyPrefix }) }),
    teardown: async () => {
      await deleteErrandQueue(queue)
      if (results) await deleteKeys(`${keyPrefix}:*`)
    },
  })
}

/** Raw amqplib: confirm channel (each publish awaits its confirm), prefetch c, manual ack. */
function raw(id: string): Contender {
  const queue = `bench-c-${id}`
  let model: ChannelModel | undefined
  let pub: ConfirmChannel | undefined
  let sub: Channel | undefined
  /** Acks waiting for their handler (handlers that take time). */
  const pending = new Set<Promise<unknown>>()
  return {
    async setup() {
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
          // A handler that throws has its message requeued (the failure path's retry).
          let waiting: void | Promise<void>
          try {
            waiting = onJob(JSON.parse(msg.content.toString()) as Payload)
          } catch {
            sub!.nack(msg, false, true)
            return
          }
          if (waiting === undefined) sub!.ack(msg)
          else {
            const settled = waiting.then(
              () => sub?.ack(msg),
              () => sub?.nack(msg, false, true),
            )
            pending.add(settled)
            void settled.finally(() => pending.delete(settled))
          }
        },
        { noAck: false },
      )
    },
    async stopWorker() {
      // Handlers that take time may still be running: let them ack before the channel closes.
      await Promise.allSettled([...pending])
      await sub?.close()
      sub = undefined
    },
    async remaining() {
      return (await pub!.checkQueue(queue)).messageCount
    },
    async teardown() {
      await pub?.deleteQueue(queue)
      await model?.close()
    },
  }
}

const metas: ContenderMeta[] = [
  {
    name: 'errand',
    class: 'no-results',
    errand: true,
    durability: DURABLE,
    durabilityShort: 'persistent + confirms',
    library: '@errand/amqp (workspace)',
    settings: 'defaults (no result backend; trackStarted on)',
    floor: 'amqp',
  },
  {
    name: 'errand+redis-results',
    class: 'results',
    errand: true,
    durability: `${DURABLE}; results in Redis (no AOF)`,
    durabilityShort: 'persistent + confirms',
    library: '@errand/amqp + @errand/redis (workspace)',
    settings: 'defaults, RedisResultBackend (trackStarted on)',
    floor: 'amqp',
  },
  {
    name: 'raw-amqplib',
    class: 'floor',
    durability: DURABLE,
    durabilityShort: 'persistent + confirms',
    library: `amqplib ${pkgVersion('amqplib')}`,
    settings: 'confirm channel (await each confirm; bulk: waitForConfirms), prefetch c, manual ack',
    floor: 'amqp',
  },
]

export const store: StoreModule = {
  metas,
  create(name, id, run = {}) {
    if (name === 'errand') return errandAmqp(id, run, false)
    if (name === 'errand+redis-results') return errandAmqp(id, run, true)
    if (name === 'raw-amqplib') return raw(id)
    throw new Error(`unknown amqp contender ${name}`)
  },
  async versions() {
    const model = await amqp.connect(AMQP_URL)
    const props = (model.connection as unknown as { serverProperties?: Record<string, unknown> })
      .serverProperties
    await model.close()
    return { rabbitmq: String(props?.version ?? '?'), amqplib: pkgVersion('amqplib') }
  },
}
