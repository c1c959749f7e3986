import { startTcpProxy } from '@errand/conformance'
import { isErrandError } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { AmqpBroker } from '../src/index.js'
import { AMQP_URL, quietLogger, rabbitAvailable, TEST_QUEUE_EXPIRES_MS, uniqueQueue } from './helpers.js'

const available = await rabbitAvailable()

/**
 * A connection cut while a worker starts (connect, then consume: declarations, channel, qos,
 * basic.consume) must never crash the process: a start that fails rejects with ERR_CONNECTION,
 * one that succeeded is left to the reconnect logic. Nothing may escape as an unhandled
 * rejection or an uncaught exception (an amqplib promise nobody awaits, an 'error' event nobody
 * listens to).
 */
describe.skipIf(!available)(
  'amqp: a connection cut while starting (skipped only when no RabbitMQ answers on AMQP_URL; CI=true makes that a failure)',
  () => {
    const escaped: unknown[] = []
    const onEscape = (err: unknown) => escaped.push(err)
    process.on('unhandledRejection', onEscape)
    process.on('uncaughtException', onEscape)
    afterAll(() => {
      process.off('unhandledRejection', onEscape)
      process.off('uncaughtException', onEscape)
    })

    it('rejects with ERR_CONNECTION or recovers, at 30 cut points, with nothing escaping', async () => {
      const proxy = await startTcpProxy(AMQP_URL)
      const url = new URL(AMQP_URL)
      url.host = `127.0.0.1:${proxy.port}`
      const queue = uniqueQueue('start-cut')
      const outcomes = { started: 0, refused: 0 }
      const wrong: string[] = []
      try {
        for (let i = 0; i < 30; i++) {
          await proxy.restore()
          const broker = new AmqpBroker({
            url: url.toString(),
            queueExpiresMs: TEST_QUEUE_EXPIRES_MS,
            reconnectWaitMs: 150,
            reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
            logger: quietLogger(),
          })
          // Early points every 2 ms (the set-up takes a few tens of ms), then random ones up to 200 ms.
          const delay = i < 20 ? i * 2 : Math.floor(Math.random() * 200)
          const cutter = setTimeout(() => void proxy.cut(), delay)
          try {
            await broker.connect()
            await broker.consume(queue, (d) => void d.ack().catch(() => {}), { prefetch: 5 })
            outcomes.started++
          } catch (err) {
            outcomes.refused++
            if (!isErrandError(err, 'ERR_CONNECTION')) wrong.push(`cut at ${delay} ms: ${String(err)}`)
          }
          // Let the cut land and the reconnect logic run against a refusing proxy for a while.
          await new Promise((resolve) => setTimeout(resolve, 220 - Math.min(delay, 200)))
          clearTimeout(cutter)
          await broker.close()
        }
      } finally {
        await proxy.close()
        const admin = new AmqpBroker({ url: AMQP_URL, logger: quietLogger() })
        await admin.deleteQueue(queue).catch(() => {})
        await admin.close()
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
      expect(wrong).toEqual([])
      expect(escaped.map(String)).toEqual([])
      expect(outcomes.started + outcomes.refused).toBe(30)
    }, 60_000)
  },
)
