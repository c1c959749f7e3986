import type { CheckedMessage } from '@errand/core'
import { HELPERS } from './broker-lua-helpers.js'
import { encodeItem } from './codec.js'
import type { QueueKeys } from './keys.js'
import { LuaScript } from './lua.js'
import type { RedisClient } from './options.js'

/*
 * The broker's publish side: the PUBLISH script and the calls that store a batch (the fetch and
 * settle scripts, and the item format and the wake-up item they share, are in store.ts).
 */

/**
 * Publish messages with a delay or a priority. ARGV: (delayMs, priority, item)…
 * Delayed ones go to the delayed set; the rest to the back of their level. Every key is checked
 * first, so a wrong type stores none of the batch rather than part of it.
 */
const PUBLISH = new LuaScript(`${HELPERS}
local now = now_ms()
local first = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
for i = 1, #ARGV, 3 do
  if tonumber(ARGV[i]) <= 0 and not can_place(tonumber(ARGV[i + 1])) then return redis.error_reply(failure) end
end
if not fits(KEYS[6], 'list') then return redis.error_reply(failure) end
local earliest = -1
local must_wake = false
for i = 1, #ARGV, 3 do
  local delay, p, item = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), ARGV[i + 2]
  if delay > 0 then
    local due = now + delay
    redis.call('ZADD', DELAYED, due, item)
    if earliest < 0 or due < earliest then earliest = due end
  else
    redis.call('LPUSH', level_key(p), item)
    if p > 0 then must_wake = true end
  end
end
if earliest >= 0 and (first[2] == nil or earliest < tonumber(first[2])) then must_wake = true end
if must_wake then wake() end
return 1
`)

/** Messages per command when publishing a large batch (also the broker's `maxBatchSize`). */
export const PUBLISH_CHUNK = 1000

/**
 * Store checked messages on a queue: a plain batch (no delay, no priority) is one `LPUSH` per
 * chunk, anything else one PUBLISH call per chunk. `ids` gives each message its id.
 */
export async function publishMessages(
  client: RedisClient,
  keys: QueueKeys,
  keyList: readonly string[],
  messages: readonly CheckedMessage[],
  nextId: () => string,
): Promise<void> {
  const n = messages.length
  const items: Buffer[] = new Array(n)
  let plain = true
  for (let i = 0; i < n; i++) {
    const m = messages[i]!
    items[i] = encodeItem(nextId(), m.priority, m.body)
    if (m.delayMs !== 0 || m.priority !== 0) plain = false
  }
  if (n <= PUBLISH_CHUNK) {
    await (plain
      ? client.lpush(keys.ready[0]!, ...items)
      : PUBLISH.run(client, keyList, scriptArgs(messages, items, 0, n)))
    return
  }
  const calls: Promise<unknown>[] = []
  for (let start = 0; start < n; start += PUBLISH_CHUNK) {
    const end = Math.min(start + PUBLISH_CHUNK, n)
    calls.push(
      plain
        ? client.lpush(keys.ready[0]!, ...items.slice(start, end))
        : PUBLISH.run(client, keyList, scriptArgs(messages, items, start, end)),
    )
  }
  await Promise.all(calls)
}

/** The PUBLISH script's ARGV for messages `start` to `end`: (delayMs, priority, item)… */
function scriptArgs(
  messages: readonly CheckedMessage[],
  items: readonly Buffer[],
  start: number,
  end: number,
): (number | Buffer)[] {
  const args: (number | Buffer)[] = []
  for (let j = start; j < end; j++) {
    const m = messages[j]!
    args.push(m.delayMs, m.priority, items[j]!)
  }
  return args
}

/**
 * The publish calls of one tick on one queue, stored together: their messages,
 * in call order, go in one command (one `LPUSH` when none has a delay or a priority, else one
 * PUBLISH call), so every call of the batch is stored or none is, and a call's messages are never
 * split. The caller keeps the batch at most {@link PUBLISH_CHUNK} messages (one call larger than
 * that goes alone, through {@link publishMessages}).
 */
export function publishCalls(
  client: RedisClient,
  keys: QueueKeys,
  keyList: readonly string[],
  calls: readonly (readonly CheckedMessage[])[],
  nextId: () => string,
): Promise<void> {
  if (calls.length === 1) return publishMessages(client, keys, keyList, calls[0]!, nextId)
  const all: CheckedMessage[] = []
  for (const call of calls) for (const m of call) all.push(m)
  return publishMessages(client, keys, keyList, all, nextId)
}
