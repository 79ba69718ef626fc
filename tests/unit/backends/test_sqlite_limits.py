"""A SQLite file made before tickets had a priority still reserves turns."""

from __future__ import annotations

import sqlite3

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.policy.ratelimit import parse_rate_limit


def test_a_tickets_table_without_priorities_gets_the_column(tmp_path):
    # Given a file whose limit_tickets table is the session 10 one, holding a ticket
    path = tmp_path / "jobs.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE limit_tickets (key TEXT NOT NULL, holder TEXT NOT NULL, "
            "turn_s REAL NOT NULL, PRIMARY KEY (key, holder))"
        )
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
