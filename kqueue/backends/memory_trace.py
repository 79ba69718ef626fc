"""The in-process backend's fleet trace (a bounded deque) and the deletion of dead letters.

Mixed into ``MemoryBackend`` (its ``_changed`` lock and ``_messages``).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence

from kqueue.backends.base import TraceBatch


class MemoryTrace:
    """``append_trace``, ``read_trace`` and ``delete_dead`` in this process's memory."""

    #: (seq, appended_at, row), oldest first; made on first append.
    _trace_rows: collections.deque | None = None
    _trace_seq = 0

    def append_trace(self, rows: Sequence[bytes], keep_rows: int) -> None:
        if not rows or keep_rows <= 0:
            return
        now = time.time()
        with self._changed:
            kept = self._trace_rows
            if kept is None or kept.maxlen != keep_rows:
                kept = self._trace_rows = collections.deque(kept or (), maxlen=keep_rows)
            for row in rows:
                self._trace_seq += 1
                kept.append((self._trace_seq, now, bytes(row)))

    def read_trace(self, after: str = "", since: float = 0.0, limit: int = 10_000) -> TraceBatch:
        with self._changed:
            kept = list(self._trace_rows or ())
        if after:
            found = [entry for entry in kept if entry[0] > int(after)][:limit]
        else:
            found = [entry for entry in kept if entry[1] >= since][:limit]
        if not found:
            return TraceBatch([], after)
        return TraceBatch([row for _, _, row in found], str(found[-1][0]))

    def delete_dead(self, job_ids: Sequence[str], queue: str | None = None) -> int:
        gone = 0
        with self._changed:
            for job_id in job_ids:
                message = self._messages.get(job_id)
                if message is None or message.dead_at is None:
                    continue
                if queue in (None, message.queue):
                    del self._messages[job_id]
                    gone += 1
        return gone
