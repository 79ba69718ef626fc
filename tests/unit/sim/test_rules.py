"""The twin runs the runtime's scheduling rules: priority order, token bucket, semaphore,
paused classes, and schedules that add jobs (``sim.model.rules``)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import simpy

from kqueue.policy import Config, HostProfile
from kqueue.policy.schedule import make_schedule
from sim.model.jobs import Jobs
from sim.model.replay import prepare, simulate
from sim.model.rules import add_schedule_jobs, class_rules
from sim.model.theory import poisson_trace
from sim.model.worker import Model


def _jobs(rows):
    rows = sorted(rows, key=lambda r: r[0])
    return Jobs(
        [r[0] for r in rows], [r[1] for r in rows], [0.0] * len(rows), [1.0] * len(rows),
        [r[2] for r in rows],
    )  # fmt: skip


def _run(jobs, tables, paused=(), **settings):
    config = Config.from_mapping({**settings, "jobs": tables})
    env = simpy.Environment()
    model = Model(env, jobs, config, HostProfile.ideal(), rules=class_rules(jobs, config, paused))
    env.run(until=3600)
    return model


INLINE = {"tier": "inline"}


def test_twenty_high_jobs_start_before_the_low_backlog_on_one_slot():
    rows = [(0.0, 0.01, "low")] * 200 + [(0.5, 0.01, "high")] * 20
    jobs = _jobs(rows)
    model = _run(jobs, {"low": INLINE, "high": {**INLINE, "priority": 10}},
                 max_concurrent_inline=1)  # fmt: skip
    high = [model.started_s[i] for i, c in enumerate(jobs.job_class) if c == "high"]
    low_after = sorted(
        model.started_s[i]
        for i, c in enumerate(jobs.job_class)
        if c == "low" and model.started_s[i] >= 0.5
    )
    # the worker leases only what its one slot can take (one running, one queued), so at most
    # the one low job already leased when the high ones came starts before them
    assert max(high) < low_after[1]


def test_rate_limit_holds_10_per_s_and_other_classes_are_not_held():
    rows = [(0.0, 0.001, "api")] * 200 + [(1.0, 0.001, "free")] * 20
    jobs = _jobs(rows)
    model = _run(jobs, {"api": {**INLINE, "rate_limit": "10/s"}, "free": INLINE})
    starts = sorted(model.started_s[i] for i, c in enumerate(jobs.job_class) if c == "api")
    for t in (1.0, 6.0, 11.0):
        assert 45 <= sum(1 for s in starts if t <= s < t + 5) <= 55
    free = [model.started_s[i] for i, c in enumerate(jobs.job_class) if c == "free"]
    assert max(free) < 1.1


def test_concurrency_limit_never_runs_more_than_its_slots():
    jobs = _jobs([(0.0, 0.3, "capped")] * 30)
    model = _run(jobs, {"capped": {**INLINE, "concurrency_limit": 3}})
    edges = sorted([(s, 1) for s in model.started_s] + [(f, -1) for f in model.finished_s])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 3
    # three held-back jobs (one per slot) wait on the worker and take a slot the moment one
    # frees (``kqueue.policy.slot_wait``), the rest go back for a poll: the waves run back to
    # back, ten of 0.3 s, as in the runtime (before, each wave waited for the poll after a slot
    # freed: 4.8 s)
    assert math.isclose(max(model.finished_s), 3.0, rel_tol=0.05)


def test_a_paused_class_never_starts():
    jobs = _jobs([(0.0, 0.1, "mail")] * 3 + [(0.0, 0.1, "report")] * 3)
    model = _run(jobs, {"mail": INLINE, "report": INLINE}, paused=["mail"])
    started = [c for i, c in enumerate(jobs.job_class) if not math.isnan(model.started_s[i])]
    assert started == ["report"] * 3
    assert model.class_gate.paused == 3


def test_schedules_add_one_job_per_tick_over_the_replay():
    origin_s = 1_800_000_000.0
    jobs = _jobs([(k * 1.0, 0.01, "web") for k in range(11)])
    every_2s = make_schedule("sync", "sync", every_s=2)
    cron = make_schedule("minutely", "report", cron="* * * * *")
    merged = add_schedule_jobs(
        jobs, {"a": every_2s, "b": cron}, origin_s, {"sync": 0.5, "report": 1}
    )
    assert merged.job_class.count("sync") == 5  # ticks at 2, 4, 6, 8, 10 s
    assert merged.submitted_s == sorted(merged.submitted_s)
    assert len(merged) == 11 + 5 + merged.job_class.count("report")


def test_kqueue_simulate_fires_the_configs_schedules_and_applies_its_limits(tmp_path):
    import json
    import subprocess
    import sys

    import pandas as pd

    from tests.conftest import ROOT

    # Given a 60 s trace with a report class, and a config scheduling it every 10 s, rate-limited
    trace = pd.DataFrame({
        "submitted_at": [1_800_000_000.0 + k for k in range(61)],
        "job_class": ["web"] * 60 + ["report"],
        "duration_s": [0.01] * 60 + [0.2],
    })  # fmt: skip
    trace.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "kqueue.toml").write_text(
        '[schedules.r]\njob = "report"\nevery_s = 10\n\n'
        '[jobs."report"]\ntier = "inline"\nconcurrency_limit = 1\n'
    )

    def simulate(*extra):
        done = subprocess.run(
            [sys.executable, "-m", "sim", "simulate", "--trace", str(tmp_path / "t.csv"),
             "--ideal", "--json", *extra],
            capture_output=True, text=True, timeout=100, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    plain = simulate()
    scheduled = simulate("--config", str(tmp_path / "kqueue.toml"))
    jobs = [
        sum(r["tiers"][t]["jobs"] for t in ("inline", "pool", "isolated"))
        for r in (plain, scheduled)
    ]
    # Then the six ticks in the trace's minute were added as jobs
    assert jobs == [61, 67]


def test_a_held_back_job_goes_back_until_its_turn_and_does_not_block_its_class():
    from sim.model.lease_gate import LeaseGate

    # Given a class limited to 2/s (a bucket of one token)
    jobs = _jobs([(0.0, 0.01, "api")] * 4)
    rules = class_rules(jobs, Config.from_mapping({"jobs": {"api": {"rate_limit": "2/s"}}}))
    gate = LeaseGate(rules, jobs.job_class, poll_s=0.2)
    # When four are leased at once, Then one runs and the others go back one turn apart, each
    # holding a ticket for its turn (its token taken as a debt)
    assert [gate.admit(j, 0.0) for j in range(4)] == [None, 0.5, 1.0, 1.5]
    assert [gate.ticket_s(j) for j in range(4)] == [None, 0.5, 1.0, 1.5]
    # and a job leased again at its turn starts on its ticket, which is then used
    assert gate.admit(1, 0.5) is None and gate.ticket_s(1) is None
    # and a newcomer queues behind the debt, not ahead of the tickets
    jobs2 = _jobs([(0.0, 0.01, "api")] * 5)
    rules2 = class_rules(jobs2, Config.from_mapping({"jobs": {"api": {"rate_limit": "2/s"}}}))
    gate2 = LeaseGate(rules2, jobs2.job_class, poll_s=0.2)
    assert [gate2.admit(j, 0.0) for j in range(4)] == [None, 0.5, 1.0, 1.5]
    assert gate2.admit(4, 0.6) == pytest.approx(1.4)
    assert gate.held_back == 3


def test_given_back_jobs_come_back_by_priority_then_due_time():
    from sim.model.lease_gate import GivenBack

    back = GivenBack([0, 0, 5, 0])
    for job, due_s in ((0, 2.0), (1, 1.0), (2, 1.5), (3, 9.0)):
        back.put(job, due_s)
    assert back.next_due_s() == 1.0
    assert back.take_due(2.0, limit=10) == [(1.5, 2), (1.0, 1), (2.0, 0)]
    assert len(back) == 1 and back.next_due_s() == 9.0


def test_each_give_back_costs_the_batch_a_round_trip():
    # Given a free job at 0 s (the worker learns the tier mix), then one batch at 1 s of three
    # jobs of a class limited to 1/s and one free job
    rows = [(0.0, 0.01, "free")] + [(1.0, 0.01, "api")] * 3 + [(1.0, 0.01, "free")]
    jobs = _jobs(rows)
    config = Config.from_mapping({"jobs": {"api": {**INLINE, "rate_limit": "1/s"}, "free": INLINE}})
    host = dataclasses.replace(HostProfile.ideal(), fetch_s=0.01)
    env = simpy.Environment()
    model = Model(env, jobs, config, host)
    env.run(until=60)
    # Then the two given back delay the batch's start by two round trips after its lease
    assert math.isclose(model.started_s[4], 1.0 + 0.01 + 2 * 0.01, abs_tol=1e-6)
    assert model.class_gate.held_back >= 2


def test_under_class_rules_the_pool_scaler_counts_the_jobs_still_in_the_backend():
    # Given 40 pool jobs at once on a pool of one process, with a priority (class rules on)
    jobs = _jobs([(0.0, 1.0, "render")] * 40)
    config = Config.from_mapping(
        {"pool_size": 1, "pool_max_size": 4, "jobs": {"render": {"tier": "pool", "priority": 1}}}
    )
    env = simpy.Environment()
    model = Model(env, jobs, config, HostProfile.ideal())
    env.run(until=0.5)
    # Then the worker leased only what its pool can hold, and the scaler sees the rest waiting
    assert len(model.given_back) > 30
    assert model.pool_backlog() == len(model.given_back)


@pytest.mark.parametrize("poll_s", [0.2, 1.0])
def test_a_rate_limited_class_waits_about_as_long_as_a_first_come_first_served_bucket(poll_s):
    # Given 300 Poisson arrivals at 1/s of a class limited to 100/min (60% of it), on an
    # ideal host (the trace of the DECISIONS entry "Issue 16: rate limit reservations")
    trace = poisson_trace(300, 1.0, 0.01, deterministic=True, seed=2)
    trace["job_class"] = "api"
    config = Config.from_mapping(
        {"poll_interval_s": poll_s, "max_concurrent_inline": 300,
         "jobs": {"api": {**INLINE, "rate_limit": "100/min"}}}
    )  # fmt: skip
    # When the twin runs it
    outcome = simulate(prepare(trace), config, HostProfile.ideal()).outcome
    wait = outcome.started_s - outcome.submitted_s
    # Then its p95 wait is within 1.5x of a FCFS bucket's: start = max(arrival, previous
    # start + 1 / rate) (before reservations: 4.92 s against 1.58 s at a poll of 0.2 s)
    previous, fcfs = -math.inf, []
    for arrival in np.sort(trace["submitted_at"].to_numpy()):
        previous = max(arrival, previous + 0.6)
        fcfs.append(previous - arrival)
    assert np.isfinite(wait).all()
    assert np.percentile(wait, 95) <= 1.5 * np.percentile(fcfs, 95)
    assert np.percentile(wait, 50) <= np.percentile(fcfs, 50) + poll_s


def test_a_class_with_both_limits_holds_both_and_every_job_starts_once():
    # Given 40 jobs of 0.3 s at once, limited to 10/s and to 2 at a time
    jobs = _jobs([(0.0, 0.3, "api")] * 40)
    model = _run(jobs, {"api": {**INLINE, "rate_limit": "10/s", "concurrency_limit": 2}})
    starts = sorted(model.started_s)
    # Then all start, never more than two at once, each pair within a job and a poll (a job
    # the full semaphore held back is looked at again after a poll of 0.2 s)
    assert all(math.isfinite(s) for s in starts)
    assert all(b - a >= 0.3 - 1e-9 for a, b in zip(starts, starts[2:], strict=False))
    assert starts[-1] <= 20 * (0.3 + 0.2) + 0.5


def test_a_concurrency_limited_class_starts_in_submit_order_though_held_back_again_and_again():
    # Given 40 jobs of 0.25 s at concurrency_limit=1 arriving faster than they run (most are
    # held back several times, the poll longer than a job)
    jobs = _jobs([(i * 0.05, 0.25, "report") for i in range(40)])
    model = _run(jobs, {"report": {**INLINE, "concurrency_limit": 1}}, poll_interval_s=0.4)
    # Then each takes the freed slot in its turn (its place on the class's wait list,
    # ``kqueue.policy.slot_queue``), and the class runs back to back
    starts = list(model.started_s)
    assert starts == sorted(starts)
    assert max(model.finished_s) <= 40 * 0.25 + 0.4 * 3


def test_in_a_rate_limited_class_a_higher_priority_takes_the_turns_lower_ones_reserved():
    # Given 30 low jobs of a class limited to 5/s at once (their turns reserved up to 5 s
    # ahead), then 5 of priority 5 of the same class at 1 s (a job's own priority)
    rows = [(0.0, 0.001, "api", 0.0)] * 30 + [(1.0, 0.001, "api", 5.0)] * 5
    jobs = dataclasses.replace(_jobs([r[:3] for r in rows]), priority=[r[3] for r in rows])
    model = _run(jobs, {"api": {**INLINE, "rate_limit": "5/s"}})
    high = [model.started_s[i] for i in range(30, 35)]
    low = sorted(model.started_s[i] for i in range(30))
    # Then the high ones start in the next turns (one every 0.2 s from about 1 s), not
    # behind the 25 turns the low ones still hold (about 6 s), and every job starts once
    assert max(high) < 2.5
    assert all(math.isfinite(s) for s in low) and sum(1 for s in low if s > max(high)) >= 15
