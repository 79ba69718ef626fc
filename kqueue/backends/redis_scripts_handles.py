"""Lua scripts of the Redis backend behind ``JobHandle``: one job looked up by id, cancelled,
and the cancels asked while jobs ran. Keys as in ``redis_scripts``.
"""

from __future__ import annotations

from kqueue.backends.redis_scripts import _FINISH, _LEAVE_LINE, _LEVELS, _NOW

#: KEYS: pending, leased, dead. ARGV: prefix, id. Returns {state, attempts, enqueued_at, due_at,
#: available_at, worker, error, failed_at, record, body}; state is a ``JobState`` value, or
#: ``finished`` when only the record is left (its document says how it ended).
LOOKUP = (
    _NOW
    + _LEVELS
    + """
local prefix, id = ARGV[1], ARGV[2]
local key = prefix .. 'job:' .. id
local f = redis.call('HMGET', key, 'attempts', 'enqueued_at', 'due_at', 'worker', 'error',
                     'failed_at', 'body')
local function reply(state, at, record)
  return {state, f[1] or '0', f[2] or '', f[3] or '', at or '', f[4] or '', f[5] or '',
          f[6] or '', record or '', f[7] or ''}
end
if f[7] then
  local score = redis.call('ZSCORE', pending_of(prefix, KEYS[1], key), id)
  if score then return reply('waiting', score) end
  score = redis.call('ZSCORE', KEYS[2], id)
  if score and tonumber(score) > now then return reply('running', score) end
  if score then return reply('queued', score) end
  if redis.call('ZSCORE', KEYS[3], id) then return reply('dead', f[6]) end
end
local record = redis.call('GET', prefix .. 'result:' .. id)
if record then return reply('finished', '', record) end
return reply('unknown')
"""
)

#: KEYS: pending, leased, dead. ARGV: prefix, id, record, ttl_ms. Returns the state before:
#: ``waiting`` (removed, kept as cancelled), ``running`` (flagged), or what LOOKUP would say.
CANCEL = (
    _NOW
    + _FINISH
    + _LEAVE_LINE
    + _LEVELS
    + """
local prefix, id = ARGV[1], ARGV[2]
local key = prefix .. 'job:' .. id
if redis.call('EXISTS', key) == 0 then
  if redis.call('EXISTS', prefix .. 'result:' .. id) == 1 then return 'finished' end
  return 'unknown'
end
if redis.call('ZSCORE', KEYS[3], id) then return 'dead' end
local leased = redis.call('ZSCORE', KEYS[2], id)
if leased and tonumber(leased) > now then
  redis.call('HSET', key, 'cancel', ARGV[3], 'cancel_ttl_ms', ARGV[4])
  return 'running'
end
local state = 'queued'
local pending = pending_of(prefix, KEYS[1], key)
local due = redis.call('ZSCORE', pending, id)
if due and tonumber(due) > now then
  local f = redis.call('HMGET', key, 'error', 'due_at')
  if f[1] then state = 'retrying' elseif tonumber(f[2] or '0') > now then state = 'scheduled' end
end
redis.call('ZREM', pending, id)
redis.call('ZREM', KEYS[2], id)
leave_line(prefix, key, id)
finish(prefix, id, ARGV[3], tonumber(ARGV[4]))
return state
"""
)

#: KEYS: none. ARGV: prefix, id1, id2, ... Returns the ids whose cancel was asked while leased.
CANCEL_REQUESTED = """
local out = {}
for i = 2, #ARGV do
  if redis.call('HEXISTS', ARGV[1] .. 'job:' .. ARGV[i], 'cancel') == 1 then
    out[#out + 1] = ARGV[i]
  end
end
return out
"""
