"""The SQLite backend's fleet trace (a capped table) and the deletion of dead letters.

``trace`` holds one row per finished attempt with when it was appended; an append deletes the
rows past the newest ``keep_rows`` in the same transaction (a range delete on the row id, so
the cap costs one indexed statement, not a count). Mixed into ``SQLiteBackend``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kqueue.backends.base import TraceBatch

TRACE_SCHEMA = """
CREATE TABLE IF NOT EXISTS trace (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    appended_at REAL NOT NULL,
    row BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS trace_appended ON trace (appended_at);
"""


class SQLiteTrace:
    """``append_trace``, ``read_trace`` and ``delete_dead`` on ``self._db`` (per thread)."""

    _trace_ready = False

    def _trace_db(self):
        db = self._db
        if not self._trace_ready:
            db.executescript(TRACE_SCHEMA)
            self._trace_ready = True
        return db

    def append_trace(self, rows: Sequence[bytes], keep_rows: int) -> None:
        if not rows or keep_rows <= 0:
            return
        self._trace_db()
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO trace (appended_at, row) VALUES (?, ?)", [(now, r) for r in rows]
            )
            (last,) = db.execute("SELECT MAX(seq) FROM trace").fetchone()
            db.execute("DELETE FROM trace WHERE seq <= ?", (last - keep_rows,))

    def read_trace(self, after: str = "", since: float = 0.0, limit: int = 10_000) -> TraceBatch:
        db = self._trace_db()
        if after:
            found = db.execute(
                "SELECT seq, row FROM trace WHERE seq > ? ORDER BY seq LIMIT ?",
                (int(after), limit),
            ).fetchall()
        else:
            found = db.execute(
                "SELECT seq, row FROM trace WHERE appended_at >= ? ORDER BY seq LIMIT ?",
                (since, limit),
            ).fetchall()
        if not found:
            return TraceBatch([], after)
        return TraceBatch([bytes(row) for _, row in found], str(found[-1][0]))

    def delete_dead(self, job_ids: Sequence[str], queue: str | None = None) -> int:
        if not job_ids:
            return 0
        gone = 0
        with self._transaction() as db:
            for job_id in job_ids:
                gone += db.execute(
                    "DELETE FROM jobs WHERE id = ? AND state = 'dead' AND (? IS NULL OR queue = ?)",
                    (job_id, queue, queue),
                ).rowcount
        return gone
