"""The SQLite backend's per-class pending counts: a counter kept by triggers, two small ranges.

``class_counts`` holds, per queue and job class, how many messages are ``ready`` (waiting: due or
not). Triggers on ``jobs`` keep it in the same transaction as every insert, delete and state
change, whichever statement makes it, so it is exactly as atomic as the queue itself. Pending now
(what ``lease`` would take) is that counter less the waiting rows not due yet, plus the leases
that expired: both ranges of ``jobs_class_state`` read from the index alone, and both short in
a backlog (retries in back-off, scheduled jobs, dead workers' leases), so reading the counts
does not count the backlog row by row. A file made before the counter had it filled from its
rows once, in the transaction that creates it.
"""

from __future__ import annotations

import sqlite3
import time

_ADD = """INSERT INTO class_counts (queue, job_class, waiting) VALUES (NEW.queue, NEW.job_class, 1)
    ON CONFLICT (queue, job_class) DO UPDATE SET waiting = waiting + 1;"""
_TAKE = """UPDATE class_counts SET waiting = waiting - 1
    WHERE queue = OLD.queue AND job_class = OLD.job_class;"""
#: The counter, its triggers, and its first fill from the rows already there (one statement each).
CLASS_SCHEMA = (
    """CREATE TABLE class_counts (
    queue TEXT NOT NULL,
    job_class TEXT NOT NULL,
    waiting INTEGER NOT NULL,
    PRIMARY KEY (queue, job_class)
) WITHOUT ROWID""",
    f"CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs WHEN NEW.state = 'ready' "
    f"BEGIN {_ADD} END",
    f"CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs WHEN OLD.state = 'ready' "
    f"BEGIN {_TAKE} END",
    "CREATE TRIGGER jobs_count_leave AFTER UPDATE OF state ON jobs "
    f"WHEN OLD.state = 'ready' AND NEW.state != 'ready' BEGIN {_TAKE} END",
    "CREATE TRIGGER jobs_count_enter AFTER UPDATE OF state ON jobs "
    f"WHEN OLD.state != 'ready' AND NEW.state = 'ready' BEGIN {_ADD} END",
    "INSERT INTO class_counts (queue, job_class, waiting) "
    "SELECT queue, job_class, COUNT(*) FROM jobs WHERE state = 'ready' GROUP BY queue, job_class",
)
#: The index of the two corrections (made after ``job_class``).
CLASS_INDEX = """
CREATE INDEX IF NOT EXISTS jobs_class_state ON jobs (queue, state, available_at, job_class);
"""

WAITING = "SELECT job_class, waiting FROM class_counts WHERE queue = ? AND waiting > 0"
#: Waiting rows not due yet, and leases that expired, per class.
NOT_DUE = (
    "SELECT job_class, COUNT(*) FROM jobs INDEXED BY jobs_class_state "
    "WHERE queue = ? AND state = 'ready' AND available_at > ? GROUP BY job_class"
)
LAPSED = (
    "SELECT job_class, COUNT(*) FROM jobs INDEXED BY jobs_class_state "
    "WHERE queue = ? AND state = 'leased' AND available_at <= ? GROUP BY job_class"
)


def create_class_counts(db: sqlite3.Connection) -> None:
    """Make the counter, its triggers (filled from the rows there) and its index, once."""
    db.execute("BEGIN IMMEDIATE")
    try:
        made = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'class_counts'"
        ).fetchone()
        if made is None:
            for statement in CLASS_SCHEMA:
                db.execute(statement)
        db.execute(CLASS_INDEX)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def pending_by_class(db: sqlite3.Connection, queue: str) -> dict[str, int]:
    """Messages of ``queue`` due now (expired leases included), per class, from one snapshot."""
    now = time.time()
    db.execute("BEGIN")  # deferred: a read snapshot of the WAL, no write lock
    try:
        counts = dict(db.execute(WAITING, (queue,)).fetchall())
        for job_class, n in db.execute(NOT_DUE, (queue, now)).fetchall():
            counts[job_class] = counts.get(job_class, 0) - n
        for job_class, n in db.execute(LAPSED, (queue, now)).fetchall():
            counts[job_class] = counts.get(job_class, 0) + n
    finally:
        db.execute("COMMIT")
    return {job_class: n for job_class, n in counts.items() if n > 0}
