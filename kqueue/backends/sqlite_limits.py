"""``LimitStore`` for SQLite: the policy's rules on rows, each call one write transaction.

``BEGIN IMMEDIATE`` takes the file's write lock first, so two workers reading a bucket or a
semaphore cannot both act on what they read.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from kqueue.backends.limits import LimitStore, ScheduleStore
from kqueue.policy.leader import LeaderLease, apply_step
from kqueue.policy.ratelimit import (
    Bucket,
    RateLimit,
    acquire_slots,
    take_tokens,
)
from kqueue.policy.slot_queue import claim_slot, slot_key
from kqueue.policy.turn_queue import Ticket, take_turn

LIMITS_SCHEMA = """
CREATE TABLE IF NOT EXISTS limit_buckets (
    key TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS limit_tickets (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    turn_s REAL NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (key, holder)
);
CREATE TABLE IF NOT EXISTS limit_slots (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key, holder)
);
CREATE TABLE IF NOT EXISTS limit_waiting (
    key TEXT NOT NULL,
    holder TEXT NOT NULL,
    order_s REAL NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (key, holder)
);
CREATE TABLE IF NOT EXISTS paused (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS leader (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS schedule_states (name TEXT PRIMARY KEY, body BLOB NOT NULL);
"""


def create_limit_tables(db) -> None:
    """Create the limits' tables (``LIMITS_SCHEMA``), and give a file made before tickets had a
    priority (``turn_queue``) its column."""
    db.executescript(LIMITS_SCHEMA)
    have = {row[1] for row in db.execute("PRAGMA table_info(limit_tickets)")}
    if "priority" not in have:
        db.execute("ALTER TABLE limit_tickets ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")


class SQLiteLimits(LimitStore, ScheduleStore):
    """Limits, pauses and the schedules' leader in the backend's file (``SQLiteBackend``'s)."""

    def _limits_db(self):
        if not self.__dict__.get("_limits_ready"):
            create_limit_tables(self._db)
            self._limits_ready = True
        return self._transaction()

    def take_tokens(self, key: str, limit: RateLimit, wanted: int) -> int:
        with self._limits_db() as db:
            row = db.execute(
                "SELECT tokens, updated_s FROM limit_buckets WHERE key = ?", (key,)
            ).fetchone()
            bucket = Bucket(*row) if row else None
            granted, after = take_tokens(limit, bucket, time.time(), wanted)
            self._write_bucket(db, key, after)
        return granted

    def reserve_turn(self, key: str, limit: RateLimit, holder: str, priority: int = 0) -> float:
        with self._limits_db() as db:
            now = time.time()  # once the write lock is held
            # lapsed tickets go first (``ticket_live``): a lost job's ticket leaves no row
            db.execute(
                "DELETE FROM limit_tickets WHERE key = ? AND turn_s <= ?",
                (key, now - limit.ticket_grace_s),
            )
            # its own ticket and those of a lower priority: the only ones ``take_turn`` moves
            rows = db.execute(
                "SELECT holder, turn_s, priority FROM limit_tickets "
                "WHERE key = ? AND (holder = ? OR priority < ?)",
                (key, holder, priority),
            ).fetchall()
            bucket = db.execute(
                "SELECT tokens, updated_s FROM limit_buckets WHERE key = ?", (key,)
            ).fetchone()
            before = {h: Ticket(turn_s, prio) for h, turn_s, prio in rows}
            made = take_turn(
                limit, Bucket(*bucket) if bucket else None, before, holder, priority, now
            )
            self._write_bucket(db, key, made.bucket)
            db.executemany(
                "DELETE FROM limit_tickets WHERE key = ? AND holder = ?",
                [(key, h) for h in before.keys() - made.tickets.keys()],
            )
            db.executemany(
                "INSERT OR REPLACE INTO limit_tickets (key, holder, turn_s, priority) "
                "VALUES (?, ?, ?, ?)",
                [
                    (key, h, t.turn_s, t.priority)
                    for h, t in made.tickets.items()
                    if before.get(h) != t
                ],
            )
        return made.wait_s

    @staticmethod
    def _write_bucket(db, key: str, bucket: Bucket) -> None:
        db.execute(
            "INSERT OR REPLACE INTO limit_buckets (key, tokens, updated_s) VALUES (?, ?, ?)",
            (key, bucket.tokens, bucket.updated_s),
        )

    def acquire_slots(
        self, key: str, limit: int, holders: Sequence[str], lease_s: float
    ) -> list[str]:
        now = time.time()
        with self._limits_db() as db:
            db.execute("DELETE FROM limit_slots WHERE key = ? AND expires_at <= ?", (key, now))
            slots = dict(
                db.execute("SELECT holder, expires_at FROM limit_slots WHERE key = ?", (key,))
            )
            granted, after = acquire_slots(limit, slots, list(holders), now, lease_s)
            db.executemany(
                "INSERT OR REPLACE INTO limit_slots (key, holder, expires_at) VALUES (?, ?, ?)",
                [(key, holder, after[holder]) for holder in granted],
            )
        return granted

    def claim_slot(self, key: str, limit: int, holder: str, order: float, lease_s: float) -> bool:
        with self._limits_db() as db:
            now = time.time()  # once the write lock is held
            slots = dict(
                db.execute("SELECT holder, expires_at FROM limit_slots WHERE key = ?", (key,))
            )
            rows = db.execute(
                "SELECT holder, order_s, expires_at FROM limit_waiting WHERE key = ?", (key,)
            )
            waiting = {h: (order_s, until) for h, order_s, until in rows}
            claim = claim_slot(limit, slots, waiting, holder, order, now, lease_s)
            db.execute("DELETE FROM limit_slots WHERE key = ?", (key,))
            db.execute("DELETE FROM limit_waiting WHERE key = ?", (key,))
            db.executemany(
                "INSERT INTO limit_slots (key, holder, expires_at) VALUES (?, ?, ?)",
                [(key, h, until) for h, until in claim.slots.items()],
            )
            db.executemany(
                "INSERT INTO limit_waiting (key, holder, order_s, expires_at) VALUES (?, ?, ?, ?)",
                [(key, h, o, until) for h, (o, until) in claim.waiting.items()],
            )
        return claim.granted

    def release_slots(self, key: str, holders: Sequence[str]) -> None:
        with self._limits_db() as db:
            for table in ("limit_slots", "limit_waiting"):  # gone for good: off the list too
                db.executemany(
                    f"DELETE FROM {table} WHERE key = ? AND holder = ?",
                    [(key, holder) for holder in holders],
                )

    @staticmethod
    def _leave_line(db, job_id: str) -> None:
        """Job ``job_id`` (its row still there) ends for good: off its class's wait list, in
        the caller's transaction (``kqueue.policy.slot_queue.leave_line``)."""
        row = db.execute("SELECT job_class FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None:
            db.execute(
                "DELETE FROM limit_waiting WHERE key = ? AND holder = ?", (slot_key(row[0]), job_id)
            )

    def slot_holders(self, key: str) -> dict[str, float]:
        with self._limits_db() as db:
            rows = db.execute(
                "SELECT holder, expires_at FROM limit_slots WHERE key = ? AND expires_at > ?",
                (key, time.time()),
            )
            return dict(rows)

    def set_paused(self, name: str, paused: bool) -> None:
        with self._limits_db() as db:
            if paused:
                db.execute("INSERT OR IGNORE INTO paused (name) VALUES (?)", (name,))
            else:
                db.execute("DELETE FROM paused WHERE name = ?", (name,))

    def paused(self) -> set[str]:
        with self._limits_db() as db:
            return {row[0] for row in db.execute("SELECT name FROM paused")}

    def lead(self, me: str, lease_s: float) -> bool:
        with self._limits_db() as db:
            row = db.execute("SELECT holder, expires_at FROM leader WHERE id = 1").fetchone()
            after = apply_step(LeaderLease(*row) if row else None, me, time.time(), lease_s)
            db.execute(
                "INSERT OR REPLACE INTO leader (id, holder, expires_at) VALUES (1, ?, ?)",
                (after.holder, after.expires_at_s),
            )
        return after.holder == me

    def leader(self) -> tuple[str, float] | None:
        with self._limits_db() as db:
            row = db.execute(
                "SELECT holder, expires_at FROM leader WHERE id = 1 AND expires_at > ?",
                (time.time(),),
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def schedule_states(self) -> dict[str, bytes]:
        with self._limits_db() as db:
            return dict(db.execute("SELECT name, body FROM schedule_states"))

    def save_schedule_state(self, name: str, body: bytes) -> None:
        with self._limits_db() as db:
            db.execute(
                "INSERT OR REPLACE INTO schedule_states (name, body) VALUES (?, ?)", (name, body)
            )
