import { createServer, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { SqsBroker } from '../src/index.js'
import { type SqsTestEndpoint, startSqs, testOptions, uniqueQueue } from './fauxqs.js'

const SECRET = 'hunter2-do-not-print'

let sqs: SqsTestEndpoint
beforeAll(async () => {
  sqs = await startSqs()
})
afterAll(async () => {
  await sqs?.stop()
})

/** A port on 127.0.0.1 that nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return address.port
}

/** A server on 127.0.0.1 that accepts connections and never answers. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return {
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}

function options(endpoint: string, extra = {}) {
  return testOptions(endpoint, {
    credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: SECRET },
    ...extra,
  })
}

describe('sqs connect', () => {
  it('fails fast on a closed port: ERR_CONNECTION naming the endpoint, without credentials', async () => {
    const endpoint = `http://127.0.0.1:${await closedPort()}`
    const broker = new SqsBroker(options(endpoint))
    const started = Date.now()
    const err = await broker.connect().then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    )
    const elapsed = Date.now() - started
    await broker.close()
    expect(err).toMatchObject({ code: 'ERR_CONNECTION', message: expect.stringContaining(endpoint) })
    expect(err?.message).not.toContain(SECRET)
    // The default retryTimeoutMs (30 s) is the patience of later calls, not of the first contact.
    expect(elapsed).toBeLessThan(3_000)
  })

  it('an endpoint that never answers fails after connectTimeoutMs', async () => {
    const silent = await silentServer()
    const endpoint = `http://127.0.0.1:${silent.port}`
    const broker = new SqsBroker(options(endpoint, { connectTimeoutMs: 500 }))
    const started = Date.now()
    try {
      await expect(broker.connect()).rejects.toMatchObject({
        code: 'ERR_CONNECTION',
        message: expect.stringMatching(new RegExp(`${endpoint}.*500 ms`)),
      })
      expect(Date.now() - started).toBeLessThan(3_000)
    } finally {
      await broker.close()
      await silent.close()
    }
  })

  it('connects to a live endpoint (the probed queue need not exist) and works', async () => {
    const broker = new SqsBroker(options(sqs.endpoint))
    try {
      await broker.connect()
      await broker.connect() // probed once: a second call is cheap and harmless
      const q = uniqueQueue('conn')
      await broker.publish(q, [{ body: new TextEncoder().encode('x') }])
      expect((await broker.stats(q)).ready).toBe(1)
    } finally {
      await broker.close()
    }
  })
})
