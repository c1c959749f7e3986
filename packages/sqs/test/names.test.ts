import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const enc = new TextEncoder()

let sqs: SqsTestEndpoint
let broker: SqsBroker
beforeAll(async () => {
  sqs = await startSqs()
  broker = new SqsBroker(testOptions(sqs.endpoint, { priorityLevels: 2 }))
  await broker.connect()
})
afterAll(async () => {
  await broker?.close()
  await sqs?.stop()
})

describe('sqs queue names: the suffixes of the adapter’s own queues are reserved', () => {
  it('refuses X-dead, X-delay and X-p<n> at publish, consume and every admin call, naming queue and suffix', async () => {
    const owner = uniqueQueue('own')
    await broker.publish(owner, [{ body: enc.encode('real work') }])
    const callsBefore = new Map(broker.calls)
    const cases: [string, string][] = [
      [`${owner}-dead`, '-dead'],
      [`${owner}-delay`, '-delay'],
      [`${owner}-p1`, '-p1'],
      [`${owner}-p12`, '-p12'],
      [`${owner}-dead.fifo`, '-dead'],
    ]
    for (const [queue, suffix] of cases) {
      const refused = { code: 'ERR_INVALID_OPTION', message: expect.stringContaining(`"${queue}"`) }
      const namesSuffix = { message: expect.stringContaining(`"${suffix}"`) }
      const calls: (() => Promise<unknown>)[] = [
        () => broker.publish(queue, [{ body: enc.encode('a job') }]),
        () => broker.consume(queue, () => undefined, { prefetch: 1 }),
        () => broker.stats(queue),
        () => broker.purge(queue),
        () => broker.listDeadLetters(queue),
        () => broker.requeueDeadLetters(queue),
        () => broker.purgeDeadLetters(queue),
      ]
      for (const call of calls) {
        const outcome = call()
        await expect(outcome).rejects.toMatchObject(refused)
        await expect(outcome).rejects.toMatchObject(namesSuffix)
      }
    }
    // Refused before any SQS call: nothing was sent to (or created as) the owner's own queues.
    expect(broker.calls).toEqual(callsBefore)
    expect(await broker.listDeadLetters(owner)).toEqual([])
    expect(await broker.stats(owner)).toMatchObject({ ready: 1, delayed: 0, dead: 0 })
    expect(await broker.purge(owner)).toBe(1)
  })

  it('names that only contain those words are fine', async () => {
    for (const queue of [
      'dead-letters',
      `${uniqueQueue()}-deadline`,
      `${uniqueQueue()}-p`,
      `${uniqueQueue()}-pa1`,
    ]) {
      await expect(broker.publish(queue, [])).resolves.toBeUndefined()
    }
  })
})
