/**
 * The Lua scripts the Redis store runs. Each runs atomically on the server and reads the time
 * from the server's TIME, so replicas whose clocks disagree still count the same windows.
 *
 * Keys of one pool share the hash tag `{namespace/name}` (one Redis Cluster slot), under the
 * installation's prefix:
 *
 * | key                         | type          | holds                                       | expires                 |
 * |-----------------------------|---------------|---------------------------------------------|-------------------------|
 * | `<base>:s:<keyId>`          | string (JSON) | the key's state, since, until               | at a cooldown's end     |
 * | `<base>:w:k:<keyId>:<kind>` | zset or hash  | a key's window (rpm, rpd: exact; tpm: bucketed) | one window after last use |
 * | `<base>:w:g:<group>:<kind>` | zset or hash  | a quota group's window                      | one window after last use |
 * | `<base>:l:<leaseId>`        | string        | keyId and issuing replica of an open lease   | at the lease's end      |
 * | `<base>:o`                  | zset          | open leases by expiry (member keyId\nleaseId) | no (emptied as they end) |
 * | `<base>:f`                  | hash          | in-flight leases per key                    | no (fields go at 0)     |
 * | `<base>:u`                  | hash          | requests, errors, last use per key          | no                      |
 * | `<base>:$:k:<keyId>:<d\|m>:<window>` | string (float) | USD a key spent in a budget day or month | a day after the window |
 * | `<base>:$:p:<d\|m>:<window>` | string (float) | USD the pool spent in a budget day or month | a day after the window |
 * | `<base>:n:<hash of id>`     | string        | the replica that sent a budget notification | after the window      |
 *
 * `<base>` is `<prefix>{<namespace>/<name>}`. No key material is ever written: key ids are
 * hashes (src/pool/identity.ts).
 *
 * Every reply ends with the server's time (epoch ms): the store measures the offset between its
 * clock and the server's on it.
 */

/** Shared by every script: the time, windows, the lease sweep. */
const PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local WINDOW_MS = { rpm = 60000, tpm = 60000, rpd = 86400000 }
local EXACT_MAX = 4096
local BUCKETS = 120

local function exact(kind, limit)
  return kind ~= 'tpm' and limit <= EXACT_MAX
end

-- Epoch ms from which one more unit fits in a window (now when it already does).
local function room_at(key, kind, limit, now)
  local window = WINDOW_MS[kind]
  if exact(kind, limit) then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
    local n = redis.call('ZCARD', key)
    if n < limit then return now end
    local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    return math.max(now, tonumber(oldest[2]) + window)
  end
  local bucket = math.ceil(window / BUCKETS)
  local span = math.ceil(window / bucket) + 1
  local current = math.floor(now / bucket)
  local fields = redis.call('HGETALL', key)
  local used = 0
  local live = {}
  for i = 1, #fields, 2 do
    local index = tonumber(fields[i])
    local amount = tonumber(fields[i + 1])
    if index > current - span then
      used = used + amount
      live[#live + 1] = { index, amount }
    else
      redis.call('HDEL', key, fields[i])
    end
  end
  if used < limit then return now end
  table.sort(live, function(a, b) return a[1] < b[1] end)
  for _, entry in ipairs(live) do
    used = used - entry[2]
    if used < limit then return (entry[1] + span) * bucket end
  end
  return now
end

local function add_use(key, kind, limit, now, amount, member)
  local window = WINDOW_MS[kind]
  if exact(kind, limit) then
    redis.call('ZADD', key, now, member)
    redis.call('PEXPIRE', key, window)
    return
  end
  local bucket = math.ceil(window / BUCKETS)
  local span = math.ceil(window / bucket) + 1
  redis.call('HINCRBY', key, math.floor(now / bucket), amount)
  redis.call('PEXPIRE', key, span * bucket)
end

local function window_key(base, scope, name, kind)
  return base .. ':w:' .. scope .. ':' .. name .. ':' .. kind
end

-- Ends leases whose time is up: they stop counting as in flight.
local function sweep(base, now)
  local expired = redis.call('ZRANGEBYSCORE', base .. ':o', '-inf', now, 'LIMIT', 0, 256)
  for _, member in ipairs(expired) do
    local key_id = string.match(member, '^([^\\n]*)\\n')
    if key_id and redis.call('HINCRBY', base .. ':f', key_id, -1) <= 0 then
      redis.call('HDEL', base .. ':f', key_id)
    end
    redis.call('ZREM', base .. ':o', member)
  end
end

local COOLING = { RateLimited = true, QuotaExhausted = true }
local BLOCKING = { Invalid = true, Disabled = true }

-- The key's stored state, or nil (none, or a cooldown that ended).
local function stored_state(base, key_id, now)
  local raw = redis.call('GET', base .. ':s:' .. key_id)
  if not raw then return nil, nil end
  local state = cjson.decode(raw)
  if COOLING[state.state] and (tonumber(state.untilMs) or 0) <= now then return nil, nil end
  return state, raw
end
`;

/**
 * reserve: ARGV = base, keyId, leaseId, leaseMs, origin, group ("" for none), then triples
 * (scope "k"|"g", kind "rpm"|"rpd"|"tpm", limit). Checks the key's state and every window; when
 * all allow, counts the request in the request windows, opens the lease, counts it in flight.
 *
 * Returns {1, now} | {0, "state", stateJson, now} | {0, "window", keyRoomAt, groupRoomAt, now}.
 */
export const RESERVE = `${PRELUDE}
local base, key_id, lease_id, lease_ms, origin, group = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6]
local now = now_ms()
sweep(base, now)
local state, raw = stored_state(base, key_id, now)
if state and (BLOCKING[state.state] or COOLING[state.state]) then
  return { 0, 'state', raw, now }
