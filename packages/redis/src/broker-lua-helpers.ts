/*
 * Lua shared by the broker's scripts (store.ts, publish.ts, admin.ts), pasted at the top of each.
 * KEYS:
 *   1 inflight (hash id → item), 2 leases (zset "id:n" → deadline), 3 delayed (zset item → due),
 *   4 dead (hash id → record), 5 dead index (zset id → dead-at), 6.. ready lists for priority
 *   0..max (LPUSH to add, RPOP to take: the right end is the front).
 *
 * Redis does not roll a script back: whatever it did before an error stays done. So no script may
 * raise after it has removed something. Two things could make it raise:
 * - garbage: an item that is not "<id>:<deliveries>:<priority>:<body>" (another program's LPUSH, a
 *   hand edit), or a malformed lease member. `parse` and `split_member` never fail; garbage goes
 *   to the dead letters as 'undecodable' with its bytes (`bury`).
 * - a key of the wrong type (redis.call raises WRONGTYPE). Each step reads a key before it removes
 *   from it (a read of the wrong type fails before anything is done) and checks the keys it will
 *   write with `fits` before its first removal (TYPE, asked once per key per call and only for
 *   keys no read has vouched for). A step whose target is wrong leaves its input where it was and
 *   sets `failure`, which the script reports.
 */
export const HELPERS = `
local INFLIGHT, LEASES, DELAYED, DEAD, DEAD_INDEX = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local LEVELS = #KEYS - 5
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function level_key(p)
  if p >= LEVELS then p = LEVELS - 1 end
  return KEYS[6 + p]
end
-- id, deliveries, priority and where the body starts; nil for anything the broker did not write.
-- Counts are capped in length so that they stay exact integers when written back. codec.ts
-- decodeItem applies the same rule.
local function parse(item)
  local id, n, p = string.match(item, '^([^:]+):(%d+):(%d+):')
  if not id or #n > 9 or #p > 3 then return nil end
  return id, tonumber(n), tonumber(p), #id + #n + #p + 4
end
-- The item as delivery n (nil for garbage), and its priority.
local function with_deliveries(item, n)
  local id, _, p, body_at = parse(item)
  if not id then return nil end
  return id .. ':' .. n .. ':' .. p .. ':' .. string.sub(item, body_at), p
end
-- A lease member "<id>:<n>". A malformed one still names an id (up to the first ':'); its n is nil.
local function split_member(m)
  local id, n = string.match(m, '^([^:]+):(%d+)$')
  if id and #n <= 9 then return id, tonumber(n) end
  local colon = string.find(m, ':', 1, true)
  if colon then return string.sub(m, 1, colon - 1), nil end
  return m, nil
end
local types = {}
local failure = nil
-- Whether key can take a write of kind (also when it does not exist); sets failure when not.
local function fits(key, kind)
  local t = types[key]
  if not t then
    t = redis.call('TYPE', key)['ok']
    types[key] = t
  end
  if t == kind or t == 'none' then return true end
  failure = 'WRONGTYPE ' .. key .. ' holds a ' .. t .. ', not a ' .. kind .. '; left as it was'
  return false
end
-- A read of key succeeded: it has the right type (no TYPE needed).
local function vouch(key, kind) types[key] = kind end
-- Can an item of priority p (nil: garbage, for the dead letters) be placed?
local function can_place(p)
  if p == nil then return fits(DEAD, 'hash') and fits(DEAD_INDEX, 'zset') end
  return fits(level_key(p), 'list') and (p == 0 or fits(KEYS[6], 'list'))
end
-- Garbage to the dead letters as 'undecodable'. The bytes are kept exact as the record's body
-- ("<id>:<n>:0:<bytes>"), so listing shows them and a requeue sends them on for core to judge.
-- id is the in-flight id when known. Call can_place(nil) first.
local buried = 0
local function bury(raw, where, id, n)
  local now = now_ms()
  if id then
    id = string.gsub(id, ':', '_')
  else
    repeat
      buried = buried + 1
      id = 'garbage-' .. now .. '-' .. buried
    until redis.call('HEXISTS', DEAD, id) == 0
  end
  local header = '{"reason":"undecodable","error":{"name":"DecodeError","code":"ERR_DECODE",'
    .. '"message":"malformed queue item in ' .. where
    .. ': expected <id>:<deliveries>:<priority>:<body>"},"deadAt":' .. now .. '}'
  redis.call('HSET', DEAD, id, header .. '\\n' .. id .. ':' .. (n or 0) .. ':0:' .. raw)
  redis.call('ZADD', DEAD_INDEX, now, id)
end
local function wake()
  if redis.call('LLEN', KEYS[6]) == 0 then redis.call('LPUSH', KEYS[6], '!') end
end
local function push_back(item, p)
  redis.call('LPUSH', level_key(p), item)
  if p > 0 then wake() end
end
local function push_front(item, p)
  local key = level_key(p)
  if p == 0 then
    if redis.call('LINDEX', key, -1) == '!' then redis.call('RPOP', key) end
  end
  redis.call('RPUSH', key, item)
  if p > 0 then wake() end
end
-- Back to the front as delivery n (n nil: a malformed lease, so one more than the item says).
-- Call can_place first.
local function return_front(item, id, n)
  local iid, d, p, body_at = parse(item)
  if not iid then return bury(item, 'flight', id, n) end
  push_front(iid .. ':' .. (n or d + 1) .. ':' .. p .. ':' .. string.sub(item, body_at), p)
end
local function schedule(item, due)
  local first = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  redis.call('ZADD', DELAYED, due, item)
  if first[2] == nil or due < tonumber(first[2]) then wake() end
end
-- The settling holder's message, still in place: item, id, n; nil when its lease is gone (a lease
-- left without its message is dropped). Reads only, so a wrong type fails before any removal.
local function peek(m)
  if not redis.call('ZSCORE', LEASES, m) then return nil end
  local id, n = split_member(m)
  local item = redis.call('HGET', INFLIGHT, id)
  if not item then
    redis.call('ZREM', LEASES, m)
    return nil
  end
  return item, id, n
end
-- Take a peeked message out of flight.
local function finish(m, id)
  redis.call('ZREM', LEASES, m)
  redis.call('HDEL', INFLIGHT, id)
end
local function ready_count()
  local n = 0
  for k = 6, #KEYS do n = n + redis.call('LLEN', KEYS[k]) end
  if redis.call('LINDEX', KEYS[6], -1) == '!' then n = n - 1 end
  return n
end
`
