import { LuaScript } from './lua.js'

/**
 * Write a task record unless a CANCELED one is stored; publish it when final.
 * KEYS: record. ARGV: record JSON (starting `{"state":"…"`), ttl ms, final (1/0), channel, state.
 * Returns the state stored after the call.
 */
export const SET_STATE = new LuaScript(`
-- Only the first bytes: the state leads the JSON, so a large stored result is never copied here.
if redis.call('GETRANGE', KEYS[1], 0, 18) == '{"state":"CANCELED"' then return 'CANCELED' end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if ARGV[3] == '1' then redis.call('PUBLISH', ARGV[4], ARGV[1]) end
return ARGV[5]
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
