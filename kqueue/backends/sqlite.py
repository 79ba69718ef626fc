"""The embedded SQLite backend: one file, zero set-up, safe with several worker processes.

One table holds every message. ``available_at`` means "may be leased from then on": for a ready
or scheduled message it is when it becomes due, for a leased one it is when its lease expires. So
a single ``UPDATE ... RETURNING`` statement leases the oldest due messages, expired leases
included, atomically under SQLite's write lock: two workers can never hold one live lease.
The file is in WAL mode so readers do not block the writer.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kqueue.backends.base import Backend, DeadLetter, Lease, State, WorkerStatus
from kqueue.errors import BackendError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    body BLOB NOT NULL,
    state TEXT NOT NULL,                -- 'ready' | 'leased' | 'dead'
    available_at REAL NOT NULL,         -- due time, or lease expiry when leased
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at REAL NOT NULL,
    token TEXT,
    worker TEXT,
    error TEXT,
    failed_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs (queue, available_at) WHERE state != 'dead';
CREATE INDEX IF NOT EXISTS jobs_dead ON jobs (failed_at) WHERE state = 'dead';
CREATE TABLE IF NOT EXISTS durations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_class TEXT NOT NULL,
    duration_s REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS durations_class ON durations (job_class, seq);
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    published_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
"""

_LEASE = """
UPDATE jobs SET state = 'leased', available_at = :expires_at, attempts = attempts + 1,
                token = :token, worker = :worker
WHERE id IN (SELECT id FROM jobs WHERE queue = :queue AND state != 'dead' AND available_at <= :now
             ORDER BY available_at LIMIT :limit)
RETURNING id, body, attempts, enqueued_at
"""

_HELD = "id = ? AND token = ? AND state = 'leased'"


class SQLiteBackend(Backend):
    """A backend in one SQLite file; each thread gets its own connection."""

    schemes = ("sqlite",)

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0):
        """Args: path: the database file (created with its folder); busy_timeout_s: lock wait."""
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db.executescript(_SCHEMA)

    @classmethod
    def from_url(cls, url: str) -> SQLiteBackend:
        """``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``."""
        parts = urlsplit(url)
        path = unquote(parts.netloc + parts.path)
        if path.startswith("/") and not parts.netloc:
            path = path[1:]  # sqlite:///rel.db -> rel.db, sqlite:////abs.db -> /abs.db
        if not path:
            raise BackendError(f"sqlite URL {url!r} names no file; use sqlite:///path/kqueue.db")
        return cls(path)

    @property
    def _db(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def enqueue(self, queue: str, job_id: str, body: bytes, *, delay_s: float = 0.0) -> None:
        now = time.time()
        self._db.execute(
            "INSERT OR IGNORE INTO jobs (id, queue, body, state, available_at, enqueued_at) "
            "VALUES (?, ?, ?, 'ready', ?, ?)",
            (job_id, queue, body, now + delay_s, now),
        )

    def enqueue_many(self, queue: str, messages: Sequence[tuple[str, bytes]]) -> None:
        now = time.time()
        rows = [(job_id, queue, body, now, now) for job_id, body in messages]
        with self._transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO jobs (id, queue, body, state, available_at, enqueued_at) "
                "VALUES (?, ?, ?, 'ready', ?, ?)",
                rows,
            )

    def lease(
        self, queue: str, worker_id: str, limit: int, visibility_timeout_s: float
    ) -> list[Lease]:
        now = time.time()
        token = uuid.uuid4().hex
        expires_at = now + visibility_timeout_s
        params = {
            "queue": queue,
            "now": now,
            "limit": limit,
            "expires_at": expires_at,
            "token": token,
            "worker": worker_id,
        }
        with self._transaction() as db:
            rows = db.execute(_LEASE, params).fetchall()
        leases = [
            Lease(job_id, queue, body, attempts, enqueued_at, token, expires_at)
            for job_id, body, attempts, enqueued_at in rows
        ]
        leases.sort(key=lambda lease: lease.enqueued_at)
        return leases

    def ack(self, leases: Sequence[Lease]) -> int:
        with self._transaction() as db:
            return sum(
                db.execute(f"DELETE FROM jobs WHERE {_HELD}", (x.job_id, x.token)).rowcount
                for x in leases
            )

    def extend(self, leases: Sequence[Lease], visibility_timeout_s: float) -> list[Lease]:
        expires_at = time.time() + visibility_timeout_s
        held = []
        with self._transaction() as db:
            for lease in leases:
                cursor = db.execute(
                    f"UPDATE jobs SET available_at = ? WHERE {_HELD}",
                    (expires_at, lease.job_id, lease.token),
                )
                if cursor.rowcount:
                    held.append(lease.with_expiry(expires_at))
        return held

    def retry(self, lease: Lease, delay_s: float, error: str) -> bool:
        cursor = self._db.execute(
            "UPDATE jobs SET state = 'ready', available_at = ?, token = NULL, worker = NULL, "
            f"error = ? WHERE {_HELD}",
            (time.time() + delay_s, error, lease.job_id, lease.token),
        )
        return cursor.rowcount == 1

    def release(self, leases: Sequence[Lease], delay_s: float = 0.0) -> int:
        available_at = time.time() + delay_s
        with self._transaction() as db:
            return sum(
                db.execute(
                    "UPDATE jobs SET state = 'ready', available_at = ?, token = NULL, "
                    f"worker = NULL, attempts = MAX(attempts - 1, 0) WHERE {_HELD}",
                    (available_at, lease.job_id, lease.token),
                ).rowcount
                for lease in leases
            )

    def dead(self, lease: Lease, reason: str) -> bool:
        cursor = self._db.execute(
            "UPDATE jobs SET state = 'dead', error = ?, failed_at = ?, token = NULL, worker = NULL "
            f"WHERE {_HELD}",
            (reason, time.time(), lease.job_id, lease.token),
        )
        return cursor.rowcount == 1

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

    def counts(self, queue: str | None = None) -> dict[str, dict[str, int]]:
        where, params = ("WHERE queue = ?", (queue,)) if queue else ("", ())
        rows = self._db.execute(
            "SELECT queue, CASE "
            "  WHEN state = 'dead' THEN 'dead' "
            "  WHEN state = 'leased' AND available_at > :now THEN 'leased' "
            "  WHEN available_at > :now THEN 'scheduled' ELSE 'ready' END AS s, COUNT(*) "
            f"FROM jobs {where.replace('?', ':queue')} GROUP BY queue, s",
            {"now": time.time(), "queue": params[0] if params else None},
        ).fetchall()
        result: dict[str, dict[str, int]] = {}
        for name, state, count in rows:
            result.setdefault(name, {s.value: 0 for s in State})[state] = count
        return result

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

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on one connection."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.connection.execute("ROLLBACK" if exc_type else "COMMIT")
