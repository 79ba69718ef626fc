"""The Lua scripts of the Redis backend: every multi-step state change is one atomic script.

Keys of one queue share the hash tag ``{queue}`` so they land in one Redis Cluster slot:

- ``kqueue:{q}:pending``  sorted set, job id scored by when it may be leased (ready if due, else
  scheduled: new jobs, retries, releases and scheduled jobs all live here);
- ``kqueue:{q}:pending:<p>`` the same for the jobs of priority ``p`` (not 0), and
  ``kqueue:{q}:prios`` the sorted set of the priorities in use (scored by priority): one list
  per priority level, so each stays ordered by due time (``kqueue.policy.ordering``);
- ``kqueue:{q}:leased``   sorted set, job id scored by its lease expiry;
- ``kqueue:{q}:dead``     sorted set, job id scored by when it failed for good;
- ``kqueue:{q}:notify``   list of wake-up tokens for idle workers (``BLPOP``; a hint, capped at
  ``NOTIFY_MAX``): pushed when work becomes ready now, never needed for correctness;
- ``kqueue:{q}:job:<id>`` hash: ``body``, ``attempts``, ``enqueued_at``, ``due_at``, ``token``
  and ``worker`` (only while leased), ``prio`` (its priority, when not 0), ``error``,
  ``failed_at``, ``ukey`` (its unique key), ``class`` (its job class: ``redis_classes``),
  ``cancel`` and ``cancel_ttl_ms`` (a cancel asked while it ran: its record and how long to keep);
- ``kqueue:{q}:result:<id>`` string: the finished job's record, expiring after its TTL (Redis
  expires it: no janitor);
- ``kqueue:{q}:done:<id>`` list holding one token once the job ended (same TTL, at least
  ``DONE_MIN_TTL_MS``): ``result()`` waits on it with ``BLMOVE`` from the list to itself, which
  wakes every waiter and consumes nothing;
- ``kqueue:{q}:unique:<key>`` string ``"<until>:<job id>"``: a unique-key lock, held while its job
  exists (not dead) or until ``until``; it gets a TTL (to ``until``) or is deleted when its job
  ends, and a lock whose job is gone counts as free, so it cannot outlive a crash.

The leading ``kqueue`` is the backend's key prefix (``?prefix=`` in the URL).

A job id is in exactly one of the three sets while its hash exists. Scripts take the key prefix
``kqueue:{q}:`` as ``ARGV[1]`` and build job keys from it (same slot). Times come from the server's
``TIME`` (Redis >= 5 replicates script effects, so a non-deterministic call is allowed before a
write): leases are shared by workers on many hosts whose clocks may disagree. Scripts return
numbers as strings, because Redis truncates Lua numbers to integers in replies.
"""

from __future__ import annotations

from kqueue.backends.redis_classes import CLASS_INDEX
from kqueue.policy.slot_queue import slot_key

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local function fmt(x) return string.format('%.6f', x) end
"""

#: Priority levels: a job's pending set is ``pending`` (priority 0) or ``pending:<p>``.
_LEVELS = """
local function level_key(prefix, default, prio)
  if not prio or prio == '0' then return default end
  return prefix .. 'pending:' .. prio
end
local function pending_of(prefix, default, key)
  return level_key(prefix, default, redis.call('HGET', key, 'prio'))
