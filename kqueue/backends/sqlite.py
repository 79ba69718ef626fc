"""The embedded SQLite backend: one file, zero set-up, safe with several worker processes.

One table holds every message. ``available_at`` means "may be leased from then on": for a ready
or scheduled message it is when it becomes due, for a leased one it is when its lease expires. So
a single ``UPDATE ... RETURNING`` statement leases the oldest due messages, expired leases
included, atomically under SQLite's write lock: two workers can never hold one live lease.
The file is in WAL mode so readers do not block the writer.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from kqueue.backends.base import (
    Backend,
    JobRecord,
    Lease,
    Records,
    State,
    unknown,
)
from kqueue.backends.sqlite_classes import create_class_counts, pending_by_class
from kqueue.backends.sqlite_fleet import SQLiteFleet
from kqueue.backends.sqlite_limits import SQLiteLimits, create_limit_tables
from kqueue.backends.sqlite_schema import (
    ADDED_COLUMNS,
    HELD,
    INSERT,
    LEASE,
    LEASE_LEVEL,
    LOOKUP,
    PRIORITY_SCHEMA,
    PURGE_INTERVAL_S,
    SCHEMA,
    Transaction,
    job_record,
)
from kqueue.backends.sqlite_trace import SQLiteTrace
from kqueue.errors import BackendError
from kqueue.policy.status import JobState


class SQLiteBackend(SQLiteTrace, SQLiteLimits, SQLiteFleet, Backend):
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
        self._db.executescript(SCHEMA)
        self._add_columns()
        self._db.executescript(PRIORITY_SCHEMA)
        create_limit_tables(self._db)  # a job ended for good leaves its wait list
        self._limits_ready = True
        create_class_counts(self._db)
        self._last_purge = 0.0

    def _add_columns(self) -> None:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, declaration in ADDED_COLUMNS:
            if name not in have:
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")

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

    def enqueue(
        self,
        queue: str,
        job_id: str,
        body: bytes,
        *,
        delay_s: float = 0.0,
        priority: int = 0,
        job_class: str = "",
    ) -> None:
        self.submit(queue, job_id, body, delay_s=delay_s, priority=priority, job_class=job_class)

    def enqueue_many(
        self,
        queue: str,
        messages: Sequence[tuple[str, bytes]],
        *,
        priority: int = 0,
        job_class: str = "",
    ) -> None:
        now = time.time()
        rows = [(job_id, queue, body, now, now, now, job_class) for job_id, body in messages]
        with self._transaction() as db:
            db.executemany(INSERT, rows)
            if priority:
                self._set_priority(db, queue, [job_id for job_id, _ in messages], priority)

    @staticmethod
    def _set_priority(db: sqlite3.Connection, queue: str, ids: list[str], priority: int) -> None:
        """Give new rows their priority and list the level (``PRIORITY_SCHEMA``)."""
        db.execute(
            "INSERT OR IGNORE INTO priorities (queue, priority) VALUES (?, ?)", (queue, priority)
        )
        db.executemany(
            "UPDATE jobs SET priority = ? WHERE id = ? AND attempts = 0 AND state = 'ready'",
            [(priority, job_id) for job_id in ids],
        )

    def submit(
        self,
        queue: str,
        job_id: str,
        body: bytes,
        *,
        delay_s: float = 0.0,
        unique_key: str | None = None,
        unique_for_s: float = 0.0,
        priority: int = 0,
        job_class: str = "",
    ) -> str:
        now = time.time()
        due = now + max(0.0, delay_s)
        with self._transaction() as db:
            if unique_key is not None:
                holder = self._lock_holder(db, queue, unique_key, now)
                if holder is not None:
                    return holder
                db.execute(
                    "INSERT OR REPLACE INTO locks (queue, key, job_id, until) VALUES (?, ?, ?, ?)",
                    (queue, unique_key, job_id, now + unique_for_s),
                )
            added = db.execute(INSERT, (job_id, queue, body, due, now, due, job_class)).rowcount
            if priority and added:
                self._set_priority(db, queue, [job_id], priority)
            if unique_key is not None:
                db.execute("UPDATE jobs SET unique_key = ? WHERE id = ?", (unique_key, job_id))
        return job_id

    @staticmethod
    def _lock_holder(db: sqlite3.Connection, queue: str, key: str, now: float) -> str | None:
        """The job holding ``key``'s lock now, or None (its job ended and its time passed)."""
        row = db.execute(
            "SELECT job_id, until FROM locks WHERE queue = ? AND key = ?", (queue, key)
        ).fetchone()
        if row is None:
            return None
        holder, until = row
        if until > now:
            return holder
        waiting = db.execute(
            "SELECT 1 FROM jobs WHERE id = ? AND state != 'dead'", (holder,)
        ).fetchone()
        return holder if waiting else None

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
            self._purge(db, now)
            rows = self._lease_rows(db, params)
            leases = []
            for job_id, body, attempts, enqueued_at, cancel_record, cancel_ttl_s, prio in rows:
                lease = Lease(job_id, queue, body, attempts, enqueued_at, token, expires_at, prio)
                if cancel_record is None:
                    leases.append(lease)
                else:  # cancelled while leased, and its worker died: it ends here
                    self._leave_line(db, job_id)
                    self._finish(db, lease, now, {job_id: (cancel_record, cancel_ttl_s)})
        leases.sort(key=lambda lease: (-lease.priority, lease.enqueued_at))
        return leases

    @staticmethod
    def _lease_rows(db: sqlite3.Connection, params: dict) -> list[tuple]:
        """Lease by ``LEASE`` when the queue has only priority 0, else level by level, highest
        first: each level is one index range in due order (``PRIORITY_SCHEMA``)."""
        levels = [
            row[0]
            for row in db.execute(
                "SELECT priority FROM priorities WHERE queue = ? ORDER BY priority DESC",
                (params["queue"],),
            )
        ]
        if not levels:
            return db.execute(LEASE, params).fetchall()
        rows: list[tuple] = []
        for priority in sorted({*levels, 0}, reverse=True):
            wanted = params["limit"] - len(rows)
            if wanted <= 0:
                break
            level = {**params, "priority": priority, "limit": wanted}
            rows.extend(db.execute(LEASE_LEVEL, level).fetchall())
        return rows

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        """Delete expired results and released locks (at most every ``PURGE_INTERVAL_S``)."""
        if now - self._last_purge < PURGE_INTERVAL_S:
            return
        self._last_purge = now
        db.execute("DELETE FROM results WHERE expires_at <= ?", (now,))
        db.execute(
            "DELETE FROM locks WHERE until <= ? AND job_id NOT IN (SELECT id FROM jobs)", (now,)
        )

    def _finish(
        self, db: sqlite3.Connection, lease: Lease, now: float, records: Records | None
    ) -> None:
        """Delete a held message, keep its record, release its lock once its time passed."""
        row = db.execute("SELECT unique_key FROM jobs WHERE id = ?", (lease.job_id,)).fetchone()
        db.execute("DELETE FROM jobs WHERE id = ?", (lease.job_id,))
        self._keep_record(db, lease.job_id, lease.queue, now, records)
        if row is not None and row[0] is not None:
            self._release_lock(db, lease.queue, row[0], lease.job_id, now)

    @staticmethod
    def _keep_record(
        db: sqlite3.Connection, job_id: str, queue: str, now: float, records: Records | None
    ) -> None:
        record = (records or {}).get(job_id)
        if record is not None and record[1] > 0:
            db.execute(
                "INSERT OR REPLACE INTO results (id, queue, record, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (job_id, queue, record[0], now + record[1]),
            )

    @staticmethod
    def _release_lock(db: sqlite3.Connection, queue: str, key: str, job_id: str, now: float):
        db.execute(
            "DELETE FROM locks WHERE queue = ? AND key = ? AND job_id = ? AND until <= ?",
            (queue, key, job_id, now),
        )

    def ack(self, leases: Sequence[Lease], records: Records | None = None) -> int:
        now, held = time.time(), 0
        with self._transaction() as db:
            for lease in leases:
                if db.execute(
                    f"SELECT 1 FROM jobs WHERE {HELD}", (lease.job_id, lease.token)
                ).fetchone():
                    self._finish(db, lease, now, records)
                    held += 1
        return held

    def extend(self, leases: Sequence[Lease], visibility_timeout_s: float) -> list[Lease]:
        expires_at = time.time() + visibility_timeout_s
        held = []
        with self._transaction() as db:
            for lease in leases:
                cursor = db.execute(
                    f"UPDATE jobs SET available_at = ? WHERE {HELD}",
                    (expires_at, lease.job_id, lease.token),
                )
                if cursor.rowcount:
                    held.append(lease.with_expiry(expires_at))
        return held

    def retry(self, lease: Lease, delay_s: float, error: str) -> bool:
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                f"SELECT cancel_record, cancel_ttl_s FROM jobs WHERE {HELD}",
                (lease.job_id, lease.token),
            ).fetchone()
            if row is None:
                return False
            if row[0] is not None:  # cancelled while it ran: never retried
                self._finish(db, lease, now, {lease.job_id: (row[0], row[1])})
                return True
            db.execute(
                "UPDATE jobs SET state = 'ready', available_at = ?, token = NULL, worker = NULL, "
                f"error = ? WHERE {HELD}",
                (now + delay_s, error, lease.job_id, lease.token),
            )
        return True

    def release(self, leases: Sequence[Lease], delay_s: float = 0.0) -> int:
        available_at = time.time() + delay_s
        with self._transaction() as db:
            return sum(
                db.execute(
                    "UPDATE jobs SET state = 'ready', available_at = ?, token = NULL, "
                    f"worker = NULL, attempts = MAX(attempts - 1, 0) WHERE {HELD}",
                    (available_at, lease.job_id, lease.token),
                ).rowcount
                for lease in leases
            )

    def dead(self, lease: Lease, reason: str) -> bool:
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                f"UPDATE jobs SET state = 'dead', error = ?, failed_at = ?, token = NULL, "
                f"worker = NULL WHERE {HELD} RETURNING unique_key",
                (reason, now, lease.job_id, lease.token),
            ).fetchone()
            if row is not None:
                self._leave_line(db, lease.job_id)
            if row is not None and row[0] is not None:
                self._release_lock(db, lease.queue, row[0], lease.job_id, now)
        return row is not None

    def lookup(self, job_id: str, queue: str | None = None) -> JobRecord:
        now = time.time()
        row = self._db.execute(LOOKUP, (job_id,)).fetchone()
        if row is not None and (queue is None or row[1] == queue):
            return job_record(row, now)
        found = self._db.execute(
            "SELECT queue, record FROM results WHERE id = ? AND expires_at > ?", (job_id, now)
        ).fetchone()
        if found is None or (queue is not None and found[0] != queue):
            return unknown(job_id)
        return JobRecord(job_id, JobState.DONE, queue=found[0], record=found[1])

    def cancel(self, job_id: str, queue: str | None, record: bytes, ttl_s: float) -> JobState:
        now = time.time()
        with self._transaction() as db:
            row = db.execute(LOOKUP, (job_id,)).fetchone()
            if row is None or (queue is not None and row[1] != queue):
                return self.lookup(job_id, queue).state
            before = job_record(row, now).state
            if before is JobState.RUNNING:
                db.execute(
                    "UPDATE jobs SET cancel_record = ?, cancel_ttl_s = ? WHERE id = ?",
                    (record, ttl_s, job_id),
                )
            elif not before.finished:
                lease = Lease(job_id, row[1], b"", 0, 0.0, "", 0.0)
                self._leave_line(db, job_id)
                self._finish(db, lease, now, {job_id: (record, ttl_s)})
        return before

    def cancel_requested(self, leases: Sequence[Lease]) -> set[str]:
        if not leases:
            return set()
        ids = [lease.job_id for lease in leases]
        rows = self._db.execute(
            f"SELECT id FROM jobs WHERE cancel_record IS NOT NULL AND id IN "
            f"({', '.join('?' * len(ids))})",
            ids,
        ).fetchall()
        return {row[0] for row in rows}

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

    def pending_by_class(self, queue: str) -> dict[str, int]:
        """The trigger-kept counter and two short index ranges (``sqlite_classes``)."""
        return pending_by_class(self._db, queue)

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _transaction(self) -> Transaction:
        return Transaction(self._db)
