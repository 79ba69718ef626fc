"""The SQLite backend's tables and statements, and how a ``jobs`` row reads as a ``JobRecord``.

``jobs`` holds every message (``available_at``: due time, or lease expiry while leased);
``results`` the finished records until ``expires_at``; ``locks`` the unique keys; ``durations``
the estimator's history; ``workers`` the published statuses. ``job_class`` is the name a message
was enqueued under, for ``pending_by_class``. Columns added after the first
release are added to an older file when it is opened (``ADDED_COLUMNS``).
"""

from __future__ import annotations

import sqlite3

from kqueue.backends.base import JobRecord, waiting_state
from kqueue.policy.status import JobState

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    record BLOB NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_expiry ON results (expires_at);
CREATE TABLE IF NOT EXISTS locks (
    queue TEXT NOT NULL,
    key TEXT NOT NULL,
    job_id TEXT NOT NULL,
    until REAL NOT NULL,                -- held at least until then, and while its job waits or runs
    PRIMARY KEY (queue, key)
);
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

INSERT = (
    "INSERT OR IGNORE INTO jobs "
    "(id, queue, body, state, available_at, enqueued_at, due_at, job_class) "
    "VALUES (?, ?, ?, 'ready', ?, ?, ?, ?)"
)

LEASE = """
UPDATE jobs SET state = 'leased', available_at = :expires_at, attempts = attempts + 1,
                token = :token, worker = :worker
WHERE id IN (SELECT id FROM jobs WHERE queue = :queue AND state != 'dead' AND available_at <= :now
             ORDER BY available_at LIMIT :limit)
RETURNING id, body, attempts, enqueued_at, cancel_record, cancel_ttl_s, priority
"""

HELD = "id = ? AND token = ? AND state = 'leased'"

#: Columns added after the first release: (name, declaration), added to an older file on open.
ADDED_COLUMNS = (
    ("due_at", "REAL"),
    ("unique_key", "TEXT"),
    ("cancel_record", "BLOB"),
    ("cancel_ttl_s", "REAL"),
    ("priority", "INTEGER NOT NULL DEFAULT 0"),
    ("job_class", "TEXT NOT NULL DEFAULT ''"),
)
#: Made after ``ADDED_COLUMNS`` (they name its columns): the priority levels a queue uses, and
#: the index that leases one level in due order.
PRIORITY_SCHEMA = """
CREATE TABLE IF NOT EXISTS priorities (
    queue TEXT NOT NULL,
    priority INTEGER NOT NULL,
    PRIMARY KEY (queue, priority)
);
CREATE INDEX IF NOT EXISTS jobs_level ON jobs (queue, priority, available_at)
    WHERE state != 'dead';
"""
#: ``LEASE`` for one priority level (a queue with priorities other than 0 leases level by level).
LEASE_LEVEL = """
UPDATE jobs SET state = 'leased', available_at = :expires_at, attempts = attempts + 1,
                token = :token, worker = :worker
WHERE id IN (SELECT id FROM jobs WHERE queue = :queue AND priority = :priority
             AND state != 'dead' AND available_at <= :now ORDER BY available_at LIMIT :limit)
RETURNING id, body, attempts, enqueued_at, cancel_record, cancel_ttl_s, priority
"""
#: Least time between two purges of expired results and locks (done by ``lease``), seconds.
PURGE_INTERVAL_S = 1.0

LOOKUP = (
    "SELECT id, queue, state, available_at, attempts, enqueued_at, due_at, worker, error, "
    "failed_at, body FROM jobs WHERE id = ?"
)


def job_record(row: tuple, now: float) -> JobRecord:
    """A ``jobs`` row (``LOOKUP``'s columns) as a ``JobRecord`` with its state now."""
    job_id, queue, state, available_at, attempts, enqueued_at, due_at, worker, error = row[:9]
    due_at = enqueued_at if due_at is None else due_at
    if state == "dead":
        job_state = JobState.DEAD
    elif state == "leased" and available_at > now:
        job_state = JobState.RUNNING
    else:
        job_state = waiting_state(now, available_at, due_at, error or "")
    return JobRecord(
        job_id,
        job_state,
        queue=queue,
        attempts=attempts,
        enqueued_at=enqueued_at,
        due_at=due_at,
        available_at=available_at,
        worker=worker or "",
        error=error or "",
        failed_at=row[9] if row[9] is not None else float("nan"),
        body=row[10],
    )


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on one connection."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.connection.execute("ROLLBACK" if exc_type else "COMMIT")
