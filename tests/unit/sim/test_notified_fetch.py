"""On a backend that wakes the worker, the fetcher's wake at an arrival and its round trip are
one event (``Model._fetch_at_arrival``): no result changes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import simpy

from kqueue.policy import Config, HostProfile, JobOptions
from sim.engine.clock import run_all
from sim.model.replay import prepare
from sim.model.worker import Model
from sim.model.workload import synth

CASES = {
    "notified": (Config(), dataclasses.replace(HostProfile(cores=8), polls=False)),
    "notified, slow trips": (
        Config(fetch_batch_size=3),
        dataclasses.replace(HostProfile(cores=32), polls=False, fetch_s=0.05),
    ),
    "class rules, notified": (
        Config(jobs={"heavy": JobOptions(concurrency_limit=2), "fast": JobOptions(priority=1)}),
        dataclasses.replace(HostProfile(cores=8), polls=False),
    ),
}
#: The gated fetcher (class rules) is slower per job: a shorter trace for it.
JOBS = {"class rules, notified": 400}


def _run(prepared, config, host, merge: bool):
    """(per-job arrays, events scheduled) of one run."""
    env = simpy.Environment()
    model = Model(env, prepared.jobs, config, host, merge_trips=merge)
    run_all(env)
    arrays = [model.started_s, model.finished_s, model.slot_s, model.tier, model.process]
    return [np.array(a) for a in arrays], next(env._eid)


@pytest.mark.parametrize("case", CASES)
def test_merged_trips_give_exactly_the_same_run(case):
    # Given a light prototype mix (the fetcher sleeps between most arrivals)
    config, host = CASES[case]
    prepared = prepare(synth(JOBS.get(case, 1500), 6.0, seed=len(case)))
    # When it runs with the wake and its round trip merged, and with them apart
    merged, merged_events = _run(prepared, config, host, True)
    apart, apart_events = _run(prepared, config, host, False)
    # Then every job starts, ends, and runs where it did, to the last bit
    for got, want in zip(merged, apart, strict=True):
        np.testing.assert_array_equal(got, want)
    # And the merged run schedules fewer events
    assert merged_events < apart_events
