import { consoleLogger, createApp, type Delivery } from '@errand/core'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import {
  bytes,
  collectingLogger,
  dropSchema,
  schemaUrl,
  uniqueQueue,
  uniqueSchema,
  until,
} from './helpers.js'

const schema = uniqueSchema('log')
afterAll(() => dropSchema(schema))
afterEach(() => {
  vi.restoreAllMocks()
})

/** Makes `broker` say something: a delivery handler that throws is logged as a warning. */
async function provokeWarning(broker: {
  consume: PostgresBroker['consume']
  publish: PostgresBroker['publish']
}): Promise<{ cancel(): Promise<void> }> {
  const q = uniqueQueue('log')
  const c = await broker.consume(
    q,
    (d: Delivery) => {
      void d.ack()
      throw new Error('handler bug')
    },
    { prefetch: 1 },
  )
  await broker.publish(q, [{ body: bytes('x') }])
  return c
}

describe('postgres: logs through the app logger, never the console', () => {
  it('an app opened from a URL hands its logger to the adapter; the console stays silent', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const logger = collectingLogger()
    const url = new URL(schemaUrl(schema))
    url.password = 'hunter2'
    const app = createApp({ broker: url.toString(), logger })
    try {
      const { broker } = await app.connect()
      const consumer = await provokeWarning(broker)
      await until(() => logger.lines.some((l) => l.includes('handler bug')))
      await consumer.cancel()
      const line = logger.lines.find((l) => l.includes('handler bug')) ?? ''
      expect(line).toContain('[postgres]')
      expect(logger.lines.join('\n')).not.toContain('hunter2')
      expect(warn).not.toHaveBeenCalled()
      expect(error).not.toHaveBeenCalled()
    } finally {
      await app.close()
    }
  })

  it("without a logger, warnings go to core's default logger (not console.warn directly)", async () => {
    const lines: string[] = []
    const viaCore = vi.spyOn(consoleLogger, 'warn').mockImplementation((m: string) => void lines.push(m))
    const direct = vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    const broker = new PostgresBroker({ url: schemaUrl(schema) })
    try {
      await broker.connect()
      const consumer = await provokeWarning(broker)
      await until(() => lines.some((l) => l.includes('handler bug')))
      await consumer.cancel()
      expect(viaCore).toHaveBeenCalled()
      expect(direct).not.toHaveBeenCalled()
    } finally {
      await broker.close()
    }
  })
})
