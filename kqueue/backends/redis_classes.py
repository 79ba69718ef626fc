"""The Redis backend's per-class index of pending messages, for ``pending_by_class``.

Keys (same hash tag as the queue's others, ``redis_scripts``):

- ``kqueue:{q}:class:<name>`` sorted set: the id of every live message of job class ``name``
  (waiting or leased; not dead), scored by when it may be leased, the same score as in the
  ``pending`` or ``leased`` set it is in (due time, or lease expiry while leased);
- ``kqueue:{q}:classes`` set of the class names that have such a sorted set.

Every script that moves a message keeps its entry in the same step (``CLASS_INDEX``'s helpers),
so the index is exactly as atomic as the queue. Pending now is then one ``ZCOUNT -inf now`` per
class: O(classes x log n), no scan, and a lease that expired counts as pending the moment it
expires, as it does for ``lease``. A message enqueued before the index existed (no ``class``
field in its hash) is left out of it.
"""

from __future__ import annotations

from kqueue.backends.redis_replies import translated

#: Lua helpers (need ``prefix``, a job's hash ``key`` and its ``id``). ``class_add``: the message
#: enters the index (dead-letter requeue); ``class_move``: it may be leased from ``score`` on
#: (lease, retry, release, extend); ``class_drop``: it left (finished, dead).
CLASS_INDEX = """
local function class_add(prefix, key, id, score)
  local c = redis.call('HGET', key, 'class')
  if not c then return end
  redis.call('ZADD', prefix .. 'class:' .. c, score, id)
  redis.call('SADD', prefix .. 'classes', c)
end
local function class_move(prefix, key, id, score)
  local c = redis.call('HGET', key, 'class')
  if c then redis.call('ZADD', prefix .. 'class:' .. c, 'XX', score, id) end
end
local function class_drop(prefix, key, id)
  local c = redis.call('HGET', key, 'class')
  if not c then return end
  local index = prefix .. 'class:' .. c
  redis.call('ZREM', index, id)
  if redis.call('ZCARD', index) == 0 then redis.call('SREM', prefix .. 'classes', c) end
end
"""

#: KEYS: classes. ARGV: prefix. Returns {class1, count1, ...} of the classes with pending
#: messages (due now, or leased with an expired lease).
PENDING_BY_CLASS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local out = {}
for _, c in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('ZCOUNT', ARGV[1] .. 'class:' .. c, '-inf', now)
  if n > 0 then
    out[#out + 1] = c
    out[#out + 1] = n
  end
end
return out
"""


class RedisClasses:
    """``pending_by_class`` of ``RedisBackend`` (needs its ``client``, ``_keys``, ``_prefix``)."""

    @translated
    def pending_by_class(self, queue: str) -> dict[str, int]:
        scripts = self.__dict__.setdefault("_class_scripts", {})
        script = scripts.get("pending")
        if script is None:
            script = scripts["pending"] = self.client.register_script(PENDING_BY_CLASS)
        reply = script(keys=self._keys(queue, "classes"), args=[self._prefix(queue)])
        return {reply[i].decode(): int(reply[i + 1]) for i in range(0, len(reply), 2)}
