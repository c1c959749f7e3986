import { isErrandError } from '@errand/core'
import { describe, expect, it } from 'vitest'
import { AmqpBroker, createBroker } from '../src/index.js'
import { parseOptions } from '../src/options.js'

function invalid(call: () => unknown): { option: string; message: string } {
  try {
    call()
  } catch (err) {
    expect(isErrandError(err, 'ERR_INVALID_OPTION'), String(err)).toBe(true)
    return { option: (err as { option: string }).option, message: (err as Error).message }
  }
  throw new Error('expected ERR_INVALID_OPTION')
}

describe('options', () => {
  it('createBroker validates the URL and does not connect', () => {
    const broker = createBroker('amqp://guest:guest@127.0.0.1:1/')
    expect(broker.name).toBe('amqp')
    expect(broker.capabilities).toMatchObject({ leases: false, maxPriority: 0, maxDelayMs: 2 ** 28 - 1 })
  })

  it('reads our query parameters, passes amqplib ones through and strips ours', () => {
    const parsed = parseOptions(
      'amqp://u:p@h:5673/vh?heartbeat=5&queueType=quorum&delayLevels=20&maxMessageBytes=1024&reconnectWaitMs=50',
    )
    expect(parsed).toMatchObject({
      queueType: 'quorum',
      maxPriority: 0,
      delayLevels: 20,
      maxMessageBytes: 1024,
      reconnectWaitMs: 50,
    })
    expect(parsed.connection.kind).toBe('url')
    if (parsed.connection.kind !== 'url') return
    expect(parsed.connection.url).toBe('amqp://u:p@h:5673/vh?heartbeat=5')
    expect(parsed.connection.display).toBe('amqp://u:***@h:5673/vh?heartbeat=5')
  })

  it('object options win over the URL, and capabilities follow them', () => {
    const broker = new AmqpBroker({ url: 'amqp://h?maxPriority=3', maxPriority: 5, delayLevels: 10 })
    expect(broker.capabilities.maxPriority).toBe(5)
    expect(broker.capabilities.maxDelayMs).toBe(1023)
  })

  it('refuses what is wrong, naming the option, never printing the password', () => {
    expect(invalid(() => new AmqpBroker('redis://u:hunter2@h')).option).toBe('url')
    const unknown = invalid(() => new AmqpBroker('amqp://u:hunter2@h?prefetch=5'))
    expect(unknown.option).toBe('prefetch')
    expect(unknown.message).toContain('unknown URL parameter')
    expect(unknown.message).not.toContain('hunter2')
    expect(invalid(() => new AmqpBroker('amqp://h?maxPriority=300')).option).toBe('maxPriority')
    expect(invalid(() => new AmqpBroker('amqp://h?queueType=stream')).option).toBe('queueType')
    expect(
      invalid(() => new AmqpBroker({ url: 'amqp://h', queueType: 'quorum', maxPriority: 2 })).option,
    ).toBe('maxPriority')
    expect(invalid(() => new AmqpBroker({ url: 'amqp://h', delayLevels: 32 })).option).toBe('delayLevels')
    expect(invalid(() => new AmqpBroker({ url: 'amqp://h', bogus: 1 } as never)).option).toBe('bogus')
    expect(invalid(() => new AmqpBroker({} as never)).option).toBe('url')
    expect(invalid(() => new AmqpBroker({ url: 'not a url' })).option).toBe('url')
    expect(invalid(() => new AmqpBroker({ url: 'amqp://h', logger: {} as never })).option).toBe('logger')
  })

  it('a connection that cannot be made is ERR_CONNECTION with the password masked', async () => {
    const broker = new AmqpBroker('amqp://guest:hunter2@127.0.0.1:1/')
    const err = await broker.connect().then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(isErrandError(err, 'ERR_CONNECTION'), String(err)).toBe(true)
    expect((err as Error).message).toContain('amqp://guest:***@127.0.0.1:1/')
    expect((err as Error).message).not.toContain('hunter2')
    await broker.close()
  })
})