end
local key_room, group_room = now, now
local windows = {}
for i = 7, #ARGV, 3 do
  local scope, kind, limit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local key = window_key(base, scope, scope == 'k' and key_id or group, kind)
  local at = room_at(key, kind, limit, now)
  if scope == 'k' then key_room = math.max(key_room, at) else group_room = math.max(group_room, at) end
  if kind ~= 'tpm' then windows[#windows + 1] = { key, kind, limit } end
end
if key_room > now or group_room > now then
  return { 0, 'window', key_room, group_room, now }
end
for _, w in ipairs(windows) do add_use(w[1], w[2], w[3], now, 1, lease_id) end
redis.call('HINCRBY', base .. ':u', key_id .. ':r', 1)
redis.call('HSET', base .. ':u', key_id .. ':t', now)
redis.call('SET', base .. ':l:' .. lease_id, key_id .. '\\n' .. origin, 'PX', lease_ms)
redis.call('ZADD', base .. ':o', now + lease_ms, key_id .. '\\n' .. lease_id)
redis.call('HINCRBY', base .. ':f', key_id, 1)
return { 1, now }
`;

/**
 * end_lease: ARGV = base, leaseId ("" for none), keyId ("" when unknown), tokens, error (0|1),
 * origin (the reporting replica), channel, pool, group ("" for none), then triples of token
 * windows (scope, "tpm", limit). Closes the lease (telling its replica when it is another's),
 * adds tokens, counts an error.
 *
 * Returns {1, keyId, leaseOrigin, now} | {0, now} (the lease is not open and no key was named).
 */
export const END_LEASE = `${PRELUDE}
local base, lease_id, key_id, tokens, is_error = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'
local origin, channel, pool, group = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local now = now_ms()
sweep(base, now)
local lease_origin = ''
if lease_id ~= '' then
  local value = redis.call('GET', base .. ':l:' .. lease_id)
  if value then
    local lease_key, issued_by = string.match(value, '^([^\\n]*)\\n(.*)$')
    redis.call('DEL', base .. ':l:' .. lease_id)
    if redis.call('ZREM', base .. ':o', lease_key .. '\\n' .. lease_id) == 1 then
      if redis.call('HINCRBY', base .. ':f', lease_key, -1) <= 0 then redis.call('HDEL', base .. ':f', lease_key) end
    end
    key_id = lease_key
    lease_origin = issued_by
    if issued_by ~= origin then
      redis.call('PUBLISH', channel, cjson.encode({ kind = 'leaseClosed', pool = pool, leaseId = lease_id, origin = issued_by }))
    end
  elseif key_id == '' then
    return { 0, now }
  end
end
if key_id == '' then return { 0, now } end
if tokens > 0 then
  for i = 10, #ARGV, 3 do
    local scope, kind, limit = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    add_use(window_key(base, scope, scope == 'k' and key_id or group, kind), kind, limit, now, tokens, '')
  end
end
if is_error then redis.call('HINCRBY', base .. ':u', key_id .. ':e', 1) end
return { 1, key_id, lease_origin, now }
`;

/**
 * set_state: ARGV = base, keyId, stateJson (times in server ms), channel, pool. Keeps the newer
 * fact, with three rules on top: a second cooldown keeps the later deadline (and QuotaExhausted
 * outranks RateLimited); a cooldown does not replace Invalid or Disabled; a usable state ends a
 * cooldown that has not run out only when an operator asked (reason "reset"). Cooldowns expire
 * with their deadline. The stored result is published, so every replica hears what the store
 * holds, not what a writer proposed.
 *
 * Returns {1, storedJson, now} (stored and published) | {0, storedJson, now} (the store kept its own).
 */
export const SET_STATE = `${PRELUDE}
local base, key_id, proposed, channel, pool = ARGV[1], ARGV[2], cjson.decode(ARGV[3]), ARGV[4], ARGV[5]
local now = now_ms()
local RANK = { Healthy = 0, Degraded = 1, RateLimited = 2, QuotaExhausted = 3, Invalid = 4, Disabled = 5, Draining = 6 }
local current, current_raw = stored_state(base, key_id, now)
local next = proposed
if current then
  local c_cool, p_cool = COOLING[current.state], COOLING[proposed.state]
  if c_cool and p_cool then
    next = current
    if proposed.state == 'QuotaExhausted' then next.state = 'QuotaExhausted' end
    next.untilMs = math.max(tonumber(current.untilMs) or 0, tonumber(proposed.untilMs) or 0)
    next.reason = proposed.reason
  elseif current.state == proposed.state then
    next = current
    next.consecutiveErrors = math.max(tonumber(current.consecutiveErrors) or 0, tonumber(proposed.consecutiveErrors) or 0)
    next.lastErrorAtMs = math.max(tonumber(current.lastErrorAtMs) or 0, tonumber(proposed.lastErrorAtMs) or 0)
  else
    local newer = proposed.sinceMs > current.sinceMs or
      (proposed.sinceMs == current.sinceMs and RANK[proposed.state] > RANK[current.state])
    if p_cool and BLOCKING[current.state] then newer = false end
    if c_cool and not p_cool and not BLOCKING[proposed.state] and proposed.reason ~= 'reset' then newer = false end
    if not newer then return { 0, current_raw, now } end
  end
end
local encoded = cjson.encode(next)
local key = base .. ':s:' .. key_id
if current_raw == encoded then return { 1, encoded, now } end
if COOLING[next.state] then
  if next.untilMs <= now then return { 0, current_raw or '', now } end
  redis.call('SET', key, encoded, 'PXAT', next.untilMs)
else
  redis.call('SET', key, encoded)
end
redis.call('PUBLISH', channel, cjson.encode({ kind = 'state', pool = pool, keyId = key_id, state = next }))
return { 1, encoded, now }
`;

/** states: ARGV = base, keyIds... Returns {json|false per key, now} (ended cooldowns are false). */
export const STATES = `${PRELUDE}
local base = ARGV[1]
local now = now_ms()
local out = {}
for i = 2, #ARGV do
  local _, raw = stored_state(base, ARGV[i], now)
  out[#out + 1] = raw or false
end
out[#out + 1] = now
return out
`;

/** in_flight: ARGV = base. Sweeps ended leases, returns {keyId, count, keyId, count, ..., now}. */
export const IN_FLIGHT = `${PRELUDE}
local base = ARGV[1]
local now = now_ms()
sweep(base, now)
local out = redis.call('HGETALL', base .. ':f')
out[#out + 1] = now
return out
`;

/**
 * add_spend: ARGV = base, keyId, day, month, usd, dayTtlMs, monthTtlMs. Adds a call's cost to
 * the key's and the pool's day and month (each key expires a day after its window ends) and
 * returns {keyDay, keyMonth, poolDay, poolMonth, now}, the totals over every replica.
 */
export const ADD_SPEND = `${PRELUDE}
local base, key, day, month, usd = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local day_ttl, month_ttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local names = {
  { base .. ':$:k:' .. key .. ':d:' .. day, day_ttl },
  { base .. ':$:k:' .. key .. ':m:' .. month, month_ttl },
  { base .. ':$:p:d:' .. day, day_ttl },
  { base .. ':$:p:m:' .. month, month_ttl },
}
local out = {}
for i, n in ipairs(names) do
  out[i] = redis.call('INCRBYFLOAT', n[1], usd)
  redis.call('PEXPIRE', n[1], n[2])
end
out[#out + 1] = now_ms()
return out
`;
