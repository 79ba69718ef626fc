"""Due ticks, catch-up after downtime, tick keys, and the leader lease (tables)."""

from __future__ import annotations

import pytest

from kqueue.errors import ConfigError
from kqueue.policy.leader import (
    LeaderAction,
    LeaderLease,
    apply_step,
    check_lease_s,
    leader_step,
    takeover_bound_s,
)
from kqueue.policy.schedule import MAX_CATCH_UP, TickPlan, make_schedule, plan_ticks, tick_key

T0 = 1_800_000_000.0  # a whole multiple of 60 and of 10


def _every(every_s=10.0, catch_up="none", grace_s=5.0):
    return make_schedule("s", "tasks.job", every_s=every_s, catch_up=catch_up, grace_s=grace_s)


@pytest.mark.parametrize(
    ("catch_up", "last", "now", "expected"),
    [
        ("none", None, T0 + 3, TickPlan((), 0, T0 + 3)),  # a new schedule starts now
        ("none", T0, T0 + 12, TickPlan((T0 + 10,), 0, T0 + 10)),  # on time
        ("none", T0, T0 + 9, TickPlan((), 0, T0)),  # nothing due yet
        ("none", T0, T0 + 43, TickPlan((T0 + 40,), 3, T0 + 40)),  # 10, 20, 30 missed
        ("last", T0, T0 + 43, TickPlan((T0 + 30, T0 + 40), 2, T0 + 40)),
        ("all", T0, T0 + 43, TickPlan((T0 + 10, T0 + 20, T0 + 30, T0 + 40), 0, T0 + 40)),
    ],
)
def test_plan_ticks_table(catch_up, last, now, expected):
    assert plan_ticks(_every(catch_up=catch_up), last, now) == expected


def test_a_long_outage_is_skipped_without_listing_every_tick():
    # Given an every-second schedule down for a day
    plan = plan_ticks(_every(every_s=1.0, grace_s=0.5), T0, T0 + 86_400.2)
    # Then one tick runs and the rest count as skipped
    assert plan.fire_s == (T0 + 86_400,)
    assert plan.skipped == 86_399
    plan_all = plan_ticks(_every(every_s=1.0, grace_s=0.5, catch_up="all"), T0, T0 + 86_400.2)
    assert len(plan_all.fire_s) == MAX_CATCH_UP + 1


def test_cron_schedule_ticks_and_their_keys():
    s = make_schedule("report", "tasks.report", cron="*/5 * * * *", grace_s=30)
    plan = plan_ticks(s, T0, T0 + 301)
    assert plan.fire_s == (T0 + 300,)
    assert tick_key("report", T0 + 300) == f"schedule:report:{T0 + 300:.3f}"


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({}, "exactly one"),
        ({"cron": "* * * *", "every_s": 1}, "exactly one"),
        ({"cron": "* * * 13 *"}, "field 4 (month, 1-12)"),
        ({"every_s": 0}, "every_s=0"),
        ({"every_s": 1, "timezone_name": "Nowhere/City"}, "timezone 'Nowhere/City'"),
        ({"every_s": 1, "catch_up": "some"}, "catch_up='some'; valid: none, last, all"),
    ],
)
def test_bad_schedules_are_refused_naming_the_schedule(kwargs, words):
    with pytest.raises(ConfigError) as info:
        make_schedule("nightly", "tasks.job", **kwargs)
    assert "'nightly'" in str(info.value) and words in str(info.value)


@pytest.mark.parametrize(
    ("current", "me", "now", "action"),
    [
        (None, "a", 0.0, LeaderAction.ACQUIRE),
        (LeaderLease("a", 10.0), "a", 5.0, LeaderAction.RENEW),
        (LeaderLease("a", 10.0), "b", 5.0, LeaderAction.FOLLOW),
        (LeaderLease("a", 10.0), "b", 10.0, LeaderAction.ACQUIRE),  # expired: take over
        (LeaderLease("a", 10.0), "a", 11.0, LeaderAction.ACQUIRE),
    ],
)
def test_leader_step_table(current, me, now, action):
    assert leader_step(current, me, now) is action


def test_a_dead_leaders_lease_passes_on_within_one_lease():
    # Given a leads with a 9 s lease, b steps every 3 s
    lease = apply_step(None, "a", 0.0, 9.0)
    t = 0.0
    # When a dies at t=0 and only b steps
    while lease.holder == "a":
        t += 3.0
        lease = apply_step(lease, "b", t, 9.0)
    # Then b leads within the bound
    assert lease.holder == "b" and t <= takeover_bound_s(9.0)
    with pytest.raises(ConfigError, match="lease_s=0"):
        check_lease_s(0)
