import type { DeadLetter, QueueStats } from '@errand/core'
import { Cluster, type Redis } from 'ioredis'
import { HELPERS } from './broker-lua-helpers.js'
import { decodeDeadRecord } from './codec.js'
import { LuaScript } from './lua.js'
import type { RedisClient } from './options.js'

/** Ids per script call when requeueing or purging dead letters by id (Lua's unpack limit). */
const IDS_PER_CALL = 1000

// The admin scripts get a queue's KEYS like every broker script (see broker-lua-helpers.ts).

/** { ready, delayed, inFlight, dead } */
const STATS = new LuaScript(`${HELPERS}
return { ready_count(), redis.call('ZCARD', DELAYED), redis.call('ZCARD', LEASES), redis.call('HLEN', DEAD) }
`)

/** Drop ready and delayed messages; returns how many. */
const PURGE = new LuaScript(`${HELPERS}
local n = ready_count() + redis.call('ZCARD', DELAYED)
for k = 6, #KEYS do redis.call('DEL', KEYS[k]) end
redis.call('DEL', DELAYED)
return n
`)

/** Oldest dead letters: ARGV limit. Returns id, record, id, record… */
const LIST_DEAD = new LuaScript(`${HELPERS}
local ids = redis.call('ZRANGE', DEAD_INDEX, 0, tonumber(ARGV[1]) - 1)
local out = {}
if #ids == 0 then return out end
local records = redis.call('HMGET', DEAD, unpack(ids))
for k, id in ipairs(ids) do
  if records[k] then
    out[#out + 1] = id
    out[#out + 1] = records[k]
  end
end
return out
`)

/**
 * Put dead letters back at the back of their level. ARGV: ids…, or none for the oldest 1000.
 * Returns { moved, looked at }.
 */
const REQUEUE_DEAD = new LuaScript(`${HELPERS}
local ids = ARGV
if #ids == 0 then ids = redis.call('ZRANGE', DEAD_INDEX, 0, 999) end
local moved = 0
for _, id in ipairs(ids) do
  local record = redis.call('HGET', DEAD, id)
  if record then
    -- A record not written by the broker goes back whole, as the body of an item (core judges it).
    local nl = string.find(record, '\\n', 1, true)
    local item = nl and string.sub(record, nl + 1) or record
    local iid, _, p = parse(item)
    if not iid then
      item = string.gsub(id, ':', '_') .. ':0:0:' .. item
      p = 0
    end
    if not can_place(p) then return redis.error_reply(failure) end
    -- Pushed before removed: a failing ZREM leaves a stale index entry, never a lost message.
    push_back(item, p)
    redis.call('HDEL', DEAD, id)
    moved = moved + 1
  end
  redis.call('ZREM', DEAD_INDEX, id)
end
return { moved, #ids }
`)

/** Delete dead letters: ARGV ids…, or none for all. Returns how many. */
const PURGE_DEAD = new LuaScript(`${HELPERS}
if #ARGV == 0 then
  local n = redis.call('HLEN', DEAD)
  redis.call('DEL', DEAD, DEAD_INDEX)
  return n
end
local n = 0
for _, id in ipairs(ARGV) do
  n = n + redis.call('HDEL', DEAD, id)
  redis.call('ZREM', DEAD_INDEX, id)
end
return n
`)

/** Runs one admin script on a queue's keys, wrapping failures as the broker's errors. */
export type RunScript = (
  what: string,
  script: LuaScript,
  args: readonly (string | number)[],
) => Promise<unknown>

/** Ready, delayed, in-flight (leased) and dead counts of a queue, read atomically. */
export async function queueStats(run: RunScript): Promise<QueueStats> {
  const [ready, delayed, inFlight, dead] = (await run('stats', STATS, [])) as number[]
  return { ready: ready ?? 0, delayed: delayed ?? 0, inFlight: inFlight ?? 0, dead: dead ?? 0 }
}

/** Remove ready and delayed messages (not in-flight, not dead); returns the count. */
export async function purgeQueue(run: RunScript): Promise<number> {
  return (await run('purge', PURGE, [])) as number
}

/** Dead letters of `queue`, oldest first, at most `limit`. */
export async function deadLetters(run: RunScript, queue: string, limit: number): Promise<DeadLetter[]> {
  const reply = (await run('listDeadLetters', LIST_DEAD, [limit])) as Buffer[]
  const out: DeadLetter[] = []
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const { header, body } = decodeDeadRecord(reply[i + 1]!)
    out.push({
      id: reply[i]!.toString(),
      queue,
      reason: header.reason,
      error: header.error,
      body: new Uint8Array(body),
      deadAt: header.deadAt,
    })
  }
  return out
}

/** Put dead letters (all, or `ids`) back at the end of the queue; returns the count. */
export async function requeueDead(run: RunScript, ids: readonly string[] | undefined): Promise<number> {
  if (ids !== undefined) {
    return inChunks(ids, async (chunk) => {
      const [n] = (await run('requeueDeadLetters', REQUEUE_DEAD, chunk)) as number[]
      return n ?? 0
    })
  }
  // All: the script moves at most 1000 per call (it says how many it saw).
  let moved = 0
  for (;;) {
    const [n, seen] = (await run('requeueDeadLetters', REQUEUE_DEAD, [])) as number[]
    moved += n ?? 0
    if ((seen ?? 0) < 1000) return moved
  }
}

/** Delete dead letters (all, or `ids`); returns the count. */
export async function purgeDead(run: RunScript, ids: readonly string[] | undefined): Promise<number> {
  if (ids === undefined) return (await run('purgeDeadLetters', PURGE_DEAD, [])) as number
  return inChunks(ids, async (chunk) => (await run('purgeDeadLetters', PURGE_DEAD, chunk)) as number)
}

async function inChunks(
  ids: readonly string[],
  run: (chunk: readonly string[]) => Promise<number>,
): Promise<number> {
  const unique = [...new Set(ids)]
  let total = 0
  for (let i = 0; i < unique.length; i += IDS_PER_CALL) total += await run(unique.slice(i, i + IDS_PER_CALL))
  return total
}

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
