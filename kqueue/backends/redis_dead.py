"""The Redis backend's dead letters as an operator sees them: listed newest first, requeued.

A message is dead-lettered by the DEAD script (``RedisBackend.dead``) into ``kqueue:{q}:dead``,
a sorted set scored by when it died, its hash keeping body, attempts and last error. The
DEAD_LETTERS script reads the newest ``limit`` of one queue; REQUEUE_DEAD moves some or all back
to ``pending`` with a wake-up token, attempts reset.
"""

from __future__ import annotations

from collections.abc import Sequence

from kqueue.backends.base import DeadLetter
from kqueue.backends.redis_replies import translated


class RedisDeadLetters:
    """Mixin of ``RedisBackend``: uses its ``_run``, ``_keys``, ``_prefix`` and ``_queues``."""

    @translated
    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        letters = []
        for name in [queue] if queue else self._queues():
            reply = self._run("DEAD_LETTERS", self._keys(name, "dead"), [self._prefix(name), limit])
            for job_id, body, attempts, error, failed_at in zip(*[iter(reply)] * 5, strict=True):
                letters.append(
                    DeadLetter(
                        job_id.decode(),
                        name,
                        body,
                        int(attempts or 0),
                        error.decode(errors="replace"),
                        float(failed_at or 0),
                    )
                )
        letters.sort(key=lambda letter: letter.failed_at, reverse=True)
        return letters[:limit]

    @translated
    def requeue_dead(self, job_ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        if job_ids is not None and not job_ids:
            return 0
        every = "1" if job_ids is None else "0"
        total = 0
        for name in [queue] if queue else self._queues():
            keys = self._keys(name, "pending", "dead", "notify")
            total += int(
                self._run("REQUEUE_DEAD", keys, [self._prefix(name), every, *(job_ids or [])])
            )
        return total
