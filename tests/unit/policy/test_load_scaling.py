"""Backlog-aware pool scaling (capped by the budget) and load-aware routing with hysteresis."""

from __future__ import annotations

import pytest

from kqueue.policy.config import Config, Tier
from kqueue.policy.router import TierLoad, pool_wait_s, route_by_load
from kqueue.policy.scaler import pool_backlog, target_size_with_backlog

CONFIG = Config(pool_size=2, pool_max_size=8, pool_scale_step=2, pool_scale_cooldown_s=3.0)


# size, busy, waiting (held), backlog, room -> target
@pytest.mark.parametrize(
    ("size", "busy", "waiting", "backlog", "room", "expected"),
    [
        pytest.param(2, 2, 0, 0, None, 2, id="nothing waits anywhere"),
        pytest.param(2, 2, 0, 10, None, 4, id="backlog alone grows the pool"),
        pytest.param(2, 2, 1, 0, None, 3, id="held only: one more"),
        pytest.param(2, 2, 0, 10, 1, 3, id="budget allows one"),
        pytest.param(2, 2, 0, 10, 0, 2, id="budget allows none"),
        pytest.param(4, 0, 0, 0, 0, 2, id="shrinking is not capped"),
    ],
)
def test_target_with_backlog(size, busy, waiting, backlog, room, expected):
    target = target_size_with_backlog(size, busy, waiting, backlog, 100.0, None, CONFIG, room=room)
    assert target == expected


def test_pool_backlog_counts_pool_classes_only():
    pending = {"resize": 5, "mail": 40, "video": 2, "gone": 0}
    assert pool_backlog(pending, lambda name: name == "resize") == 5
    assert pool_backlog(pending, lambda name: name != "mail") == 7


ON = Config(load_routing=True, load_route_enter_wait_s=5.0, load_route_exit_wait_s=2.0)


# tier, pool wait, isolated free, spawn, spilling before -> (tier, spilling after)
@pytest.mark.parametrize(
    ("tier", "wait", "free", "spawn", "before", "expected"),
    [
        pytest.param(Tier.POOL, 10.0, 1, 0.05, False, (Tier.ISOLATED, True), id="long wait spills"),
        pytest.param(Tier.POOL, 4.0, 1, 0.05, False, (Tier.POOL, False), id="below enter: no"),
        pytest.param(Tier.POOL, 4.0, 1, 0.05, True, (Tier.ISOLATED, True), id="hysteresis holds"),
        pytest.param(Tier.POOL, 1.0, 1, 0.05, True, (Tier.POOL, False), id="below exit: stops"),
        pytest.param(Tier.POOL, 10.0, 0, 0.05, False, (Tier.POOL, True), id="no isolated slot"),
        pytest.param(Tier.POOL, 10.0, 1, 20.0, False, (Tier.POOL, True), id="spawn dearer"),
        pytest.param(Tier.INLINE, 10.0, 1, 0.05, False, (Tier.INLINE, True), id="inline stays"),
    ],
)
def test_route_by_load(tier, wait, free, spawn, before, expected):
    assert route_by_load(tier, TierLoad(wait, free, spawn), ON, spilling=before) == expected


def test_route_by_load_off_by_default():
    assert route_by_load(Tier.POOL, TierLoad(1e9, 5, 0.0), Config(), spilling=True) == (
        Tier.POOL,
        False,
    )


def test_pool_wait():
    assert pool_wait_s(0, 3.0, 4) == 0.0
    assert pool_wait_s(8, 3.0, 4) == 6.0
    assert pool_wait_s(1, 3.0, 0) == float("inf")
