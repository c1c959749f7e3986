import { randomBytes } from 'node:crypto'
import { type AnyTask, type App, createApp, silentLogger } from '@errand/core'
import { RedisBroker, RedisResultBackend } from '@errand/redis'
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { Redis } from 'ioredis'
import type { ErrandOtel } from '../src/index.js'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

export const unique = (p: string): string => `${p}-${process.pid}-${randomBytes(4).toString('hex')}`

/** A store under test: memory, or Redis under a key prefix of its own (deleted by `cleanup`). */
export interface Store {
  readonly name: 'memory' | 'redis'
  app(tasks: AnyTask[], otel: ErrandOtel, queue: string): App
  cleanup(): Promise<void>
}

export function memoryStore(): Store {
  return {
    name: 'memory',
    app: (tasks, otel, queue) =>
      createApp({
        broker: 'memory://',
        backend: 'memory://',
        tasks,
        defaultQueue: queue,
        logger: silentLogger,
        instrumentation: [otel],
      }),
    cleanup: async () => {},
  }
}

export function redisStore(): Store {
  const keyPrefix = unique('errand-otel')
  return {
    name: 'redis',
    app: (tasks, otel, queue) =>
      createApp({
        broker: new RedisBroker({ url: REDIS_URL, keyPrefix }),
        backend: new RedisResultBackend({ url: REDIS_URL, keyPrefix }),
        tasks,
        defaultQueue: queue,
        logger: silentLogger,
        instrumentation: [otel],
      }),
    cleanup: async () => {
      const client = new Redis(REDIS_URL)
      try {
        let cursor = '0'
        do {
          const [next, keys] = await client.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000)
          cursor = next
          if (keys.length > 0) await client.del(...keys)
        } while (cursor !== '0')
      } finally {
        client.disconnect()
      }
    },
  }
}

/** The span tree as indented text lines (children sorted by name), for asserting and for the docs. */
export function spanTree(spans: readonly ReadableSpan[]): string {
  const byParent = new Map<string | undefined, ReadableSpan[]>()
  const ids = new Set(spans.map((s) => s.spanContext().spanId))
  for (const s of spans) {
    const parent = s.parentSpanContext?.spanId
    const key = parent !== undefined && ids.has(parent) ? parent : undefined
    const list = byParent.get(key) ?? []
    list.push(s)
    byParent.set(key, list)
  }
  const lines: string[] = []
  const walk = (parent: string | undefined, depth: number) => {
    const children = (byParent.get(parent) ?? []).sort((a, b) => a.name.localeCompare(b.name))
    for (const s of children) {
      const links = s.links.length > 0 ? ` (${s.links.length} links)` : ''
      const status = s.status.code === 2 ? ' ERROR' : ''
      lines.push(`${'  '.repeat(depth)}${s.name} [${kindName(s.kind)}]${status}${links}`)
      walk(s.spanContext().spanId, depth + 1)
    }
  }
  walk(undefined, 0)
  return lines.join('\n')
}

function kindName(kind: number): string {
  return ['internal', 'server', 'client', 'producer', 'consumer'][kind] ?? String(kind)
}
