"""The twin's pool scales by the runtime's rule with the runtime's inputs: the jobs it holds for
the pool, and the backend's jobs not leased yet whose class routes to the pool."""

from __future__ import annotations

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from kqueue.policy.scaler import target_size_with_backlog
from sim.model.backlog import ArrivalBacklog
from sim.model.replay import simulate

#: The runtime test's scenario (tests/unit/worker/test_pool_backlog.py): a pool of 1 that may
#: grow to 20 in one step, then cools down for 60 s.
TABLE = {
    "pool_size": 1,
    "pool_max_size": 20,
    "pool_scale_step": 20,
    "pool_scale_cooldown_s": 60.0,
    "jobs": {"resize": {"tier": "pool"}, "mail": {"tier": "inline"}, "video": {"tier": "isolated"}},
}
CONFIG = Config.from_mapping(TABLE)


def _host(fetch_s: float) -> HostProfile:
    return HostProfile(
        cores=0, fetch_s=fetch_s, polls=False, inline_dispatch_s=0, pool_dispatch_s=0,
        isolated_dispatch_s=0, spawn_s=0,
    )  # fmt: skip


def _burst() -> pd.DataFrame:
    """At t=0: 6 pool jobs, 2 the default estimate routes to the pool, 20 inline, 3 isolated,
    interleaved (the order they were dispatched in)."""
    classes = ["mail"] * 20 + ["resize"] * 6 + ["report"] * 2 + ["video"] * 3
    classes = classes[::2] + classes[1::2]
    return pd.DataFrame(
        {"submitted_at": [0.0] * len(classes), "job_class": classes, "duration_s": [5.0] * 31}
    )


@pytest.mark.parametrize("fetch_s", [0.0, 0.002])
@pytest.mark.parametrize("batch", [1, 10, 100])
def test_the_pool_grows_in_one_step_to_the_pool_jobs_of_the_whole_backlog(fetch_s, batch):
    # Given the burst, leased one job or a batch at a time, round trips free or not
    config = Config.from_mapping({**TABLE, "fetch_batch_size": batch})
    # When it runs
    result = simulate(_burst(), config, _host(fetch_s))
    # Then the pool took one step to 8, as the runtime's does for the same backend (1 idle +
    # 7 more for the 8 pool jobs): the jobs not leased yet counted, as the runtime counts them
    assert result.outcome.pool_peak_size == 8


def test_the_rule_alone_gives_the_same_size_from_the_same_inputs():
    # The runtime's view: 1 idle process, nothing held, 8 pool jobs in the backend. The twin's
    # view at its first pool job: that job on the idle process, 7 pool jobs not leased yet.
    runtime = target_size_with_backlog(1, 0, 0, 8, 0.0, None, CONFIG)
    twin = target_size_with_backlog(1, 1, 0, 7, 0.0, None, CONFIG)
    assert runtime == twin == 8


def test_arrival_backlog_counts_arrived_jobs_not_leased_per_class():
    submitted = [0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 5.0]
    classes = ["a", "b", "a", "a", "c", "b", "a"]
    backlog = ArrivalBacklog(submitted, classes)
    assert backlog.pending_by_class(0, 1.0) == {"a": 3, "b": 1, "c": 1}
    assert backlog.pending_by_class(2, 1.5) == {"a": 2, "c": 1}
    assert backlog.pending_by_class(5, 1.5) == {}
    assert backlog.pending_by_class(0, 10.0) == {"a": 4, "b": 2, "c": 1}
    # short and long backlogs are counted by the two paths with the same answer
    long = ArrivalBacklog([0.0] * 50, ["x", "y"] * 25)
    assert long.pending_by_class(3, 0.0) == {"y": 24, "x": 23}
