"""Every backend runs ``turn_queue.take_turn`` alike: Redis's Lua copy and SQLite's partial read
give the waits and the ticket order the policy's function gives (the memory backend)."""

from __future__ import annotations

import dataclasses
import random

from kqueue.backends.memory import MemoryBackend
from kqueue.policy.ratelimit import parse_rate_limit
from tests.conftest import BACKEND_FACTORIES

#: 1/s with a debt capped at 15 s: 25 reservations reach the cap, so every branch runs.
LIMIT = dataclasses.replace(parse_rate_limit("1/s", "agree"), max_debt_s=15.0)


def _ticket_order(backend, key: str) -> list[str]:
    """The holders of ``key``'s tickets, earliest turn first."""
    if isinstance(backend, MemoryBackend):
        tickets = backend._limit_state()["tickets"][key]
        return sorted(tickets, key=lambda holder: tickets[holder].turn_s)
    if hasattr(backend, "client"):
        return [
            h.decode() for h in backend.client.zrange(backend._limit_key(key, "tickets"), 0, -1)
        ]
    rows = backend._db.execute(
        "SELECT holder FROM limit_tickets WHERE key = ? ORDER BY turn_s", (key,)
    )
    return [row[0] for row in rows]


def test_redis_and_sqlite_reserve_turns_as_the_policy_does(tmp_path, request):
    reference = MemoryBackend()
    others = [BACKEND_FACTORIES[name](tmp_path, request) for name in ("redis", "sqlite")]
    rng = random.Random(5)
    try:
        for trial in range(8):
            # Given 25 jobs of mixed priorities (0, 1, 5) reserving turns of one class
            key = f"rate:t{trial}"
            jobs = [(f"j{i}", rng.choice([0, 0, 1, 5])) for i in range(25)]
            expected = [reference.reserve_turn(key, LIMIT, h, p) for h, p in jobs]
            for backend in others:
                # When another backend takes the same reservations
                waits = [backend.reserve_turn(key, LIMIT, h, p) for h, p in jobs]
                # Then each wait and the tickets' order are the policy's (clocks a few ms apart)
                assert all(abs(a - b) < 0.05 for a, b in zip(waits, expected, strict=True))
                assert _ticket_order(backend, key) == _ticket_order(reference, key)
    finally:
        for backend in others:
            backend.close()
