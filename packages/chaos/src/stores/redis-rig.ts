import { startTcpProxy } from '@errand/conformance'
import { Redis } from 'ioredis'
import { assertLoopback, type GarbageItem, REDIS_DB, runName, SERVERS, type StoreRig, utf8 } from './rig.js'

/** Redis URL of db {@link REDIS_DB} on `port` of 127.0.0.1 (the server's own, or a proxy's). */
function redisUrl(port: number, prefix: string): string {
  return `redis://127.0.0.1:${port}/${REDIS_DB}?keyPrefix=${prefix}`
}

/**
 * Raw items for a Redis ready list. Stored items are `<id>:<deliveries>:<priority>:<body>`; the
 * garbage mixes strings without that header (`x:5:z`, a bare word, binary) and items with a
 * header-shaped prefix and a body no worker can decode.
 */
export function redisGarbage(n: number): { raw: Buffer; item: GarbageItem } {
  const text = (raw: string, ...bodies: string[]) => ({
    raw: Buffer.from(raw, 'latin1'),
    item: { label: JSON.stringify(raw), bodies: [raw, ...bodies].map(utf8) },
  })
  switch (n % 7) {
    case 0:
      return text('x:5:z', 'z')
    case 1:
      return text(`chaos-junk-${n}`)
    case 2:
      return text(`x${n}:5:z${n}`, `z${n}`)
    case 3:
      return text(`g${n}:0:0:not json ${n}`, `not json ${n}`)
    case 4:
      return text(`j${n}:0:0:{"v":1,"junk":${n}}`, `{"v":1,"junk":${n}}`)
    case 5:
      return text(`b${n}:abc:xyz:junk ${n}`, `junk ${n}`, `xyz:junk ${n}`)
    default: {
      const raw = Buffer.from([0xff, 0xfe, 0x3a, n % 256, 0x00, 0x3a])
      return { raw, item: { label: `binary ${raw.toString('hex')}`, bodies: [new Uint8Array(raw)] } }
    }
  }
}

/** Delete every key under `prefix:` in the suite's db (SCAN, never FLUSHDB). */
export async function deleteRedisPrefix(client: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  for (let i = 0; i < 100_000; i++) {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    if (keys.length > 0) await client.unlink(...keys)
    cursor = next
    if (cursor === '0') return
  }
}

/** The Redis rig: broker and result backend on Redis, behind one proxy. */
export async function openRedisRig(): Promise<StoreRig> {
  assertLoopback(SERVERS.redis)
  const prefix = runName('redis')
  const queue = prefix
  const serverPort = Number(new URL(SERVERS.redis).port || 6379)
  const proxy = await startTcpProxy({ host: new URL(SERVERS.redis).hostname, port: serverPort })
  const direct = new Redis(`redis://127.0.0.1:${serverPort}/${REDIS_DB}`)
  const readyList = `${prefix}:{${queue}}:ready`
  return {
    store: 'redis',
    queue,
    worker: { brokerUrl: redisUrl(proxy.port, prefix), backendUrl: redisUrl(proxy.port, prefix) },
    direct: { brokerUrl: redisUrl(serverPort, prefix), backendUrl: redisUrl(serverPort, prefix) },
    proxies: [proxy],
    runLog: { kind: 'redis', url: `redis://127.0.0.1:${serverPort}/${REDIS_DB}`, key: `${prefix}:runs` },
    backendKind: 'redis',
    async writeGarbage(n) {
      const { raw, item } = redisGarbage(n)
      await direct.lpush(readyList, raw)
      return item
    },
    async close() {
      await proxy.close()
      await deleteRedisPrefix(direct, prefix)
      direct.disconnect()
    },
  }
}
