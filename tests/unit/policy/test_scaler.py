"""Scaler: Horizon-style scenarios, size/busy/waiting/time -> the size the pool should have."""

from __future__ import annotations

import pytest

from kqueue.policy.config import Config
from kqueue.policy.scaler import PoolSnapshot, target_pool_size

# Pool between 10 and 20 processes, 2 per step, a step at most every 3 s.
CONFIG = Config(pool_size=10, pool_max_size=20, pool_scale_step=2, pool_scale_cooldown_s=3.0)

# size, busy, waiting, now_s, last_scaled_at_s -> expected size
SCENARIOS = [
    # below the floor (a process died): back to the floor at once, even while cooling down
    pytest.param(7, 7, 0, 100.0, None, 10, id="below floor -> floor"),
    pytest.param(7, 7, 50, 100.0, 99.0, 10, id="below floor in cooldown -> floor"),
    pytest.param(0, 0, 0, 100.0, 100.0, 10, id="empty pool -> floor"),
    # jobs wait: grow by at most a step, not past max, not past what the waiting jobs need
    pytest.param(10, 10, 50, 100.0, None, 12, id="waiting -> grow one step"),
    pytest.param(10, 10, 1, 100.0, None, 11, id="one waiting -> one more"),
    pytest.param(10, 9, 2, 100.0, None, 11, id="idle process absorbs one waiting job"),
    pytest.param(10, 8, 2, 100.0, None, 10, id="idle processes absorb the waiting jobs"),
    pytest.param(19, 19, 50, 100.0, None, 20, id="grow stops at max"),
    pytest.param(20, 20, 50, 100.0, None, 20, id="at max stays"),
    pytest.param(12, 12, 50, 100.0, 97.0, 14, id="cooldown just over -> grow"),
    # cooldown holds the size, in both directions
    pytest.param(12, 12, 50, 100.0, 98.0, 12, id="cooldown holds growth"),
    pytest.param(16, 0, 0, 100.0, 99.9, 16, id="cooldown holds shrink"),
    # idle: shrink by at most a step, not below the floor nor below the busy processes
    pytest.param(16, 0, 0, 100.0, None, 14, id="idle -> shrink one step"),
    pytest.param(16, 15, 0, 100.0, 50.0, 15, id="shrink not below busy"),
    pytest.param(11, 0, 0, 100.0, None, 10, id="shrink not below floor"),
    pytest.param(16, 16, 0, 100.0, None, 16, id="all busy, nothing waits -> keep"),
    # steady state
    pytest.param(10, 5, 0, 100.0, None, 10, id="at floor, idle -> keep"),
    pytest.param(14, 10, 3, 100.0, None, 14, id="waiting fits the idle processes -> keep"),
]


@pytest.mark.parametrize(("size", "busy", "waiting", "now", "last", "expected"), SCENARIOS)
def test_target_pool_size(size, busy, waiting, now, last, expected):
    snapshot = PoolSnapshot(size=size, busy=busy, waiting=waiting, now_s=now, last_scaled_at_s=last)
    assert target_pool_size(snapshot, CONFIG) == expected


def test_a_burst_grows_step_by_step_then_shrinks_back():
    # Given a pool at its floor and a burst of 40 waiting jobs
    size, last, sizes = 10, None, []
    # When the supervisor applies the decision every second for a minute, the burst lasting 20 s
    for now in range(60):
        waiting = 40 if now < 20 else 0
        busy = size if now < 20 else 0
        target = target_pool_size(PoolSnapshot(size, busy, waiting, float(now), last), CONFIG)
        if target != size:
            size, last = target, float(now)
        sizes.append(size)
    # Then it grows 2 per 3 s to the max, and after the burst shrinks the same way to the floor
    assert sizes[:7] == [12, 12, 12, 14, 14, 14, 16]
    assert max(sizes) == 20 and sizes[-1] == 10
    assert all(abs(b - a) <= 2 for a, b in zip(sizes, sizes[1:], strict=False))
