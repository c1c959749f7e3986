import { LuaScript } from './lua.js'

/*
 * Flow-control scripts (see flow.ts). Each touches one key, so it runs on any cluster
 * slot. Times are the server's clock (TIME) in microseconds: about 1.7e15, an exact integer in a
 * Lua double (up to 2^53), and passed to redis.call exactly (Redis formats numbers with 17
 * significant digits). No script concatenates a number into a string (Lua would round it to 14).
 * Each reads its key before it writes, so a key of the wrong type fails before anything changes.
 */

const NOW_US = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
`

/**
 * Sliding-window rate limit.
 * KEYS: sorted set of recorded starts (member: a unique token, score: start time in µs).
 * ARGV: max, window µs, window ms for PEXPIRE (integer), unique member.
 * Returns 0 when the start was recorded, else ms until a start would be (at least 1).
 */
export const TAKE_RATE = new LuaScript(`${NOW_US}
local max, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < max then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 0
end
-- The start whose leaving brings the count below max (the oldest while max stays the same).
local first = redis.call('ZRANGE', KEYS[1], count - max, count - max, 'WITHSCORES')
local wait = math.ceil((tonumber(first[2]) + window - now) / 1000)
if wait < 1 then wait = 1 end
return wait
`)

/**
 * Group concurrency slot.
 * KEYS: sorted set of holders (member: holder, score: lease end in µs).
 * ARGV: holder, max, lease µs.
 * Returns 1 when the holder holds a slot after the call, else 0. The key expires with its
 * longest lease.
 */
export const ACQUIRE_SLOT = new LuaScript(`${NOW_US}
local holder, max, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], holder) and redis.call('ZCARD', KEYS[1]) >= max then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, holder)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], math.ceil(tonumber(last[2]) / 1000))
return 1
`)
