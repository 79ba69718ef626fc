"""The Redis backend's fleet-wide state beside the queues: worker statuses and the duration
history every worker's estimator shares.

Keys: ``kqueue:workers`` (sorted set of worker ids by expiry), ``kqueue:worker-bodies`` and
``kqueue:worker-published`` (hashes: each worker's status document and when it was published;
the PUBLISH and STATUSES scripts keep the three in step and drop expired workers), and
``kqueue:durations:<class>`` (a capped list per job class, named in ``kqueue:duration-classes``).
The history is advice, so it is written without a transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kqueue.backends.base import WorkerStatus
from kqueue.backends.redis_replies import translated


class RedisFleet:
    """Mixin of ``RedisBackend``: uses its ``client``, ``prefix`` and ``_run``."""

    def _status_keys(self) -> list[str]:
        return [
            f"{self.prefix}:workers",
            f"{self.prefix}:worker-bodies",
            f"{self.prefix}:worker-published",
        ]

    @translated
    def publish_status(self, worker_id: str, body: bytes, ttl_s: float) -> None:
        self._run("PUBLISH", self._status_keys(), [worker_id, body, repr(float(ttl_s))])

    @translated
    def worker_statuses(self) -> list[WorkerStatus]:
        reply = self._run("STATUSES", self._status_keys(), [])
        statuses = [
            WorkerStatus(worker_id.decode(), body, float(published))
            for worker_id, body, published in zip(*[iter(reply)] * 3, strict=True)
        ]
        return sorted(statuses, key=lambda status: status.worker_id)

    @translated
    def remove_status(self, worker_id: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        for key in self._status_keys():
            (pipe.zrem if key.endswith("workers") else pipe.hdel)(key, worker_id)
        pipe.execute()

    @translated
    def record_durations(self, durations: Mapping[str, Sequence[float]], keep: int) -> None:
        if not durations:
            return
        pipe = self.client.pipeline(transaction=False)  # history is advice: no atomicity needed
        pipe.sadd(f"{self.prefix}:duration-classes", *durations)
        for job_class, values in durations.items():
            key = f"{self.prefix}:durations:{job_class}"
            pipe.rpush(key, *(repr(float(v)) for v in values))
            pipe.ltrim(key, -keep, -1)
        pipe.execute()

    @translated
    def load_durations(self, keep: int) -> dict[str, list[float]]:
        classes = sorted(
            c.decode() for c in self.client.smembers(f"{self.prefix}:duration-classes")
        )
        pipe = self.client.pipeline(transaction=False)
        for job_class in classes:
            pipe.lrange(f"{self.prefix}:durations:{job_class}", -keep, -1)
        replies = pipe.execute() if classes else []
        return {c: [float(v) for v in r] for c, r in zip(classes, replies, strict=True) if r}
