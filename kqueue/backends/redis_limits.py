"""``LimitStore`` for Redis: a Lua token bucket and a counted semaphore with leases.

Keys (``kqueue`` is the backend's prefix): ``kqueue:limit:{<key>}:bucket`` a hash (``tokens``,
``updated``; tokens below 0 are reserved turns) that expires once it would be full again
anyway; ``kqueue:limit:{<key>}:tickets`` a sorted set of the job ids holding a reserved turn,
scored by their turn (each call drops the lapsed ones first), with ``...:ticket_prios`` their
priorities (so a higher priority finds the lower ones' turns: ``turn_queue``);
``kqueue:limit:{<key>}:slots`` a sorted set of holders scored by lease expiry (a crashed
worker's slots lapse: each acquire drops the expired ones first);
``kqueue:limit:{<key>}:waiting`` its wait list, a sorted set of holders by
``kqueue.policy.slot_queue.wait_order``, with ``...:waiting_until`` their entries' expiry
(``claim_slot``); ``kqueue:paused`` the set of paused names; ``kqueue:leader`` the
schedules' leader lease (its holder, with a TTL: ``SET NX PX``, renewed only by its holder);
``kqueue:schedules`` a hash of each schedule's state. Each script mirrors
``kqueue.policy.ratelimit`` on the server's clock (workers on several hosts agree on it).
"""

from __future__ import annotations

from collections.abc import Sequence

from kqueue.backends.limits import LimitStore, ScheduleStore
from kqueue.backends.redis_replies import translated
from kqueue.backends.redis_scripts import _NOW
from kqueue.policy.ratelimit import TICKET_EARLY_S, RateLimit, debt_cap

#: KEYS: bucket. ARGV: rate_per_s, capacity, wanted. Returns the tokens granted (``take_tokens``).
TAKE_TOKENS = (
    _NOW
    + """
local rate, capacity, wanted = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local f = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens, updated = tonumber(f[1]), tonumber(f[2])
if not tokens then tokens, updated = capacity, now end
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
updated = math.max(now, updated)
local granted = math.max(0, math.min(wanted, math.floor(tokens + 1e-9)))
redis.call('HSET', KEYS[1], 'tokens', fmt(tokens - granted), 'updated', fmt(updated))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens + granted) / rate * 1000) + 1000)
return granted
"""
)

#: KEYS: bucket, tickets (holder -> turn), ticket_prios (holder -> priority). ARGV: rate_per_s,
#: capacity, debt_cap, holder, grace_s, early_s, priority. Returns the wait in seconds, as a
#: string: "0" to start now (``kqueue.policy.turn_queue.take_turn``; equal turns of lower
#: priorities move in holder order, as there).
RESERVE_TURN = (
    _NOW
    + """
local rate, capacity, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local holder, grace, early, prio = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local gone = redis.call('ZRANGE', KEYS[2], '-inf', now - grace, 'BYSCORE')
for i = 1, #gone, 500 do
  local part = {unpack(gone, i, math.min(i + 499, #gone))}
  redis.call('ZREM', KEYS[2], unpack(part))
  redis.call('ZREM', KEYS[3], unpack(part))
end
local function hold(who, turn, p)
  redis.call('ZADD', KEYS[2], turn, who)
  if p then redis.call('ZADD', KEYS[3], p, who) end
end
local function drop(who)
  redis.call('ZREM', KEYS[2], who)
  redis.call('ZREM', KEYS[3], who)
end
local turn = tonumber(redis.call('ZSCORE', KEYS[2], holder))
if turn then
  if turn > now + early then return fmt(turn - now) end
  drop(holder)
  return '0'
end
local f = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens, updated = tonumber(f[1]), tonumber(f[2])
if not tokens then tokens, updated = capacity, now end
tokens = math.min(capacity, tokens + math.max(0, now - updated) * rate)
updated = math.max(now, updated)
local function take(t)
  redis.call('HSET', KEYS[1], 'tokens', fmt(t - 1), 'updated', fmt(updated))
  redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - t + 1) / rate * 1000) + 1000)
end
if tokens >= 1 - 1e-9 then
  take(tokens)
  return '0'
end
local owed = 1 - tokens
local capped = owed > cap + 1e-9
local new_turn = now + owed / rate
local ttl = math.ceil((owed / rate + grace) * 1000) + 1000
local lower = {}
for _, who in ipairs(redis.call('ZRANGE', KEYS[3], '-inf', '(' .. prio, 'BYSCORE')) do
  local at = tonumber(redis.call('ZSCORE', KEYS[2], who))
  if at then lower[#lower + 1] = {at, who} end
end
table.sort(lower, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
if #lower == 0 then
  if capped then return fmt(math.max(0, -tokens) / rate) end
  hold(holder, new_turn, prio)
  redis.call('PEXPIRE', KEYS[2], ttl)
  redis.call('PEXPIRE', KEYS[3], ttl)
  take(tokens)
  return fmt(owed / rate)
end
for i = 1, #lower - 1 do hold(lower[i][2], lower[i + 1][1]) end
if capped then
  drop(lower[#lower][2])
else
  hold(lower[#lower][2], new_turn)
  take(tokens)
end
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
local mine = lower[1][1]
if mine <= now + early then return '0' end
hold(holder, mine, prio)
return fmt(mine - now)
"""
)

