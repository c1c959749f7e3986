import { startTcpProxy } from '@errand/conformance'
import amqp from 'amqplib'
import { Redis } from 'ioredis'
import { deleteRedisPrefix } from './redis-rig.js'
import { assertLoopback, type GarbageItem, REDIS_DB, runName, SERVERS, type StoreRig, utf8 } from './rig.js'

/** Delay levels the adapter may declare per queue (its default); all are deleted at the end. */
const DELAY_LEVELS = 28

/** A raw message for the work queue, published by amqplib, not by the adapter. */
interface RawMessage {
  readonly content: Buffer
  readonly options: amqp.Options.Publish
  readonly item: GarbageItem
}

/**
 * Raw messages no Errand producer wrote: bare text, JSON that is no envelope, empty content,
 * binary, and text with junk in the adapter's own header (`x-errand-deliveries: "abc"`).
 */
export function amqpGarbage(n: number): RawMessage {
  const text = (s: string, options: amqp.Options.Publish = {}): RawMessage => ({
    content: Buffer.from(s, 'utf8'),
    options: { persistent: true, ...options },
    item: { label: JSON.stringify(s), bodies: [utf8(s)] },
  })
  switch (n % 5) {
    case 0:
      return text(`not an envelope ${n}`)
    case 1:
      return text(`{"v":1,"junk":${n}}`, { messageId: `junk-${n}`, contentType: 'application/json' })
    case 2:
      return text(`x:5:z${n}`, { headers: { 'x-errand-deliveries': 'abc' } })
    case 3:
      return {
        content: Buffer.alloc(0),
        options: { persistent: true },
        item: { label: 'empty content', bodies: [new Uint8Array(0)] },
      }
    default: {
      const content = Buffer.from([0xff, 0xfe, n % 256])
      return {
        content,
        options: { persistent: true },
        item: { label: `binary ${content.toString('hex')}`, bodies: [new Uint8Array(content)] },
      }
    }
  }
}

/** The RabbitMQ rig: broker on RabbitMQ and result backend on Redis, each behind its own proxy. */
export async function openAmqpRig(): Promise<StoreRig> {
  assertLoopback(SERVERS.amqp)
  assertLoopback(SERVERS.redis)
  const name = runName('amqp')
  const queue = name
  const rabbit = new URL(SERVERS.amqp)
  const rabbitPort = Number(rabbit.port || 5672)
  const redisPort = Number(new URL(SERVERS.redis).port || 6379)
  const rabbitProxy = await startTcpProxy({ host: rabbit.hostname, port: rabbitPort })
  const redisProxy = await startTcpProxy({ host: new URL(SERVERS.redis).hostname, port: redisPort })
  const amqpUrl = (port: number) => {
    const u = new URL(SERVERS.amqp)
    u.port = String(port)
    // A safety net only (queues are deleted at the end): RabbitMQ drops them after an idle hour.
    u.searchParams.set('queueExpiresMs', '3600000')
    return u.toString()
  }
  const redisUrl = (port: number) => `redis://127.0.0.1:${port}/${REDIS_DB}?keyPrefix=${name}`
  const connection = await amqp.connect(SERVERS.amqp)
  let channel = await connection.createConfirmChannel()
  const redis = new Redis(`redis://127.0.0.1:${redisPort}/${REDIS_DB}`)
  return {
    store: 'amqp',
    queue,
    worker: { brokerUrl: amqpUrl(rabbitProxy.port), backendUrl: redisUrl(redisProxy.port) },
    direct: { brokerUrl: amqpUrl(rabbitPort), backendUrl: redisUrl(redisPort) },
    proxies: [rabbitProxy, redisProxy],
    runLog: { kind: 'redis', url: `redis://127.0.0.1:${redisPort}/${REDIS_DB}`, key: `${name}:runs` },
    backendKind: 'redis',
    async writeGarbage(n) {
      const m = amqpGarbage(n)
      channel.sendToQueue(queue, m.content, m.options)
      await channel.waitForConfirms()
      return m.item
    },
    async close() {
      await Promise.all([rabbitProxy.close(), redisProxy.close()])
      const names = [
        queue,
        `${queue}.dead`,
        ...Array.from({ length: DELAY_LEVELS }, (_, i) => `${queue}.delay.${i}`),
      ]
      for (const q of names) {
        // A failed delete closes the channel: take a new one for the next name.
        await channel.deleteQueue(q).catch(async () => {
          channel = await connection.createConfirmChannel()
        })
      }
      await connection.close().catch(() => undefined)
      await deleteRedisPrefix(redis, name)
      redis.disconnect()
    },
  }
}
