import { describe, expect, it } from 'vitest'
import { createBroker, parseSqsUrl, SqsBroker } from '../src/index.js'

describe('sqs options and URLs', () => {
  it('parses the documented URL forms', () => {
    expect(parseSqsUrl('sqs://?region=eu-west-1')).toEqual({ region: 'eu-west-1' })
    expect(parseSqsUrl('sqs://?region=us-east-1&endpoint=http://127.0.0.1:4566')).toEqual({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:4566',
    })
    expect(parseSqsUrl('sqs://AKID:se%2Fcret@sqs.eu-west-1.amazonaws.com?region=eu-west-1')).toEqual({
      region: 'eu-west-1',
      endpoint: 'https://sqs.eu-west-1.amazonaws.com',
      credentials: { accessKeyId: 'AKID', secretAccessKey: 'se/cret' },
    })
    expect(parseSqsUrl('sqs://localhost:4566?tls=false&fifo=true&waitTimeSeconds=5&region=x')).toEqual({
      endpoint: 'http://localhost:4566',
      fifo: true,
      waitTimeSeconds: 5,
      region: 'x',
    })
  })

  it('createBroker builds without connecting and reports its capabilities', () => {
    const broker = createBroker('sqs://?region=us-east-1&endpoint=http://127.0.0.1:9&priorityLevels=3')
    expect(broker.name).toBe('sqs')
    expect(broker.capabilities).toMatchObject({
      maxPriority: 3,
      orderedDelivery: false,
      maxMessageBytes: 262_144,
    })
  })

  it('refuses bad options naming the option, with credentials masked', () => {
    expect(() => parseSqsUrl('sqs://?colour=blue')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'colour' }),
    )
    expect(() => parseSqsUrl('sqs://?waitTimeSeconds=soon')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'waitTimeSeconds' }),
    )
    expect(() => createBroker('sqs://?waitTimeSeconds=21')).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'waitTimeSeconds' }),
    )
    expect(() => new SqsBroker({ priorityLevels: -1 })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_OPTION', option: 'priorityLevels' }),
    )
    let message = ''
    try {
      createBroker('redis://AKID:hunter2@host')
    } catch (err) {
      message = (err as Error).message
    }
    expect(message).toContain('sqs:')
    expect(message).not.toContain('hunter2')
  })

  it('close before connect, and calls after close, are ERR_CLOSED', async () => {
    const broker = new SqsBroker({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' })
    await broker.close()
    await expect(broker.connect()).rejects.toMatchObject({ code: 'ERR_CLOSED' })
  })
})
