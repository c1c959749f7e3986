import type { DeadLetterInfo } from '@errand/core'
import { HELPERS } from './broker-lua-helpers.js'
import { LuaScript } from './lua.js'
import type { RedisClient } from './options.js'
import { MAX_BATCH } from './round-trip.js'

/*
 * The broker's store operations: the Lua scripts that fetch and settle and their calls (the
 * publish ones are in publish.ts, the admin ones in admin.ts). Every script of one queue gets the same KEYS (see
 * broker-lua-helpers.ts, which also says how no script raises after removing something).
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

/**
 * One consumer round trip: write the task records of fused acks, apply acks and lease
 * extensions, move due delayed messages to ready, put messages whose lease ran out back at the
 * front, then take up to `want` ready messages (highest priority first) into flight on a lease.
 * Garbage met on the way is dead-lettered.
 * KEYS: the queue's keys, then one result-backend record key per record (standalone Redis only:
 * record keys hash to other slots than the queue's).
 * ARGV: leaseMs, want, nAcks, nExtends, nRecords, ack members…, (extend member, ms)…,
 * (record JSON, ttl ms, final 1/0, channel, state)… — the first nRecords ack members are the
 * deliveries whose record comes in the same place of the record list.
 * A record is written as the result backend's SET_STATES writes it (backend-scripts.ts: never over
 * CANCELED, PUBLISHed on its channel when final), and its delivery is acked only when the write
 * could be made (a record key of the wrong type: neither, and its state slot says why).
 * Returns { wait, state…, extended…, item… }: wait is 0 when `want` items came, else ms until the
 * next delayed message is due or the next lease runs out (-1: neither); one state per record (the
 * state stored after the call, or "ERR <message>"); one 1/0 per extension (0: the lease was no
 * longer held, so the message went back to the queue and may be another consumer's now).
 * { -2, state…, extended…, message } when a key of the wrong type stopped it before it took
 * anything (what could be done was done; nothing was lost).
 */
