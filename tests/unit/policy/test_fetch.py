"""The fetch sizing rule (pure): lease what the tiers of recent jobs can take, probe behind."""

from __future__ import annotations

import pytest

from kqueue.policy.fetch import (
    PROBE_SIZE,
    FetchPlan,
    plan_fetch,
    pool_backlog_per_process,
    refill_due,
    tier_free,
    update_shares,
)

POOL_ONLY = {"pool": 1.0}
MIXED = {"inline": 0.7, "pool": 0.25, "isolated": 0.05}


@pytest.mark.parametrize(
    ("rooms", "shares", "probe_due", "expected"),
    [
        # no history: a small probe learns the mix
        ({"inline": 200, "pool": 4}, {}, False, FetchPlan(PROBE_SIZE, probe=True)),
        # every tier full: nothing
        ({"inline": 0, "pool": 0}, MIXED, True, FetchPlan(0)),
        # only pool jobs lately: lease what the pool takes, not what inline could
        ({"inline": 200, "pool": 3, "isolated": 10}, POOL_ONLY, False, FetchPlan(3)),
        # mixed: bounded by the tightest tier with room, then by the batch size
        ({"inline": 200, "pool": 5, "isolated": 10}, MIXED, False, FetchPlan(20)),
        ({"inline": 200, "pool": 40, "isolated": 10}, MIXED, False, FetchPlan(100)),
        # a full tier does not stop the others (its jobs are released if they come)
        ({"inline": 70, "pool": 0, "isolated": 10}, MIXED, False, FetchPlan(80)),
        # all recent jobs went to a full tier: nothing, except a probe when one is due
        ({"inline": 200, "isolated": 0}, {"isolated": 1.0}, False, FetchPlan(0)),
        ({"inline": 200, "isolated": 0}, {"isolated": 1.0}, True, FetchPlan(2, probe=True)),
        # a probe never exceeds the room
        ({"inline": 2, "isolated": 0}, {"isolated": 1.0}, True, FetchPlan(2, probe=True)),
    ],
)
def test_plan_fetch(rooms, shares, probe_due, expected):
    assert plan_fetch(rooms, shares, 100, probe_due=probe_due) == expected


def test_shares_follow_the_mix_and_sum_to_one():
    shares: dict[str, float] = {}
    for tier in ["pool"] * 50 + ["inline"] * 50:
        shares = update_shares(shares, tier)
    assert shares["inline"] > 0.9
    assert sum(shares.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rooms", "shares", "due"),
    [
        # no history of the mix: always lease
        ({"inline": 0}, {}, True),
        # 16 slots: 30 in hand (room 2) is plenty, 16 in hand (room 16) is low
        ({"inline": 2}, {"inline": 1.0}, False),
        ({"inline": 15}, {"inline": 1.0}, False),
        ({"inline": 16}, {"inline": 1.0}, True),
        # any tier the mix goes to running low is enough; a tier without a share is not
        ({"inline": 2, "pool": 2}, {"inline": 0.9, "pool": 0.1}, True),
        ({"inline": 2, "pool": 40}, {"inline": 1.0}, False),
    ],
)
def test_refill_waits_until_a_tier_runs_low(rooms, shares, due):
    capacities = {"inline": 16, "pool": 2}
    assert refill_due(rooms, capacities, shares) is due


def test_a_tier_of_one_slot_is_refilled_as_soon_as_it_has_room():
    assert refill_due({"isolated": 1}, {"isolated": 1}, {"isolated": 1.0})
    assert not refill_due({"isolated": 0}, {"isolated": 1}, {"isolated": 1.0})


@pytest.mark.parametrize(
    ("estimate_s", "expected"),
    [
        (float("nan"), 1),  # nothing launched yet
        (5.0, 1),  # long jobs: one queued per process
        (1.0, 1),  # at the pipelining bound: 0.5 s of them fit in none more
        (0.2, 2),
        (0.05, 8),  # short ones: as many as fit in 0.5 s, at most 8
        (0.0, 8),
    ],
)
def test_the_pool_backlog_per_process_follows_the_last_estimate(estimate_s, expected):
    assert pool_backlog_per_process(estimate_s) == expected


@pytest.mark.parametrize(
    ("capacity", "backlog", "reserved", "free"),
    [(2, 1, 0, 4), (2, 1, 3, 1), (2, 1, 5, 0), (3, 8, 10, 17), (0, 1, 0, 0)],
)
def test_a_tier_frees_room_for_its_slots_and_their_backlog(capacity, backlog, reserved, free):
    assert tier_free(capacity, backlog, reserved) == free