#: KEYS: slots. ARGV: limit, lease_s, holder1, ... Returns the holders granted
#: (``acquire_slots``).
ACQUIRE_SLOTS = (
    _NOW
    + """
local limit, lease = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
local out = {}
for i = 3, #ARGV do
  local holder = ARGV[i]
  local has = redis.call('ZSCORE', KEYS[1], holder)
  if has or n < limit then
    redis.call('ZADD', KEYS[1], now + lease, holder)
    if not has then n = n + 1 end
    out[#out + 1] = holder
  end
end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000) + 1000)
return out
"""
)

#: KEYS: slots, waiting (holder -> ``wait_order``), waiting_until (holder -> entry expiry).
#: ARGV: limit, lease_s, holder, order. Returns 1 when granted (``claim_slot``; equal orders rank
#: by holder, as the sorted set does).
CLAIM_SLOT = (
    _NOW
    + """
local limit, lease, holder, order = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], ARGV[4]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local gone = redis.call('ZRANGE', KEYS[3], '-inf', now, 'BYSCORE')
for i = 1, #gone, 500 do
  local part = {unpack(gone, i, math.min(i + 499, #gone))}
  redis.call('ZREM', KEYS[2], unpack(part))
  redis.call('ZREM', KEYS[3], unpack(part))
end
local ttl = math.ceil(lease * 1000) + 1000
local granted = redis.call('ZSCORE', KEYS[1], holder)
if not granted then
  redis.call('ZADD', KEYS[2], 'NX', order, holder)
  local rank = redis.call('ZRANK', KEYS[2], holder)
  granted = rank < limit - redis.call('ZCARD', KEYS[1])
end
if granted then
  redis.call('ZADD', KEYS[1], now + lease, holder)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('ZREM', KEYS[2], holder)
  redis.call('ZREM', KEYS[3], holder)
  return 1
end
redis.call('ZADD', KEYS[3], now + lease, holder)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return 0
"""
)

#: KEYS: slots. Returns {holder, expires_at, ...} of the live slots.
SLOT_HOLDERS = (
    _NOW
    + """
return redis.call('ZRANGE', KEYS[1], '(' .. fmt(now), '+inf', 'BYSCORE', 'WITHSCORES')
"""
)


