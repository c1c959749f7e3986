import {
  GetQueueUrlCommand,
  type MessageAttributeValue,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs'
import { startTcpProxy } from '@errand/conformance'
import { Redis } from 'ioredis'
import { startFauxqs } from '../fauxqs-server.js'
import { deleteRedisPrefix } from './redis-rig.js'
import { assertLoopback, type GarbageItem, REDIS_DB, runName, SERVERS, type StoreRig, utf8 } from './rig.js'

/** A raw SendMessage no Errand producer made. */
interface RawSend {
  readonly body: string
  readonly attributes?: Record<string, MessageAttributeValue>
  readonly item: GarbageItem
}

const str = (v: string): MessageAttributeValue => ({ DataType: 'String', StringValue: v })

/**
 * Junk bodies, plus junk in the adapter's own attributes: `errand.enc: bin` without the bytes
 * (the store cannot tell what the body was: counted, not matched by body) and a non-numeric
 * `errand.base`.
 */
export function sqsGarbage(n: number): RawSend {
  const text = (body: string, attributes?: Record<string, MessageAttributeValue>): RawSend => ({
    body,
    ...(attributes && { attributes }),
    item: { label: JSON.stringify(body), bodies: [utf8(body)] },
  })
  switch (n % 5) {
    case 0:
      return text(`not an envelope ${n}`)
    case 1:
      return text(`{"v":1,"junk":${n}}`)
    case 2:
      return text(`x:5:z${n}`, { 'errand.base': str('abc') })
    case 3:
      return {
        body: `bin-without-bytes ${n}`,
        attributes: { 'errand.enc': str('bin') },
        item: { label: `errand.enc=bin without errand.body (${n})`, bodies: [] },
      }
    default:
      return text(`{"v":999,"id":"junk-${n}"}`)
  }
}

/** The SQS rig: fauxqs in a child behind one proxy; result backend on Redis behind another. */
export async function openSqsRig(): Promise<StoreRig> {
  assertLoopback(SERVERS.redis)
  const name = runName('sqs')
  const queue = name
  const fauxqs = await startFauxqs()
  const sqsProxy = await startTcpProxy({ host: '127.0.0.1', port: fauxqs.port })
  const redisPort = Number(new URL(SERVERS.redis).port || 6379)
  const redisProxy = await startTcpProxy({ host: new URL(SERVERS.redis).hostname, port: redisPort })
  // Workers long-poll with the default wait (20 s), as deployed: a closed broker must not keep
  // its process alive for the rest of a poll. The suite's own side polls briefly (admin reads).
  const sqsUrl = (port: number, waitTimeSeconds?: number) =>
    `sqs://?region=us-east-1&endpoint=${encodeURIComponent(`http://127.0.0.1:${port}`)}` +
    '&accessKeyId=test&secretAccessKey=test&retryTimeoutMs=60000' +
    (waitTimeSeconds === undefined ? '' : `&waitTimeSeconds=${waitTimeSeconds}`)
  const redisUrl = (port: number) => `redis://127.0.0.1:${port}/${REDIS_DB}?keyPrefix=${name}`
  const client = new SQSClient({
    endpoint: fauxqs.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  })
  const redis = new Redis(`redis://127.0.0.1:${redisPort}/${REDIS_DB}`)
  let queueUrl: string | undefined
  return {
    store: 'sqs',
    queue,
    worker: { brokerUrl: sqsUrl(sqsProxy.port), backendUrl: redisUrl(redisProxy.port) },
    direct: { brokerUrl: sqsUrl(fauxqs.port, 1), backendUrl: redisUrl(redisPort) },
    proxies: [sqsProxy, redisProxy],
    runLog: { kind: 'redis', url: `redis://127.0.0.1:${redisPort}/${REDIS_DB}`, key: `${name}:runs` },
    backendKind: 'redis',
    async writeGarbage(n) {
      queueUrl ??= (await client.send(new GetQueueUrlCommand({ QueueName: queue }))).QueueUrl
      const m = sqsGarbage(n)
      await client.send(
        new SendMessageCommand({
          QueueUrl: queueUrl,
          MessageBody: m.body,
          ...(m.attributes && { MessageAttributes: m.attributes }),
        }),
      )
      return m.item
    },
    async close() {
      await Promise.all([sqsProxy.close(), redisProxy.close()])
      client.destroy()
      await fauxqs.stop()
      await deleteRedisPrefix(redis, name)
      redis.disconnect()
    },
  }
}