end
local function levels(prefix, default)
  local out = {{default, 0}}
  for _, p in ipairs(redis.call('ZRANGE', prefix .. 'prios', 0, -1)) do
    out[#out + 1] = {prefix .. 'pending:' .. p, tonumber(p)}
  end
  return out
end
"""

#: Least time a ``done`` token is kept (a job whose record is not kept still wakes its waiters).
DONE_MIN_TTL_MS = 10_000

#: Ending a job: delete its message, keep its record, wake waiters, release its unique lock,
#: drop it from its class's index. Needs ``now`` (``_NOW``).
_FINISH = (
    CLASS_INDEX
    + f"""
local function release_lock(prefix, key, id)
  local ukey = redis.call('HGET', key, 'ukey')
  if not ukey then return end
  local lock = prefix .. 'unique:' .. ukey
  local value = redis.call('GET', lock)
  if not value then return end
  local colon = string.find(value, ':', 1, true)
  if string.sub(value, colon + 1) ~= id then return end
  local held_until = tonumber(string.sub(value, 1, colon - 1))
  if held_until > now then
    redis.call('PEXPIREAT', lock, math.ceil(held_until * 1000))
  else
    redis.call('DEL', lock)
  end
end
local function finish(prefix, id, record, ttl_ms)
  local key = prefix .. 'job:' .. id
  release_lock(prefix, key, id)
  class_drop(prefix, key, id)
  redis.call('DEL', key)
  if record ~= '' and ttl_ms > 0 then
    redis.call('SET', prefix .. 'result:' .. id, record, 'PX', ttl_ms)
  end
  local done = prefix .. 'done:' .. id
  redis.call('RPUSH', done, '1')
  redis.call('PEXPIRE', done, math.max(ttl_ms, {DONE_MIN_TTL_MS}))
end
"""
)

#: A job that ends for good (cancelled, dead-lettered) leaves its class's wait list
#: (``kqueue.policy.slot_queue.leave_line``): ``kqueue:limit:{<slot_key>}:waiting`` and
#: ``...:waiting_until`` (``redis_limits``), the backend's prefix being the queue prefix's part
#: before ``:{``. Needs the job's hash, so call it before ``finish``. These keys have another
#: hash tag than the queue's: one primary (kqueue's Redis, with Sentinel) runs it in one step.
_LEAVE_LINE = f"""
local function leave_line(prefix, key, id)
  local c = redis.call('HGET', key, 'class')
  if not c then return end
  local line = string.match(prefix, '^(.-):{{') .. ':limit:{{{slot_key("")}' .. c .. '}}:'
  redis.call('ZREM', line .. 'waiting', id)
  redis.call('ZREM', line .. 'waiting_until', id)
end
"""

#: Most wake-up tokens kept in a queue's ``notify`` list (idle workers woken at once).
NOTIFY_MAX = 16

_NOTIFY = f"""
local function notify(key)
  redis.call('LPUSH', key, '1')
  redis.call('LTRIM', key, 0, {NOTIFY_MAX - 1})
end
"""

#: KEYS: pending, notify. ARGV: prefix, delay_s, priority, job class, id1, body1, id2, body2, ...
#: Returns how many were new. A known id is ignored. Scores grow by 1 us per message so a batch
#: keeps its order.
ENQUEUE = (
    _NOW
    + _NOTIFY
    + _LEVELS
    + """
local prefix, due, prio, class, added = ARGV[1], now + tonumber(ARGV[2]), ARGV[3], ARGV[4], 0
local pending = level_key(prefix, KEYS[1], prio)
local index = prefix .. 'class:' .. class
for i = 5, #ARGV, 2 do
  local key = prefix .. 'job:' .. ARGV[i]
  if redis.call('EXISTS', key) == 0 then
    redis.call('HSET', key, 'body', ARGV[i + 1], 'attempts', 0, 'enqueued_at', fmt(now),
               'due_at', fmt(due), 'class', class)
    if pending ~= KEYS[1] then redis.call('HSET', key, 'prio', prio) end
    local score = due + added / 1000000
    redis.call('ZADD', pending, score, ARGV[i])
    redis.call('ZADD', index, score, ARGV[i])
    added = added + 1
  end
end
if added > 0 then redis.call('SADD', prefix .. 'classes', class) end
if added > 0 and pending ~= KEYS[1] then
  redis.call('ZADD', prefix .. 'prios', tonumber(prio), prio)
end
if added > 0 and tonumber(ARGV[2]) <= 0 then notify(KEYS[2]) end
return added
"""
)

#: KEYS: pending, notify, dead. ARGV: prefix, delay_s, id, body, unique key, unique_for_s,
#: priority, job class.
#: Adds the message unless the unique key's lock is held (then returns the holder's id) or the
#: id is known; returns the id that runs.
SUBMIT = (
    _NOW
    + _NOTIFY
    + _LEVELS
    + """
local prefix, delay, id, ukey = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[5]
local lock = prefix .. 'unique:' .. ukey
local value = redis.call('GET', lock)
if value then
  local colon = string.find(value, ':', 1, true)
  local holder = string.sub(value, colon + 1)
  if tonumber(string.sub(value, 1, colon - 1)) > now then return holder end
  if redis.call('EXISTS', prefix .. 'job:' .. holder) == 1
     and not redis.call('ZSCORE', KEYS[3], holder) then
    return holder
  end
end
local key = prefix .. 'job:' .. id
if redis.call('EXISTS', key) == 1 then return id end
redis.call('SET', lock, fmt(now + tonumber(ARGV[6])) .. ':' .. id)
redis.call('HSET', key, 'body', ARGV[4], 'attempts', 0, 'enqueued_at', fmt(now),
           'due_at', fmt(now + delay), 'ukey', ukey, 'class', ARGV[8])
redis.call('ZADD', prefix .. 'class:' .. ARGV[8], now + delay, id)
redis.call('SADD', prefix .. 'classes', ARGV[8])
local pending = level_key(prefix, KEYS[1], ARGV[7])
if pending ~= KEYS[1] then
  redis.call('HSET', key, 'prio', ARGV[7])
  redis.call('ZADD', prefix .. 'prios', tonumber(ARGV[7]), ARGV[7])
end
redis.call('ZADD', pending, now + delay, id)
if delay <= 0 then notify(KEYS[2]) end
return id
"""
)

#: KEYS: pending, leased, notify. ARGV: prefix, limit, visibility_timeout_s, token, worker.
#: Takes the due messages of the highest priority first, oldest first within a priority, expired
#: leases included (at their job's priority), and leases them in one step; a full
#: batch passes a wake-up token on (more may be waiting for another idle worker).
#: Returns {expires_at, "<len(id1)>:<id1><attempts1>:<enqueued_at1>:<prio1>:<body1>", ...}: one
#: string per message, because parsing a reply costs the client per element (the id's length
#: comes first, so an id may hold any byte; the body comes last, so it needs no escaping).
LEASE = (
    _NOW
    + _NOTIFY
    + _FINISH
    + _LEAVE_LINE
    + _LEVELS
    + """
local prefix, limit, token = ARGV[1], tonumber(ARGV[2]), ARGV[4]
local expires = now + tonumber(ARGV[3])
local candidates = {}
local sources = levels(prefix, KEYS[1])
sources[#sources + 1] = {KEYS[2], nil}
for _, source in ipairs(sources) do
  local hits = redis.call('ZRANGE', source[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit,
                          'WITHSCORES')
  for i = 1, #hits, 2 do
    local prio = source[2]
    if not prio then
      prio = tonumber(redis.call('HGET', prefix .. 'job:' .. hits[i], 'prio') or '0')
    end
    candidates[#candidates + 1] = {hits[i], tonumber(hits[i + 1]), source[1], prio}
  end
end
table.sort(candidates, function(a, b)
  if a[4] ~= b[4] then return a[4] > b[4] end
  return a[2] < b[2]
end)
local out = {fmt(expires)}
for i = 1, math.min(limit, #candidates) do
  local id, from = candidates[i][1], candidates[i][3]
  local key = prefix .. 'job:' .. id
  redis.call('ZREM', from, id)
  local fields = redis.call('HMGET', key, 'body', 'enqueued_at', 'cancel', 'cancel_ttl_ms',
                            'class')
  if fields[3] then  -- cancelled while leased, and its worker died: it ends here
    leave_line(prefix, key, id)
    finish(prefix, id, fields[3], tonumber(fields[4]))
  elseif fields[1] then
    redis.call('ZADD', KEYS[2], expires, id)
    if fields[5] then redis.call('ZADD', prefix .. 'class:' .. fields[5], 'XX', expires, id) end
    local attempts = redis.call('HINCRBY', key, 'attempts', 1)
    redis.call('HSET', key, 'token', token, 'worker', ARGV[5])
    out[#out + 1] = #id .. ':' .. id .. attempts .. ':' .. fields[2] .. ':' ..
                    candidates[i][4] .. ':' .. fields[1]
  end
end
if #out - 1 >= limit then notify(KEYS[3]) end
return out
"""
)

_HELD = """
local function held(key, token)
  return redis.call('HGET', key, 'token') == token
end
"""

#: KEYS: leased. ARGV: prefix, id1, token1, ttl_ms1, record1, ... Ends held messages, keeping
#: each record ('' none) for its TTL; returns how many were held.
ACK = (
    _NOW
    + _HELD
    + _FINISH
    + """
local prefix, n = ARGV[1], 0
for i = 2, #ARGV, 4 do
  local key = prefix .. 'job:' .. ARGV[i]
  if held(key, ARGV[i + 1]) then
    finish(prefix, ARGV[i], ARGV[i + 3], tonumber(ARGV[i + 2]))
    redis.call('ZREM', KEYS[1], ARGV[i])
    n = n + 1
  end
end
return n
"""
)

#: KEYS: leased. ARGV: prefix, visibility_timeout_s, id1, token1, ...
#: Returns {expires_at, held id, ...}.
EXTEND = (
    _NOW
    + _HELD
    + CLASS_INDEX
    + """
local prefix, expires = ARGV[1], now + tonumber(ARGV[2])
local out = {fmt(expires)}
for i = 3, #ARGV, 2 do
  local key = prefix .. 'job:' .. ARGV[i]
  if held(key, ARGV[i + 1]) then
    redis.call('ZADD', KEYS[1], 'XX', expires, ARGV[i])
    class_move(prefix, key, ARGV[i], expires)
    out[#out + 1] = ARGV[i]
  end
end
return out
"""
)

#: KEYS: pending, leased, notify. ARGV: prefix, delay_s, error ('' keeps it), count_attempt
#: (0/1), id1, token1, ... Makes held messages available after the delay; returns how many.
#: Retry counts the attempt (it already was counted at lease); release gives it back.
REQUEUE = (
    _NOW
    + _HELD
    + _NOTIFY
    + _FINISH
    + _LEVELS
    + """
local prefix, due, err, counted = ARGV[1], now + tonumber(ARGV[2]), ARGV[3], ARGV[4] == '1'
local n = 0
for i = 5, #ARGV, 2 do
  local key = prefix .. 'job:' .. ARGV[i]
  local cancel = counted and held(key, ARGV[i + 1]) and redis.call('HGET', key, 'cancel')
  if cancel then  -- cancelled while it ran: never retried
    redis.call('ZREM', KEYS[2], ARGV[i])
    finish(prefix, ARGV[i], cancel, tonumber(redis.call('HGET', key, 'cancel_ttl_ms')))
    n = n + 1
  elseif held(key, ARGV[i + 1]) then
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('ZADD', pending_of(prefix, KEYS[1], key), due, ARGV[i])
    class_move(prefix, key, ARGV[i], due)
    redis.call('HDEL', key, 'token')
    if err ~= '' then redis.call('HSET', key, 'error', err) end
    if not counted and tonumber(redis.call('HINCRBY', key, 'attempts', -1)) < 0 then
      redis.call('HSET', key, 'attempts', 0)
    end
    n = n + 1
  end
end
if n > 0 and tonumber(ARGV[2]) <= 0 then notify(KEYS[3]) end
return n
"""
)

#: KEYS: leased, dead. ARGV: prefix, id, token, reason. Returns 1 if it was held.
DEAD = (
    _NOW
    + _HELD
    + _FINISH
    + _LEAVE_LINE
    + f"""
local key = ARGV[1] .. 'job:' .. ARGV[2]
if not held(key, ARGV[3]) then return 0 end
leave_line(ARGV[1], key, ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], now, ARGV[2])
release_lock(ARGV[1], key, ARGV[2])
class_drop(ARGV[1], key, ARGV[2])
local done = ARGV[1] .. 'done:' .. ARGV[2]
redis.call('RPUSH', done, '1')
redis.call('PEXPIRE', done, {DONE_MIN_TTL_MS})
redis.call('HDEL', key, 'token', 'ukey')
redis.call('HSET', key, 'error', ARGV[4], 'failed_at', fmt(now))
return 1
"""
)