#: KEYS: leader. ARGV: me, lease_ms. Takes a free lease (``SET NX PX``) or renews its own;
#: returns 1 if ``me`` leads (``kqueue.policy.leader.apply_step``).
LEAD = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class RedisLimits(LimitStore, ScheduleStore):
    """Limits, pauses and the schedules' leader in Redis (a mixin of ``RedisBackend``)."""

    def _limit_script(self, name: str):
        scripts = self.__dict__.setdefault("_limit_scripts", {})
        if name not in scripts:
            scripts[name] = self.client.register_script(globals()[name])
        return scripts[name]

    def _limit_key(self, key: str, kind: str) -> str:
        # the same layout as ``redis_scripts._LEAVE_LINE`` builds in Lua
        return f"{self.prefix}:limit:{{{key}}}:{kind}"

    @translated
    def take_tokens(self, key: str, limit: RateLimit, wanted: int) -> int:
        script = self._limit_script("TAKE_TOKENS")
        args = [repr(limit.rate_per_s), repr(limit.capacity), int(wanted)]
        return int(script(keys=[self._limit_key(key, "bucket")], args=args))

    @translated
    def reserve_turn(self, key: str, limit: RateLimit, holder: str, priority: int = 0) -> float:
        script = self._limit_script("RESERVE_TURN")
        keys = [self._limit_key(key, kind) for kind in ("bucket", "tickets", "ticket_prios")]
        args = [repr(limit.rate_per_s), repr(limit.capacity), repr(debt_cap(limit)), holder]
        args += [repr(limit.ticket_grace_s), repr(TICKET_EARLY_S), int(priority)]
        return float(script(keys=keys, args=args))

    @translated
    def acquire_slots(
        self, key: str, limit: int, holders: Sequence[str], lease_s: float
    ) -> list[str]:
        script = self._limit_script("ACQUIRE_SLOTS")
        args = [int(limit), repr(float(lease_s)), *holders]
        return [h.decode() for h in script(keys=[self._limit_key(key, "slots")], args=args)]

    @translated
    def claim_slot(self, key: str, limit: int, holder: str, order: float, lease_s: float) -> bool:
        script = self._limit_script("CLAIM_SLOT")
        keys = [self._limit_key(key, kind) for kind in ("slots", "waiting", "waiting_until")]
        args = [int(limit), repr(float(lease_s)), holder, repr(float(order))]
        return bool(script(keys=keys, args=args))

    @translated
    def release_slots(self, key: str, holders: Sequence[str]) -> None:
        if holders:  # gone for good: off the wait list too (``slot_queue.leave_line``)
            pipe = self.client.pipeline()  # MULTI/EXEC: one step
            for kind in ("slots", "waiting", "waiting_until"):
                pipe.zrem(self._limit_key(key, kind), *holders)
            pipe.execute()

    @translated
    def slot_holders(self, key: str) -> dict[str, float]:
        reply = self._limit_script("SLOT_HOLDERS")(keys=[self._limit_key(key, "slots")])
        return {reply[i].decode(): float(reply[i + 1]) for i in range(0, len(reply), 2)}

    @translated
    def set_paused(self, name: str, paused: bool) -> None:
        key = f"{self.prefix}:paused"
        (self.client.sadd if paused else self.client.srem)(key, name)

    @translated
    def paused(self) -> set[str]:
        return {name.decode() for name in self.client.smembers(f"{self.prefix}:paused")}

    @translated
    def lead(self, me: str, lease_s: float) -> bool:
        script = self._limit_script("LEAD")
        lease_ms = max(1, round(lease_s * 1000))
        return bool(script(keys=[f"{self.prefix}:leader"], args=[me, lease_ms]))

    @translated
    def leader(self) -> tuple[str, float] | None:
        key = f"{self.prefix}:leader"
        pipe = self.client.pipeline()
        pipe.get(key).pttl(key).time()
        holder, ttl_ms, (seconds, micros) = pipe.execute()
        if holder is None or ttl_ms < 0:
            return None
        return holder.decode(), seconds + micros / 1e6 + ttl_ms / 1000

    @translated
    def schedule_states(self) -> dict[str, bytes]:
        return {k.decode(): v for k, v in self.client.hgetall(f"{self.prefix}:schedules").items()}

    @translated
    def save_schedule_state(self, name: str, body: bytes) -> None:
        self.client.hset(f"{self.prefix}:schedules", name, body)
