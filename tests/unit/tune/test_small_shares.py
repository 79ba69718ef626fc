"""Shares too small to simulate: the tuner answers with the bound, fast, and says why (issue 14).

On HPC2N at 1000/min the memory bound asks for about 9,700 hosts: about 21 jobs a host. The
tuner used to fall back to searching the whole trace on one overloaded host (minutes per
simulation). It now returns the bound, unverified, with a config searched on one small share.
"""

from __future__ import annotations

import numpy as np
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare
from sim.model.theory import poisson_trace
from sim.tune import split
from sim.tune.bounds import host_bounds
from sim.tune.evaluate import Problem
from sim.tune.host_search import MIN_SHARE_JOBS
from sim.tune.search import tune
from sim.tune.slo import DEFAULT_SLOS
from sim.tune.space import profile
from tests.conftest import run_kqueue


def _long_big_jobs(jobs: int = 600):
    # 2 jobs/s of 60 s and 50 MB each: about 6,000 MB in use against 400 MB per host
    trace = poisson_trace(jobs, 2.0, 60.0, seed=3)
    trace["memory_mb"] = 50.0
    return prepare(trace)


def test_a_bound_that_leaves_each_host_too_few_jobs_is_the_answer_unverified():
    # Given a trace whose memory bound leaves each host fewer than MIN_SHARE_JOBS jobs
    prepared = _long_big_jobs()
    problem = Problem(DEFAULT_SLOS, 400.0, HostProfile.load(None, cores=8), Config())
    bound = max(host_bounds(profile(prepared, problem.base), problem).values())
    assert len(prepared.jobs) / bound < MIN_SHARE_JOBS
    # When it is tuned
    found = tune(prepared, problem, processes=1)
    # Then the count is that bound, not verified, and the reason says the shares are too small
    assert found.hosts == bound and not found.hosts_verified
    assert "too few to simulate meaningfully" in found.unverified
    assert f"{bound:,} hosts" in found.unverified
    # And the config was searched on one host's share at that count, not on the whole trace
    assert len(found.share.jobs) < MIN_SHARE_JOBS
    assert found.checks.keys() <= {bound}
    assert "below the memory bound" in found.what_sets_count()


def test_the_transient_note_names_a_trace_that_ends_before_its_jobs_do():
    trace = poisson_trace(400, 2.0, 3_000.0, seed=4)  # 200 s of arrivals, 3,000 s jobs
    trace["memory_mb"] = 50.0
    prepared = prepare(trace)
    problem = Problem(DEFAULT_SLOS, 400.0, HostProfile.load(None, cores=8), Config())
    found = tune(prepared, problem, processes=1)
    assert not found.hosts_verified
    assert "never reaches a steady state" in found.unverified


@pytest.mark.parametrize("hosts", [split.ROTATION_TABLE_MAX_HOSTS + 7])
def test_the_split_over_many_hosts_is_the_same_without_the_tie_break_table(hosts, monkeypatch):
    prepared = _long_big_jobs(3_000)
    without_table = split.owners(prepared, hosts, seed=5)
    monkeypatch.setattr(split, "ROTATION_TABLE_MAX_HOSTS", hosts + 1)
    with_table = split.owners(prepared, hosts, seed=5)
    assert np.array_equal(without_table, with_table)
    assert len(set(without_table.tolist())) > hosts // 2  # the jobs spread over the hosts


def test_the_cli_reports_a_bound_answer_without_simulating_its_empty_shares(tmp_path):
    # Given a short trace at a rate whose CPU bound gives most hosts no job at all
    trace = poisson_trace(300, 2.0, 600.0, seed=6)
    trace["memory_mb"] = 50.0
    trace.to_csv(tmp_path / "jobs.csv", index=False)
    # When it is tuned with a report and the budget search (both simulate every host's share)
    done = run_kqueue(
        tmp_path, "tune", "--trace", "jobs.csv", "--rate", "1000/min", "--cores", "2",
        "--memory-budget", "4GB", "--report", "report", "--out", "tuned.toml",
    )  # fmt: skip
    # Then the answer is the bound, written with the budget given, and the report is written
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(at least; not verified)" in done.stdout
    assert "memory budget: not searched" in done.stdout
    assert (tmp_path / "report" / "summary.md").exists()
    assert "memory_budget_mb = 4096" in (tmp_path / "tuned.toml").read_text()
