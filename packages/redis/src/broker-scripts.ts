import { LuaScript } from './lua.js'

/*
 * The broker's Lua scripts. Every script of one queue gets the same KEYS:
 *   1 inflight (hash id → item), 2 leases (zset "id:n" → deadline), 3 delayed (zset item → due),
 *   4 dead (hash id → record), 5 dead index (zset id → dead-at), 6.. ready lists for priority
 *   0..max (LPUSH to add, RPOP to take: the right end is the front).
 * An item is "<id>:<deliveries so far>:<priority>:<body bytes>". A lease member "<id>:<n>" names
 * delivery n of a message, so a holder whose lease ran out (and whose message went to someone
 * else as delivery n+1) can no longer settle or extend it: its ZREM finds nothing.
 * The item "!" is a wake-up: consumers wait with BLMOVE ready0 ready0 RIGHT RIGHT (which returns
 * as soon as ready0 holds anything, without taking it), so a publish that does not touch ready0
 * (a priority, a new earliest delay) pushes "!" onto an empty ready0. It is only ever pushed onto
 * an empty list and is removed before anything is pushed to the right of it, so it is always the
 * rightmost element when present, and fetches drop it.
 * Times come from the server's clock (TIME), so clients' clocks do not matter.
 */

const HELPERS = `
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
-- id, deliveries, priority and where the body starts; nil for anything the broker did not write
-- (another program's LPUSH, a hand edit). Counts are capped in length so that they stay exact
-- integers when written back. codec.ts decodeItem applies the same rule.
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
-- Garbage goes to the dead letters as 'undecodable' instead of failing the script: Redis does not
-- roll a script back, so an error after a pop would lose everything popped with it. The bytes are
-- kept exact as the record's body ("<id>:<n>:0:<bytes>"); id is the in-flight id when known.
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
-- take the settled holder's message out of flight; nil when its lease is gone
local function take(m)
  if redis.call('ZREM', LEASES, m) == 0 then return nil end
  local id, n = split_member(m)
  local item = redis.call('HGET', INFLIGHT, id)
  if not item then return nil end
  redis.call('HDEL', INFLIGHT, id)
  return item, id, n
end
local function ready_count()
  local n = 0
  for k = 6, #KEYS do n = n + redis.call('LLEN', KEYS[k]) end
  if redis.call('LINDEX', KEYS[6], -1) == '!' then n = n - 1 end
  return n
end
`

/**
 * One consumer round trip: apply acks and lease extensions, move due delayed messages to ready,
 * put messages whose lease ran out back at the front, then take up to `want` ready messages
 * (highest priority first) into flight on a lease.
 * ARGV: leaseMs, want, nAcks, nExtends, ack members…, (extend member, ms)…
 * Returns { wait, item… }: wait is 0 when `want` items came, else ms until the next delayed
 * message is due or the next lease runs out (-1: neither).
 */
export const CYCLE = new LuaScript(`${HELPERS}
local now = now_ms()
local lease_ms, want = tonumber(ARGV[1]), tonumber(ARGV[2])
local n_acks, n_ext = tonumber(ARGV[3]), tonumber(ARGV[4])
local i = 5
if n_acks > 0 then
  -- Three calls for the whole batch: which leases are still ours, drop those, drop their items.
  local members = {}
  for k = 1, n_acks do members[k] = ARGV[i + k - 1] end
  i = i + n_acks
  local scores = redis.call('ZMSCORE', LEASES, unpack(members))
  local held, ids = {}, {}
  for k = 1, n_acks do
    if scores[k] then
      held[#held + 1] = members[k]
      ids[#ids + 1] = split_member(members[k])
    end
  end
  if #held > 0 then
    redis.call('ZREM', LEASES, unpack(held))
    redis.call('HDEL', INFLIGHT, unpack(ids))
  end
end
for k = 1, n_ext do
  redis.call('ZADD', LEASES, 'XX', now + tonumber(ARGV[i + 1]), ARGV[i])
  i = i + 2
end
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  redis.call('ZREMRANGEBYRANK', DELAYED, 0, #due - 1)
  for _, item in ipairs(due) do
    local id, _, p = parse(item)
    if id then push_back(item, p) else bury(item, 'the delayed set') end
  end
end
local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, 1000)
for _, m in ipairs(expired) do
  redis.call('ZREM', LEASES, m)
  local id, n = split_member(m)
  local item = redis.call('HGET', INFLIGHT, id)
  if item then
    redis.call('HDEL', INFLIGHT, id)
    return_front(item, id, n)
  end
end
local out = { 0 }
local got = 0
if want > 0 then
  local deadline = now + lease_ms
  local hargs, zargs = {}, {}
  -- One LMPOP scans the levels highest first (cheaper than one RPOP per level).
  local lmpop = { LEVELS }
  for p = LEVELS - 1, 0, -1 do lmpop[#lmpop + 1] = KEYS[6 + p] end
  lmpop[#lmpop + 1] = 'RIGHT'
  lmpop[#lmpop + 1] = 'COUNT'
  local count_at = #lmpop + 1
  while got < want do
    lmpop[count_at] = want - got
    local popped = redis.call('LMPOP', unpack(lmpop))
    if not popped then break end
    for _, item in ipairs(popped[2]) do
      if item ~= '!' then
        local id, d = parse(item)
        if id then
          hargs[#hargs + 1] = id
          hargs[#hargs + 1] = item
          zargs[#zargs + 1] = deadline
          zargs[#zargs + 1] = id .. ':' .. (d + 1)
          got = got + 1
          out[got + 1] = item
        else
          -- Not counted in got: the loop pops another in its place.
          bury(item, 'a ready list')
        end
      end
    end
  end
  if got > 0 then
    redis.call('HSET', INFLIGHT, unpack(hargs))
    redis.call('ZADD', LEASES, unpack(zargs))
  end
end
if got < want then
  local next_at = -1
  local d = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
  if d[2] then next_at = tonumber(d[2]) end
  local l = redis.call('ZRANGE', LEASES, 0, 0, 'WITHSCORES')
  if l[2] and (next_at < 0 or tonumber(l[2]) < next_at) then next_at = tonumber(l[2]) end
  if next_at >= 0 then out[1] = math.max(next_at - now, 1) else out[1] = -1 end
end
return out
`)