export const CYCLE = new LuaScript(`${HELPERS}
local now = now_ms()
local lease_ms, want = tonumber(ARGV[1]), tonumber(ARGV[2])
local n_acks, n_ext, n_rec = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
-- The record keys follow the ready lists.
LEVELS = LEVELS - n_rec
local rec_key, rec_arg = #KEYS - n_rec, 6 + n_acks + 2 * n_ext
local out = { 0 }
-- Reads only (a record key of the wrong type fails its own pcall, before anything is removed).
local rec_ok = {}
for k = 1, n_rec do
  local head = redis.pcall('GETRANGE', KEYS[rec_key + k], 0, 18)
  if type(head) == 'table' and head.err then
    out[1 + k] = 'ERR ' .. head.err
    rec_ok[k] = false
  elseif head == '{"state":"CANCELED"' then
    out[1 + k] = 'CANCELED'
    rec_ok[k] = 'keep'
  else
    out[1 + k] = ARGV[rec_arg + (k - 1) * 5 + 4]
    rec_ok[k] = true
  end
end
local i = 6
if n_acks > 0 then
  -- Three calls for the whole batch: which leases are still ours, drop those, drop their items.
  local members = {}
  for k = 1, n_acks do members[k] = ARGV[i + k - 1] end
  i = i + n_acks
  local scores = redis.call('ZMSCORE', LEASES, unpack(members))
  local held, ids = {}, {}
  for k = 1, n_acks do
    if scores[k] and (k > n_rec or rec_ok[k]) then
      held[#held + 1] = members[k]
      ids[#ids + 1] = split_member(members[k])
    end
  end
  if #held > 0 then
    if not fits(INFLIGHT, 'hash') then return redis.error_reply(failure) end
    redis.call('ZREM', LEASES, unpack(held))
    redis.call('HDEL', INFLIGHT, unpack(ids))
  end
end
-- SET and PUBLISH cannot fail on a key's type: nothing below raises after the acks.
for k = 1, n_rec do
  if rec_ok[k] == true then
    local b = rec_arg + (k - 1) * 5
    redis.call('SET', KEYS[rec_key + k], ARGV[b], 'PX', ARGV[b + 1])
    if ARGV[b + 2] == '1' then redis.call('PUBLISH', ARGV[b + 3], ARGV[b]) end
  end
end
for k = 1, n_ext do
  local m = ARGV[i]
  if redis.call('ZSCORE', LEASES, m) then
    redis.call('ZADD', LEASES, 'XX', now + tonumber(ARGV[i + 1]), m)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  i = i + 2
end
local due = redis.call('ZRANGEBYSCORE', DELAYED, '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  local levels, ok = {}, true
  for k, item in ipairs(due) do
    local _, _, p = parse(item)
    levels[k] = p or false
    if not can_place(p) then
      ok = false
      break
    end
  end
  if ok then
    redis.call('ZREMRANGEBYRANK', DELAYED, 0, #due - 1)
    for k, item in ipairs(due) do
      if levels[k] then push_back(item, levels[k]) else bury(item, 'the delayed set') end
    end
  end
end
local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, 1000)
vouch(LEASES, 'zset')
for _, m in ipairs(expired) do
  local id, n = split_member(m)
  local item = redis.call('HGET', INFLIGHT, id)
  vouch(INFLIGHT, 'hash')
  if not item then
    redis.call('ZREM', LEASES, m)
  else
    local _, _, p = parse(item)
    if can_place(p) then
      redis.call('ZREM', LEASES, m)
      redis.call('HDEL', INFLIGHT, id)
      return_front(item, id, n)
    end
  end
end
local got = 0
local base = #out
if want > 0 and fits(INFLIGHT, 'hash') then
  local deadline = now + lease_ms
  local hargs, zargs = {}, {}
  -- One LMPOP scans the levels highest first (cheaper than one RPOP per level).
  local lmpop = { LEVELS }
  for p = LEVELS - 1, 0, -1 do lmpop[#lmpop + 1] = KEYS[6 + p] end
  lmpop[#lmpop + 1] = 'RIGHT'
  lmpop[#lmpop + 1] = 'COUNT'
  local count_at = #lmpop + 1
  local stop, dropped = false, 0
  -- Garbage does not count toward want: bound it per call so a list full of it cannot hold the
  -- server in one script (the next round trip goes on).
  while got < want and not stop and dropped < 1000 do
    lmpop[count_at] = want - got
    -- pcall: a level of the wrong type further down fails this pop, not the ones before it.
    local popped = redis.pcall('LMPOP', unpack(lmpop))
    if type(popped) == 'table' and popped.err then
      failure = popped.err
      break
    end
    if not popped then break end
    local key, items = popped[1], popped[2]
    for k, item in ipairs(items) do
      if item ~= '!' then
        local id, d = parse(item)
        if id then
          hargs[#hargs + 1] = id
          hargs[#hargs + 1] = item
          zargs[#zargs + 1] = deadline
          zargs[#zargs + 1] = id .. ':' .. (d + 1)
          got = got + 1
          out[base + got] = item
        elseif can_place(nil) then
          -- Not counted in got: the loop pops another in its place.
          bury(item, 'a ready list')
          dropped = dropped + 1
        else
          -- Nowhere to put it: it and the rest of this pop go back where they were, in order.
          for j = #items, k, -1 do redis.call('RPUSH', key, items[j]) end
          stop = true
          break
        end
      end
    end
  end
  if got > 0 then
    redis.call('HSET', INFLIGHT, unpack(hargs))
    redis.call('ZADD', LEASES, unpack(zargs))
  end
end
-- Not an error reply: the acks and extensions above are done, and their callers must hear so.
if failure and got == 0 then
  out[1] = -2
  out[#out + 1] = failure
  return out
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

/** Give a delivery back: ARGV member, delayMs. Returns 1 when this holder still had it. */
export const NACK = new LuaScript(`${HELPERS}
local item, id, n = peek(ARGV[1])
if not item then return 0 end
local counted, p = with_deliveries(item, n)
local delay = tonumber(ARGV[2])
local ok
if not counted then ok = can_place(nil)
elseif delay > 0 then ok = fits(DELAYED, 'zset') and fits(KEYS[6], 'list')
else ok = can_place(p) end
if not ok then return redis.error_reply(failure) end
finish(ARGV[1], id)
if not counted then
  bury(item, 'flight', id, n)
elseif delay > 0 then
  schedule(counted, now_ms() + delay)
else
  push_back(counted, p)
end
return 1
`)

/**
 * Move a delivery to the dead letters: ARGV member, header JSON, dead-at (ms). The record is
 * "<header JSON>\\n<item>". Returns 1 when this holder still had it.
 */
export const DEAD_LETTER = new LuaScript(`${HELPERS}
local item, id, n = peek(ARGV[1])
if not item then return 0 end
if not can_place(nil) then return redis.error_reply(failure) end
finish(ARGV[1], id)
-- Garbage keeps the caller's reason, with its bytes as the body.
local counted = with_deliveries(item, n) or (string.gsub(id, ':', '_') .. ':' .. n .. ':0:' .. item)
redis.call('HSET', DEAD, id, ARGV[2] .. '\\n' .. counted)
redis.call('ZADD', DEAD_INDEX, tonumber(ARGV[3]), id)
return 1
`)

/**
 * Put deliveries back at the front of their level, in the order given (the first given is the
 * next out). ARGV: counted (1: the delivery counts, so the next attempt is one higher; 0: it was
 * never handed out), members… Returns how many went back (garbage goes to the dead letters).
 */
export const RELEASE = new LuaScript(`${HELPERS}
local counted = ARGV[1] == '1'
local moved = 0
for k = #ARGV, 2, -1 do
  local item, id, n = peek(ARGV[k])
  if item then
    local iid, d, p = parse(item)
    if can_place(iid and p or nil) then
      finish(ARGV[k], id)
      if not iid then
        bury(item, 'flight', id, n)
      else
        -- Never handed out: as it was (its count untouched).
        return_front(item, id, counted and n or d)
        moved = moved + 1
      end
    end
  end
end
if failure then return redis.error_reply(failure) end
return moved
`)

/** Give delivery `lease` back, due in `delayMs` (fenced on the lease). */
export function nackMessage(
  client: RedisClient,
  keyList: readonly string[],
  lease: string,
  delayMs: number,
): Promise<unknown> {
  return NACK.run(client, keyList, [lease, delayMs])
}

/** Move delivery `lease`'s message to the dead letters with `info`, atomically (fenced on the lease). */
export function deadLetterMessage(
  client: RedisClient,
  keyList: readonly string[],
  lease: string,
  info: DeadLetterInfo,
): Promise<unknown> {
  const deadAt = Date.now()
  const header = JSON.stringify({ reason: info.reason, error: info.error, deadAt })
  return DEAD_LETTER.run(client, keyList, [lease, header, deadAt])
}

/**
 * Put held messages back at the front of the queue; `counted`: the delivery counts (a delivery
 * handed out), else not (taken but never handed out). In calls of at most 1000 leases.
 */
export async function releaseLeases(
  client: RedisClient,
  keyList: readonly string[],
  leases: readonly string[],
  counted: boolean,
): Promise<void> {
  for (let i = 0; i < leases.length; i += MAX_BATCH) {
    await RELEASE.run(client, keyList, [counted ? '1' : '0', ...leases.slice(i, i + MAX_BATCH)])
  }
}
