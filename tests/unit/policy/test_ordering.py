"""Priority order within a queue and weighted order across queues (tables)."""

from __future__ import annotations

import pytest

from kqueue.errors import ConfigError
from kqueue.policy.ordering import (
    QueueOrder,
    backlog_key,
    check_priority,
    parse_queue_order,
    smooth_round_robin,
)


def test_backlog_key_orders_priority_then_due_then_dispatch():
    jobs = [("low-early", 0, 1.0, 1), ("high-late", 5, 9.0, 2), ("low-late", 0, 2.0, 0)]
    jobs += [("high-early", 5, 3.0, 3), ("high-early-2", 5, 3.0, 4)]
    order = sorted(jobs, key=lambda j: backlog_key(j[1], j[2], j[3]))
    names = [j[0] for j in order]
    assert names == ["high-early", "high-early-2", "high-late", "low-early", "low-late"]


@pytest.mark.parametrize("bad", ["5", 1.5, True, None, 1001, -1001])
def test_priority_must_be_a_bounded_integer(bad):
    with pytest.raises(ConfigError, match="priority="):
        check_priority(bad, "@app.job for 'x'")


def test_weighted_round_robin_spreads_turns_and_never_starves():
    assert smooth_round_robin([("a", 3), ("b", 1)]) == ["a", "a", "b", "a"]
    cycle = smooth_round_robin([("high", 5), ("default", 2), ("low", 1)])
    assert sorted(cycle) == ["default"] * 2 + ["high"] * 5 + ["low"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("strict", QueueOrder()),
        ("weighted:high=3,default=1", QueueOrder("weighted", (("high", 3), ("default", 1)))),
    ],
)
def test_parse_queue_order(text, expected):
    assert parse_queue_order(text) == expected


@pytest.mark.parametrize(
    "bad", ["fair", "weighted:", "weighted:high", "weighted:high=0", "weighted:a=1,a=2"]
)
def test_bad_queue_order_is_refused(bad):
    with pytest.raises(ConfigError, match="--queue-order"):
        parse_queue_order(bad)


def test_turns_put_each_queue_first_by_weight():
    order = parse_queue_order("weighted:high=3,default=1")
    turns = order.turns(["high", "default"])
    assert turns == [["high", "default"]] * 2 + [["default", "high"]] + [["high", "default"]]
    assert QueueOrder().turns(["a", "b"]) == [["a", "b"]]
    with pytest.raises(ConfigError, match="no weight to queue"):
        order.turns(["high", "low"])
