"""A SQLite file made before tickets had a priority still reserves turns."""

from __future__ import annotations

import sqlite3

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.backends.sqlite_limits import create_limit_tables
from kqueue.policy.ratelimit import parse_rate_limit


def _session10_file(path) -> sqlite3.Connection:
    """A connection to a new file whose limit_tickets table is the session 10 one."""
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE limit_tickets (key TEXT NOT NULL, holder TEXT NOT NULL, "
        "turn_s REAL NOT NULL, PRIMARY KEY (key, holder))"
    )
    db.commit()
    return db


def test_a_tickets_table_without_priorities_gets_the_column(tmp_path):
    # Given a file whose limit_tickets table is the session 10 one, holding a ticket
    path = tmp_path / "jobs.db"
    with _session10_file(path) as db:
        db.execute("INSERT INTO limit_tickets VALUES ('rate:r', 'old', 1e12)")
    backend = SQLiteBackend(path)
    try:
        limit = parse_rate_limit("1/s", "test")
        # When jobs reserve turns, Then the old ticket counts as priority 0 and a higher job
        # of the class takes the first turn
        assert backend.reserve_turn("rate:r", limit, "first") == 0.0
        assert 0.9 <= backend.reserve_turn("rate:r", limit, "low") <= 1.0
        assert 0.9 <= backend.reserve_turn("rate:r", limit, "high", 1) <= 1.0
    finally:
        backend.close()


class _RacedConnection:
    """A connection on which another worker adds the column between the look and the ALTER."""

    def __init__(self, db, other):
        self._db, self._other = db, other

    def executescript(self, script):
        return self._db.executescript(script)

    def execute(self, sql, *args):
        if sql.startswith("ALTER TABLE limit_tickets"):
            create_limit_tables(self._other)  # the other worker, on its own connection
        return self._db.execute(sql, *args)


def test_two_workers_opening_an_old_file_at_once_both_start(tmp_path):
    # Given a session 10 file, and two workers' connections to it
    path = tmp_path / "jobs.db"
    _session10_file(path).close()
    first, second = sqlite3.connect(path), sqlite3.connect(path)
    try:
        # When both see no priority column and the second adds it before the first does
        create_limit_tables(_RacedConnection(first, second))
        # Then the first starts too, and the table has the column once
        columns = [row[1] for row in first.execute("PRAGMA table_info(limit_tickets)")]
        assert columns.count("priority") == 1
    finally:
        first.close()
        second.close()
