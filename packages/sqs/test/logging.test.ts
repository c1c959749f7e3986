import type { Logger } from '@errand/core'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { adapter, SqsBroker, type SqsBrokerOptions } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

let sqs: SqsTestEndpoint
beforeAll(async () => {
  sqs = await startSqs()
})
afterAll(async () => {
  await sqs?.stop()
})

/** A logger that keeps its lines; `next()` resolves at the next one. */
function recordingLogger() {
  const lines: { level: string; message: string }[] = []
  let wake: (() => void) | undefined
  const at =
    (level: string) =>
    (message: string): void => {
      lines.push({ level, message })
      wake?.()
    }
  const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
  const next = () =>
    new Promise<void>((resolve) => {
      wake = resolve
    })
  return { logger, lines, next }
}

/** The test options without their silencing `onError`, so the default report is what runs. */
function withDefaultReport(endpoint: string, extra: SqsBrokerOptions): SqsBrokerOptions {
  const { onError: _silenced, ...rest } = testOptions(endpoint, extra)
  return rest
}

describe('sqs logging', () => {
  it('a background failure is a warning to the given logger (credentials masked), never the console', async () => {
    const console_ = vi.spyOn(console, 'warn')
    const { logger, lines, next } = recordingLogger()
    const broker = new SqsBroker(withDefaultReport(sqs.endpoint, { logger }))
    try {
      await broker.connect()
      const q = uniqueQueue('log')
      let thrown = false
      const warned = next()
      // A delivery handler that throws is background work going wrong: reported, not fatal.
      await broker.consume(
        q,
        (d) => {
          thrown = true
          void d.ack()
          throw new Error('handler blew up at https://AKID:hunter2@example.com')
        },
        { prefetch: 1 },
      )
      await broker.publish(q, [{ body: new TextEncoder().encode('x') }])
      await warned
      expect(thrown).toBe(true)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatchObject({ level: 'warn', message: expect.stringContaining('handler blew up') })
      expect(lines[0]?.message).toContain('[sqs]')
      expect(lines[0]?.message).not.toContain('hunter2')
      expect(console_).not.toHaveBeenCalled()
    } finally {
      console_.mockRestore()
      await broker.close()
    }
  })

  it('the adapter built from a URL logs through the logger core hands its factory', async () => {
    const { logger, lines, next } = recordingLogger()
    const url = `sqs://?region=us-east-1&endpoint=${encodeURIComponent(sqs.endpoint)}&accessKeyId=test&secretAccessKey=test&waitTimeSeconds=1`
    const broker = adapter.createBroker?.(url, { logger })
    if (broker === undefined) throw new Error('the sqs adapter has no broker factory')
    try {
      await broker.connect()
      const q = uniqueQueue('log')
      const warned = next()
      await broker.consume(
        q,
        (d) => {
          void d.ack()
          throw new Error('thrown by a handler')
        },
        { prefetch: 1 },
      )
      await broker.publish(q, [{ body: new TextEncoder().encode('x') }])
      await warned
      expect(lines).toEqual([{ level: 'warn', message: expect.stringContaining('thrown by a handler') }])
    } finally {
      await broker.close()
    }
  })

  it('refuses a logger that is not one, naming the option', () => {
    expect(() => new SqsBroker({ logger: { warn: () => undefined } as unknown as Logger })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'logger' }),
    )
  })
})
