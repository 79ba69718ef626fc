"""Impossible jobs are named before any search; the tuner writes per-class limits (issue 14)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kqueue.errors import ConfigError
from kqueue.policy import Config, HostProfile, read_trace
from sim.model.replay import prepare
from sim.model.workload import synth
from sim.tune.budget import with_budget
from sim.tune.class_limits import MEMORY_MARGIN, TIMEOUT_MARGIN, round_up, with_class_limits
from sim.tune.impossible import impossible_jobs, without
from tests.conftest import run_kqueue

HPC2N = Path("/work/shared/traces/HPC2N-2002-2.1-cln.csv.gz")


def _with_giants(tmp_path) -> Path:
    trace = synth(600, 2.0, seed=4)
    trace.loc[[10, 20], "memory_mb"] = [9_000.0, 7_000.0]
    trace.loc[[10, 20], "job_class"] = "giant"
    path = tmp_path / "jobs.csv"
    trace.to_csv(path, index=False)
    return path


def test_jobs_bigger_than_a_host_are_named_with_count_largest_and_classes(tmp_path):
    prepared = prepare(read_trace(_with_giants(tmp_path)))
    found = impossible_jobs(prepared, HostProfile(), 4096.0)
    assert found.count == 2 and found.largest_mb == 9_000.0 and found.classes == {"giant": 2}
    assert "2 jobs cannot run on any host" in found.describe()
    assert "largest job 9,000 MB" in found.describe() and "giant (2)" in found.describe()
    assert len(without(prepared, found).jobs) == 598
    assert impossible_jobs(prepared, HostProfile(), float("inf")).count == 0


def test_tune_refuses_impossible_jobs_or_drops_them_when_asked(tmp_path):
    path = _with_giants(tmp_path)
    args = ("tune", "--trace", str(path), "--cores", "8", "--memory-budget", "4GB",
            "--no-progress", "--seeds", "1")  # fmt: skip
    refused = run_kqueue(tmp_path, *args)
    assert refused.returncode == 2
    assert "2 jobs cannot run on any host" in refused.stderr
    assert "--drop-impossible" in refused.stderr
    planned = run_kqueue(tmp_path, *args, "--drop-impossible", timeout=120)
    assert planned.returncode == 0, planned.stderr
    assert "note: dropped (--drop-impossible): 2 jobs" in planned.stdout
    # and simulate leaves out the same jobs, so nothing is killed for memory
    replayed = run_kqueue(tmp_path, "simulate", "--trace", str(path), "--config", "kqueue.toml",
                          "--cores", "8", "--memory-budget", "4GB", "--drop-impossible",
                          "--json")  # fmt: skip
    assert replayed.returncode == 0, replayed.stderr
    assert "dropped (--drop-impossible): 2 jobs" in replayed.stderr
    data = json.loads(replayed.stdout)
    assert data["jobs"] == 598 and data["killed_memory"] == 0 and data["dead"] == 0


@pytest.mark.skipif(not HPC2N.exists(), reason="the shared HPC2N trace is not on this machine")
def test_the_hpc2n_log_names_its_three_oversize_jobs():
    with gzip.open(HPC2N) as stream:
        frame = pd.read_csv(stream)
    big = frame[frame["memory_mb"] + 140 > 65_536]
    assert len(big) == 3 and big["memory_mb"].max() == 108_000


def test_limits_sit_above_each_class_tail_and_round_trip_through_the_toml():
    prepared = prepare(synth(2000, 2.0, seed=3))
    config = with_class_limits(prepared, Config())
    jobs = prepared.jobs
    names = np.asarray(jobs.job_class, dtype=object)
    for name in set(jobs.job_class):
        options = config.job_options(name)
        longest = np.asarray(jobs.duration_s)[names == name].max()
        largest = np.asarray(jobs.memory_mb)[names == name].max()
        assert options.timeout_s >= max(TIMEOUT_MARGIN * longest, 300.0)
        assert options.max_memory_mb >= max(MEMORY_MARGIN * largest, 1024.0)
    assert Config.from_mapping(__import__("tomllib").loads(config.to_toml())) == config
    assert round_up(1234.5) == 1300.0 and round_up(0.0123) == 0.013


def test_memory_limits_are_capped_below_the_budget_but_never_below_the_largest_job():
    # Given a class whose largest job (5,760 MB) x 1.25 would exceed a 6,400 MB budget
    trace = synth(300, 2.0, seed=3)
    trace.loc[trace["job_class"] == "heavy", "memory_mb"] = 5_760.0
    trace.loc[trace.index[0], "memory_mb"] = 100.0  # a fast job stays small
    prepared = prepare(trace)
    budget_mb, overhead_mb = 6_400.0, 140.0
    config = with_class_limits(prepared, Config(), budget_mb - overhead_mb)
    # Then its limit is the budget less the worker and one process, still above its jobs
    assert config.job_options("heavy").max_memory_mb == budget_mb - overhead_mb
    # And the budget can be written into that config (the runtime refuses a limit above it)
    kept = with_budget(config, budget_mb, prepared.jobs.memory_mb)
    assert kept.memory_budget_mb == budget_mb
    with pytest.raises(ConfigError, match="above memory_budget_mb"):
        with_budget(with_class_limits(prepared, Config()), budget_mb, prepared.jobs.memory_mb)


def test_tune_writes_the_limits_in_job_tables_and_kills_nothing(tmp_path):
    trace = synth(1500, 2.0, seed=5)
    trace.loc[trace["job_class"] == "heavy", "duration_s"] *= 10  # past the default 300 s
    path = tmp_path / "jobs.csv"
    trace.to_csv(path, index=False)
    done = run_kqueue(tmp_path, "tune", "--trace", str(path), "--cores", "16", "--no-progress",
                      "--seeds", "1", "--out", "tuned.toml", timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    tuned = Config.load(tmp_path / "tuned.toml")
    assert tuned.job_options("heavy").timeout_s > 300.0
    assert "limits set for 3 classes" in done.stdout and "killed 0" in done.stdout
    kept = run_kqueue(tmp_path, "tune", "--trace", str(path), "--cores", "16", "--no-progress",
                      "--seeds", "1", "--keep-limits", "--out", "kept.toml",
                      timeout=120)  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    assert "limits: the base config's (--keep-limits); they kill" in kept.stdout
    assert "they kill 0 attempts" not in kept.stdout


def test_an_slo_on_an_empty_group_keeps_the_defaults_and_is_reported_unchecked(tmp_path):
    trace = synth(800, 2.0, seed=6)
    trace = trace[trace["job_class"] == "fast"]  # every job inline by the default routing
    path = tmp_path / "fast.csv"
    trace.to_csv(path, index=False)
    done = run_kqueue(tmp_path, "tune", "--trace", str(path), "--cores", "4", "--no-progress",
                      "--slo", "pool.p95_wait=10s", "--seeds", "1", "--report", "report",
                      timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning: no jobs in the isolated, pool groups" in done.stderr
    assert "pool.p95_wait no jobs (not checked)" in done.stdout
    assert "inline.p95_wait +" in done.stdout  # the default still binds, and was checked
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "no jobs (not checked)" in summary and "inline.p95_wait <= 1 s" in summary
