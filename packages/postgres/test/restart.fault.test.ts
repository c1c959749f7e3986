import { execFileSync } from 'node:child_process'
import { readdirSync } from 'node:fs'
import type { Delivery } from '@errand/core'
import { afterAll, describe, expect, it } from 'vitest'
import { PostgresBroker, PostgresResultBackend } from '../src/index.js'
import {
  bytes,
  collectingLogger,
  dropSchema,
  schemaUrl,
  text,
  uniqueQueue,
  uniqueSchema,
  until,
} from './helpers.js'

const schema = uniqueSchema('fault')
afterAll(() => dropSchema(schema))

const version = readdirSync('/etc/postgresql')[0]!

function pgctl(action: 'restart' | 'start'): void {
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', action], { stdio: 'ignore' })
}

function isUp(): boolean {
  try {
    execFileSync('pg_isready', ['-h', '127.0.0.1', '-p', '5432', '-q'])
    return true
  } catch {
    return false
  }
}

/** Restarts the real server; whatever happens, leaves it running. */
function restartServer(): void {
  try {
    pgctl('restart')
  } finally {
    if (!isUp()) pgctl('start')
  }
}

describe('postgres across a server restart', () => {
  it('every task completes, the consumer keeps consuming, and waits resolve', async () => {
    const logger = collectingLogger()
    const broker = new PostgresBroker({ url: schemaUrl(schema), logger, leaseMs: 20_000 })
    const backend = new PostgresResultBackend({ url: schemaUrl(schema), logger })
    const producer = new PostgresBroker({ url: schemaUrl(schema), logger })
    try {
      await Promise.all([broker.connect(), backend.connect(), producer.connect()])
      const q = uniqueQueue('restart')
      const total = 400
      const done = new Set<string>()
      let deliveries = 0
      await broker.consume(
        q,
        (d: Delivery) => {
          deliveries++
          // Spread the work out so that the restart lands in the middle of it.
          setTimeout(
            () =>
              d.ack().then(
                () => done.add(text(d.body)),
                () => undefined, // the lease brings it back
              ),
            5,
          )
        },
        { prefetch: 20 },
      )
      await producer.publish(
        q,
        Array.from({ length: total }, (_, i) => ({ body: bytes(String(i)) })),
      )
      const waiting = backend.waitFor('restart-task', { signal: new AbortController().signal })
      await until(() => done.size >= 50, 10_000)
      restartServer()
      // The backend's LISTEN connection comes back and re-checks its waiters.
      await backend.setState({ id: 'restart-task', state: 'SUCCESS', result: 'after' }, { ttlMs: 60_000 })
      expect((await waiting).result).toBe('after')
      await until(() => done.size === total, 45_000)
      expect(deliveries).toBeGreaterThanOrEqual(total)
      // Still consuming after the restart.
      await producer.publish(q, [{ body: bytes('late-1') }, { body: bytes('late-2') }])
      await until(() => done.has('late-1') && done.has('late-2'), 10_000)
      await until(async () => (await broker.stats(q)).inFlight === 0, 10_000)
      expect(await broker.stats(q)).toMatchObject({ ready: 0, delayed: 0, inFlight: 0 })
      expect(logger.lines.some((l) => l.includes('LISTEN connection lost'))).toBe(true)
    } finally {
      if (!isUp()) pgctl('start')
      await Promise.allSettled([broker.close(), backend.close(), producer.close()])
    }
  }, 90_000)
})
