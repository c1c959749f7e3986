import { Cluster, type Redis } from 'ioredis'
import type { RedisClient } from './options.js'

/** Inverse of the key module's `tag()`: `%7B` → `{`, `%7D` → `}`, `%25` → `%`. */
function untag(name: string): string {
  return name.replace(/%(7B|7D|25)/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
}

/** Escape glob characters of a literal key prefix for SCAN MATCH. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)
}

/**
 * Queue names that have any key under `prefix` (Redis deletes a list, set or hash when it
 * empties, so a key exists only while its queue holds something). A SCAN over the keyspace
 * (every master of a cluster), in pages of 1000: an operator's call, never on a hot path.
 */
export async function listQueueNames(client: RedisClient, prefix: string): Promise<string[]> {
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client]
  const match = `${globEscape(prefix)}:{*}:*`
  const start = prefix.length + 2
  const names = new Set<string>()
  for (const node of nodes) {
    let cursor = '0'
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000)
      cursor = next
      for (const key of keys) {
        const end = key.indexOf('}:', start)
        if (end > start) names.add(untag(key.slice(start, end)))
      }
    } while (cursor !== '0')
  }
  return [...names].sort()
}
