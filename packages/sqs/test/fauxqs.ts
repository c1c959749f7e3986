import { randomUUID } from 'node:crypto'
import { buildApp } from 'fauxqs'
import type { SqsBrokerOptions } from '../src/index.js'

/** An SQS endpoint for tests: fauxqs in this process, or `SQS_ENDPOINT` when set. */
export interface SqsTestEndpoint {
  readonly endpoint: string
  stop(): Promise<void>
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/

/**
 * Start fauxqs on 127.0.0.1 with a random port and its request log off (its own `startFauxqs`
 * listens on every interface, so the app is built and bound here instead), or use
 * `SQS_ENDPOINT`, which must be on loopback: tests never send traffic elsewhere.
 */
export async function startSqs(): Promise<SqsTestEndpoint> {
  const fromEnv = process.env.SQS_ENDPOINT
  if (fromEnv !== undefined && fromEnv !== '') {
    const host = new URL(fromEnv).hostname
    if (!LOOPBACK.test(host)) throw new Error(`SQS_ENDPOINT must be on loopback, got ${host}`)
    return { endpoint: fromEnv, stop: async () => undefined }
  }
  const app = buildApp({ logger: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('fauxqs did not bind a port')
  return { endpoint: `http://127.0.0.1:${address.port}`, stop: () => app.close() }
}

/** Broker options for tests: static dummy credentials, short polls. */
export function testOptions(endpoint: string, extra: SqsBrokerOptions = {}): SqsBrokerOptions {
  return {
    endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    waitTimeSeconds: 1,
    adminWaitSeconds: 0,
    onError: () => undefined,
    ...extra,
  }
}

/** A queue name unique to this run. */
export function uniqueQueue(prefix = 't'): string {
  return `${prefix}-${randomUUID().slice(0, 13)}`
}