/**
 * Publish messages with a delay or a priority. ARGV: (delayMs, priority, item)…
 * Delayed ones go to the delayed set; the rest to the back of their level.
 */
export const PUBLISH = new LuaScript(`${HELPERS}
local now = now_ms()
local first = redis.call('ZRANGE', DELAYED, 0, 0, 'WITHSCORES')
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

/** Give a delivery back: ARGV member, delayMs. Returns 1 when this holder still had it. */
export const NACK = new LuaScript(`${HELPERS}
local item, id, n = take(ARGV[1])
if not item then return 0 end
local counted, p = with_deliveries(item, n)
if not counted then
  bury(item, 'flight', id, n)
  return 1
end
local delay = tonumber(ARGV[2])
if delay > 0 then schedule(counted, now_ms() + delay) else push_back(counted, p) end
return 1
`)

/**
 * Move a delivery to the dead letters: ARGV member, header JSON, dead-at (ms). The record is
 * "<header JSON>\\n<item>". Returns 1 when this holder still had it.
 */
export const DEAD_LETTER = new LuaScript(`${HELPERS}
local item, id, n = take(ARGV[1])
if not item then return 0 end
-- Garbage keeps the caller's reason, with its bytes as the body.
local counted = with_deliveries(item, n) or (string.gsub(id, ':', '_') .. ':' .. n .. ':0:' .. item)
redis.call('HSET', DEAD, id, ARGV[2] .. '\\n' .. counted)
redis.call('ZADD', DEAD_INDEX, tonumber(ARGV[3]), id)
return 1
`)

/**
 * Put deliveries back at the front of their level, in the order given (the first given is the
 * next out). ARGV: counted (1: the delivery counts, so the next attempt is one higher; 0: it was
 * never handed out), members…
 */
export const RELEASE = new LuaScript(`${HELPERS}
local counted = ARGV[1] == '1'
local moved = 0
for k = #ARGV, 2, -1 do
  local item, id, n = take(ARGV[k])
  if item then
    local iid, d, p = parse(item)
    if not iid then
      bury(item, 'flight', id, n)
    else
      -- Never handed out: as it was (its count untouched).
      return_front(item, id, counted and n or d)
      moved = moved + 1
    end
  end
end
return moved
`)

/** { ready, delayed, inFlight, dead } */
export const STATS = new LuaScript(`${HELPERS}
return { ready_count(), redis.call('ZCARD', DELAYED), redis.call('ZCARD', LEASES), redis.call('HLEN', DEAD) }
`)

/** Drop ready and delayed messages; returns how many. */
export const PURGE = new LuaScript(`${HELPERS}
local n = ready_count() + redis.call('ZCARD', DELAYED)
for k = 6, #KEYS do redis.call('DEL', KEYS[k]) end
redis.call('DEL', DELAYED)
return n
`)

/** Oldest dead letters: ARGV limit. Returns id, record, id, record… */
export const LIST_DEAD = new LuaScript(`${HELPERS}
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
export const REQUEUE_DEAD = new LuaScript(`${HELPERS}
local ids = ARGV
if #ids == 0 then ids = redis.call('ZRANGE', DEAD_INDEX, 0, 999) end
local moved = 0
for _, id in ipairs(ids) do
  local record = redis.call('HGET', DEAD, id)
  redis.call('ZREM', DEAD_INDEX, id)
  if record then
    redis.call('HDEL', DEAD, id)
    -- A record not written by the broker goes back whole, as the body of an item (core judges it).
    local nl = string.find(record, '\\n', 1, true)
    local item = nl and string.sub(record, nl + 1) or record
    local iid, _, p = parse(item)
    if not iid then
      item = string.gsub(id, ':', '_') .. ':0:0:' .. item
      p = 0
    end
    push_back(item, p)
    moved = moved + 1
  end
end
return { moved, #ids }
`)

/** Delete dead letters: ARGV ids…, or none for all. Returns how many. */
export const PURGE_DEAD = new LuaScript(`${HELPERS}
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
