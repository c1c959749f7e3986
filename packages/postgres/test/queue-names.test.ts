import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PostgresBroker } from '../src/index.js'
import {
  bytes,
  collectingLogger,
  DATABASE_URL,
  dropSchema,
  schemaUrl,
  uniqueQueue,
  uniqueSchema,
} from './helpers.js'

const schema = uniqueSchema('qn')
const broker = new PostgresBroker({ url: schemaUrl(schema), logger: collectingLogger() })
beforeAll(() => broker.connect())
afterAll(async () => {
  await broker.close()
  await dropSchema(schema)
})

/** Every broker call that takes a queue name, called with `queue`. */
function calls(queue: string): [string, () => Promise<unknown>][] {
  return [
    ['publish', () => broker.publish(queue, [{ body: bytes('x') }])],
    ['consume', () => broker.consume(queue, () => undefined, { prefetch: 1 })],
    ['stats', () => broker.stats(queue)],
    ['purge', () => broker.purge(queue)],
    ['listDeadLetters', () => broker.listDeadLetters(queue)],
    ['requeueDeadLetters', () => broker.requeueDeadLetters(queue)],
    ['purgeDeadLetters', () => broker.purgeDeadLetters(queue)],
  ]
}

describe('postgres: queue names the schema cannot store are refused at the API', () => {
  const base = uniqueQueue('bad')
  const bad: [string, string, RegExp][] = [
    ['a NUL', `${base}\u0000tail`, /NUL/],
    ['a lone high surrogate', `${base}\uD800`, /surrogate/],
    ['a lone low surrogate', `\uDC00${base}`, /surrogate/],
    ['an empty name', '', /empty/],
    ['201 characters', 'q'.repeat(201), /201 characters/],
  ]
  for (const [what, queue, reason] of bad) {
    it(`${what}: ERR_INVALID_OPTION naming the queue, never a raw pg error`, async () => {
      for (const [name, call] of calls(queue)) {
        const err = (await call().then(
          () => new Error(`${name} accepted ${JSON.stringify(queue)}`),
          (e: unknown) => e,
        )) as { code?: string; option?: string; message: string }
        expect(err.code, name).toBe('ERR_INVALID_OPTION')
        expect(err.option, name).toBe('queue')
        expect(err.message, name).toMatch(reason)
        if (queue.length > 0)
          expect(err.message, name).toContain(JSON.stringify(queue.slice(0, 20)).slice(0, -1))
      }
      // Also inside the caller's transaction, before anything reaches the server.
      const client = new pg.Client({ connectionString: DATABASE_URL })
      await client.connect()
      try {
        await expect(
          broker.publishInTransaction(client, queue, [{ body: bytes('x') }]),
        ).rejects.toMatchObject({
          code: 'ERR_INVALID_OPTION',
        })
      } finally {
        await client.end()
      }
    })
  }

  it('names at the edges still work: 200 characters, astral characters, spaces and quotes', async () => {
    for (const queue of [`${base}-${'é'.repeat(200 - base.length - 1)}`, `${base} 🚀 "q" 'x'`]) {
      expect(queue.length).toBeLessThanOrEqual(200)
      await broker.publish(queue, [{ body: bytes('ok') }])
      expect((await broker.stats(queue)).ready).toBe(1)
      expect(await broker.purge(queue)).toBe(1)
    }
  })
})
