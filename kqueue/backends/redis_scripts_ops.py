"""Lua scripts of the Redis backend that operators and the fleet use: dead letters listed and
requeued, counts per state, worker statuses published and read. Keys as in ``redis_scripts``.
"""

from __future__ import annotations

from kqueue.backends.redis_classes import CLASS_INDEX
from kqueue.backends.redis_scripts import _LEVELS, _NOTIFY, _NOW

#: KEYS: pending, dead, notify. ARGV: prefix, all ('1' or '0'), id1, id2, ...
#: Makes dead messages ready with a fresh attempt count; returns how many.
REQUEUE_DEAD = (
    _NOW
    + _NOTIFY
    + _LEVELS
    + CLASS_INDEX
    + """
local prefix, ids = ARGV[1], {}
if ARGV[2] == '1' then
  ids = redis.call('ZRANGE', KEYS[2], 0, -1)
else
  for i = 3, #ARGV do ids[#ids + 1] = ARGV[i] end
end
local n = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', KEYS[2], id) == 1 then
    local key = prefix .. 'job:' .. id
    redis.call('HSET', key, 'attempts', 0)
    redis.call('HDEL', key, 'error', 'failed_at')
    redis.call('ZADD', pending_of(prefix, KEYS[1], key), now, id)
    class_add(prefix, key, id, now)
    n = n + 1
  end
end
if n > 0 then notify(KEYS[3]) end
return n
"""
)

#: KEYS: dead. ARGV: prefix, limit. Returns {id, body, attempts, error, failed_at, ...} newest
#: first.
DEAD_LETTERS = """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[2]) - 1, 'REV')) do
  local f = redis.call('HMGET', ARGV[1] .. 'job:' .. id, 'body', 'attempts', 'error', 'failed_at')
  out[#out + 1] = id
  for j = 1, 4 do out[#out + 1] = f[j] or '' end
end
return out
"""

#: KEYS: pending, leased, dead. ARGV: prefix. Returns {ready, scheduled, leased, dead} (an
#: expired lease is ready again), every priority level counted.
COUNTS = (
    _NOW
    + _LEVELS
    + """
local due, later = 0, 0
for _, level in ipairs(levels(ARGV[1], KEYS[1])) do
  due = due + redis.call('ZCOUNT', level[1], '-inf', now)
  later = later + redis.call('ZCOUNT', level[1], '(' .. fmt(now), '+inf')
end
local lapsed = redis.call('ZCOUNT', KEYS[2], '-inf', now)
local live = redis.call('ZCOUNT', KEYS[2], '(' .. fmt(now), '+inf')
return {due + lapsed, later, live, redis.call('ZCARD', KEYS[3])}
"""
)

#: KEYS: workers (expiry), bodies, published. ARGV: worker id, body, ttl_s.
#: Also forgets workers whose status expired.
PUBLISH = (
    _NOW
    + """
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE')) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('HDEL', KEYS[3], id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[1], fmt(now))
return 1
"""
)

#: KEYS: workers, bodies, published. Returns {id, body, published_at, ...} of live workers.
STATUSES = (
    _NOW
    + """
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '(' .. fmt(now), '+inf', 'BYSCORE')) do
  out[#out + 1] = id
  out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
  out[#out + 1] = redis.call('HGET', KEYS[3], id) or '0'
end
return out
"""
)
