import { LuaScript } from './lua.js'

/**
 * Write task records unless a CANCELED one is stored; publish the final ones. One call writes
 * one record or a whole batch (the writes of one tick, standalone Redis only: the keys of
 * different tasks hash to different cluster slots).
 * KEYS: record keys. ARGV, five per key: record JSON (starting `{"state":"…"`), ttl ms, final
 * (1/0), channel, state. Returns the state stored after the call, per key.
 */
export const SET_STATES = new LuaScript(`
local out = {}
for k = 1, #KEYS do
  local b = (k - 1) * 5
  -- Only the first bytes: the state leads the JSON, so a large stored result is never copied here.
  if redis.call('GETRANGE', KEYS[k], 0, 18) == '{"state":"CANCELED"' then
    out[k] = 'CANCELED'
  else
    redis.call('SET', KEYS[k], ARGV[b + 1], 'PX', ARGV[b + 2])
    if ARGV[b + 3] == '1' then redis.call('PUBLISH', ARGV[b + 4], ARGV[b + 1]) end
    out[k] = ARGV[b + 5]
  end
end
return out
`)

/**
 * Record member `index` of a group and count distinct members, in one step.
 * KEYS: group hash (field "size", and one field per recorded index).
 * ARGV: index, size, outcome JSON, ttl ms.
 * Returns { completed } or, once every member is in, { completed, { field, value, … } };
 * an error "SIZE <n>" when the group was started with another size.
 */
export const COMPLETE_MEMBER = new LuaScript(`
local size = redis.call('HGET', KEYS[1], 'size')
if size and size ~= ARGV[2] then return redis.error_reply('SIZE ' .. size) end
if not size then redis.call('HSET', KEYS[1], 'size', ARGV[2]) end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local completed = redis.call('HLEN', KEYS[1]) - 1
if completed < tonumber(ARGV[2]) then return { completed } end
return { completed, redis.call('HGETALL', KEYS[1]) }
`)
