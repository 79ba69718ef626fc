"""The SQLite backend's fleet-wide state beside the jobs: worker statuses, the shared duration
history, and the dead letters as an operator lists and requeues them.

Tables (``sqlite_schema``): ``workers`` (one row per worker: its status document, when it was
published and when it expires), ``durations`` (a row per shared duration, trimmed to the
newest ``keep`` per class), and the dead rows of ``jobs``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from kqueue.backends.base import DeadLetter, WorkerStatus


class SQLiteFleet:
    """Mixin of ``SQLiteBackend``: uses its ``_db`` and ``_transaction``."""

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        where, params = ("AND queue = ?", (queue,)) if queue else ("", ())
        rows = self._db.execute(
            f"SELECT id, queue, body, attempts, error, failed_at FROM jobs "
            f"WHERE state = 'dead' {where} ORDER BY failed_at DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [DeadLetter(*row) for row in rows]

    def requeue_dead(self, job_ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        clauses, params = ["state = 'dead'"], [time.time()]
        if queue is not None:
            clauses.append("queue = ?")
            params.append(queue)
        if job_ids is not None:
            clauses.append(f"id IN ({', '.join('?' * len(job_ids))})" if job_ids else "0")
            params.extend(job_ids)
        cursor = self._db.execute(
            "UPDATE jobs SET state = 'ready', available_at = ?, attempts = 0, error = NULL, "
            f"failed_at = NULL WHERE {' AND '.join(clauses)}",
            params,
        )
        return cursor.rowcount

    def publish_status(self, worker_id: str, body: bytes, ttl_s: float) -> None:
        now = time.time()
        self._db.execute(
            "INSERT OR REPLACE INTO workers (id, body, published_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            (worker_id, body, now, now + ttl_s),
        )

    def worker_statuses(self) -> list[WorkerStatus]:
        rows = self._db.execute(
            "SELECT id, body, published_at FROM workers WHERE expires_at > ? ORDER BY id",
            (time.time(),),
        ).fetchall()
        return [WorkerStatus(*row) for row in rows]

    def remove_status(self, worker_id: str) -> None:
        self._db.execute("DELETE FROM workers WHERE id = ?", (worker_id,))

    def record_durations(self, durations: Mapping[str, Sequence[float]], keep: int) -> None:
        with self._transaction() as db:
            for job_class, values in durations.items():
                db.executemany(
                    "INSERT INTO durations (job_class, duration_s) VALUES (?, ?)",
                    [(job_class, float(v)) for v in values],
                )
                db.execute(
                    "DELETE FROM durations WHERE job_class = ? AND seq <= (SELECT seq FROM "
                    "durations WHERE job_class = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (job_class, job_class, keep),
                )

    def load_durations(self, keep: int) -> dict[str, list[float]]:
        rows = self._db.execute(
            "SELECT job_class, duration_s FROM (SELECT job_class, duration_s, seq, ROW_NUMBER() "
            "OVER (PARTITION BY job_class ORDER BY seq DESC) AS n FROM durations) "
            "WHERE n <= ? ORDER BY job_class, seq",
            (keep,),
        ).fetchall()
        history: dict[str, list[float]] = {}
        for job_class, duration_s in rows:
            history.setdefault(job_class, []).append(duration_s)
        return history
