"""The Redis backend's fleet trace (a capped stream) and the deletion of dead letters.

The trace is one stream, ``<prefix>:trace``: each finished attempt is an entry with one field
(``r``: the row's wire bytes), added with ``XADD ... MAXLEN ~ keep_rows`` so Redis trims it in
whole blocks as it grows (the cap is approximate by design: exact trimming costs a rewrite of a
block on every add). A script loops over a batch, so the worker packs one command per 500 rows
instead of one per row (7 us a row in redis-py). Entry ids are the server's milliseconds, so
``read_trace(since=)`` is an ``XRANGE`` from that time. Mixed into ``RedisBackend``.
"""

from __future__ import annotations

from collections.abc import Sequence

from kqueue.backends.base import TraceBatch
from kqueue.backends.redis_replies import translated

#: KEYS: trace. ARGV: keep_rows, row1, row2, ... Appends each row as an entry, trimmed ~keep_rows.
APPEND_TRACE = """
for i = 2, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'r', ARGV[i])
end
return #ARGV - 1
"""
#: Most rows per script call (bounds the time one call blocks Redis: about 1 ms).
APPEND_CHUNK = 500

#: KEYS: dead. ARGV: prefix, id1, id2, ... Removes dead messages (and their hashes); how many.
DELETE_DEAD = """
local n = 0
for i = 2, #ARGV do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 then
    redis.call('DEL', ARGV[1] .. 'job:' .. ARGV[i])
    n = n + 1
  end
end
return n
"""


class RedisTrace:
    """``append_trace``, ``read_trace`` and ``delete_dead`` (needs ``client``, ``_keys``)."""

    def _trace_script(self, source: str):
        """The registered script of ``source`` (registered once per backend object)."""
        scripts = self.__dict__.setdefault("_trace_scripts", {})
        if source not in scripts:
            scripts[source] = self.client.register_script(source)
        return scripts[source]

    def _trace_key(self) -> str:
        return f"{self.prefix}:trace"

    @translated
    def append_trace(self, rows: Sequence[bytes], keep_rows: int) -> None:
        if not rows or keep_rows <= 0:
            return
        script = self._trace_script(APPEND_TRACE)
        keys = [self._trace_key()]
        for start in range(0, len(rows), APPEND_CHUNK):
            script(keys=keys, args=[keep_rows, *rows[start : start + APPEND_CHUNK]])

    @translated
    def read_trace(self, after: str = "", since: float = 0.0, limit: int = 10_000) -> TraceBatch:
        start = f"({after}" if after else str(max(0, int(since * 1000)))
        entries = self.client.xrange(self._trace_key(), min=start, max="+", count=limit)
        if not entries:
            return TraceBatch([], after)
        rows = [fields.get(b"r", b"") for _, fields in entries]
        return TraceBatch(rows, entries[-1][0].decode())

    @translated
    def delete_dead(self, job_ids: Sequence[str], queue: str | None = None) -> int:
        if not job_ids:
            return 0
        script = self._trace_script(DELETE_DEAD)
        total = 0
        for name in [queue] if queue else self._queues():
            keys = self._keys(name, "dead")
            total += int(script(keys=keys, args=[self._prefix(name), *job_ids]))
        return total
