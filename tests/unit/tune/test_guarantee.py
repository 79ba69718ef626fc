"""The searched budget (``sim.tune.guarantee``): the least that meets every target, reproduced."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from sim.model.replay import prepare, simulate
from sim.model.workload import synth
from sim.tune.class_limits import with_class_limits
from sim.tune.evaluate import Problem
from sim.tune.guarantee import BUDGET_RESOLUTION, adopt, config_with_budget, search_budget
from sim.tune.report import summary_markdown
from sim.tune.search import tune
from sim.tune.slo import DEFAULT_SLOS
from tests.conftest import run_kqueue

HOST = HostProfile(cores=8)


JOBS, RATE_PER_S, SEED = 600, 2.0, 1


@pytest.fixture(scope="module")
def searched():
    """The prototype mix at 120 jobs/min on 8 cores, tuned without a budget (class limits as
    ``kqueue tune`` sets them), budget searched."""
    prepared = prepare(synth(JOBS, RATE_PER_S, seed=SEED))
    base = with_class_limits(prepared, Config())
    problem = Problem(DEFAULT_SLOS, math.inf, HOST, base, seed=0)
    found = tune(prepared, problem, processes=1)
    return prepared, found, search_budget(found, prepared, processes=1)


def test_the_budget_is_the_least_that_passes_to_the_resolution(searched):
    prepared, found, result = searched
    # Then the budget passed every share, and the budget below it failed, within the resolution
    assert result.passed is not None and result.passed.feasible
    assert result.config.memory_budget_mb == result.budget_mb
    assert result.least_mb <= result.budget_mb
    if result.failed is not None:
        assert not result.failed.feasible and result.failed.budget_mb < result.budget_mb
        step = max(BUDGET_RESOLUTION[0], BUDGET_RESOLUTION[1] * result.budget_mb)
        assert result.budget_mb - result.failed.budget_mb <= step
        assert f"at {result.failed.budget_mb:,.0f} MB" in result.binding
    # And every budget tried above the answer passed, every one below failed (bisection)
    for budget_mb, ok in result.tried:
        assert ok == (budget_mb >= result.budget_mb)


def test_the_written_config_reproduces_the_numbers_and_keeps_the_budget(searched):
    prepared, found, result = searched
    # When the written config is simulated again, admission on
    again = simulate(prepared, result.config, HOST)
    # Then it is the search's run, within the budget, and the unbudgeted run is the other column
    assert again.peak_memory_mb == result.budgeted_run.peak_memory_mb <= result.budget_mb
    assert again.overall.p95_wait_s == result.budgeted_run.overall.p95_wait_s
    free = simulate(prepared, result.config.replace(memory_budget_mb=math.inf), HOST)
    assert free.peak_memory_mb == result.unbudgeted_run.peak_memory_mb
    # And the report lines show each tier's p95 wait with and without the budget
    text = "\n".join(result.lines())
    for tier in ("inline", "pool", "isolated"):
        assert f"{tier} p95 wait s" in text
    assert f"{result.budget_mb:,.0f} MB guaranteed" in text and "binding:" in text
    # And the tuner's summary carries them, for the budgeted answer
    adopted = adopt(found, result)
    assert adopted.config == result.config and adopted.evaluation.feasible
    summary = summary_markdown(adopted, result.budgeted_run, result.unbudgeted_run, "jobs.csv",
                               budget=result.lines())  # fmt: skip
    assert "## Memory budget (searched)" in summary and text in summary
    assert f"memory budget per host: {result.budget_mb:,.0f} MB" in summary


@pytest.mark.parametrize(
    ("budget_mb", "expected_mb"),
    [
        (5000.0, {"big": 1024.0, "small": 1024.0}),  # limits already fit
        (800.0, {"big": 660.0, "small": 660.0}),  # capped at budget - worker - one process
        (560.0, {"big": 450.0, "small": 420.0}),  # never below the class's largest job
    ],
)
def test_the_config_as_written_caps_class_limits_and_predicts_cold_classes_safely(
    budget_mb, expected_mb
):
    # Given a trace whose largest jobs are 450 MB (big) and 100 MB (small), limits of 1 GB
    trace = pd.DataFrame(
        {
            "submitted_at": [0.0, 1.0, 2.0, 3.0],
            "job_class": ["big", "big", "small", "small"],
            "duration_s": [2.0] * 4,
            "memory_mb": [300.0, 450.0, 50.0, 100.0],
        }
    )
    config = Config.from_mapping({"jobs": {n: {"max_memory_mb": 1024} for n in ("big", "small")}})
    problem = Problem(DEFAULT_SLOS, budget_mb, HostProfile(), Config())
    # When it is written with the budget
    written = config_with_budget(config, budget_mb, prepare(trace), problem)
    # Then it keeps the budget, each class's limit fits it, and a class without history is
    # predicted at the trace's largest job
    assert written.memory_budget_mb == budget_mb
    assert {n: o.max_memory_mb for n, o in written.jobs.items()} == expected_mb
    assert written.default_job_memory_mb == 450.0


@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    """The fixture's trace as a file."""
    path = tmp_path_factory.mktemp("trace") / "jobs.csv"
    synth(JOBS, RATE_PER_S, seed=SEED).to_csv(path, index=False)
    return path


def test_kqueue_tune_writes_the_searched_budget_and_simulate_reproduces_it(
    tmp_path, small_trace, searched
):
    # Given the fixture's trace and host, no budget asked for
    done = run_kqueue(tmp_path, "tune", "--trace", str(small_trace), "--cores", "8",
                      "--out", "tuned.toml", "--processes", "1", "--no-progress",
                      timeout=110)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Then it prints the budget with the waits it costs, and writes it: the same search, in
    # another process, gives the same config (deterministic)
    assert "MB guaranteed" in done.stdout and "isolated p95 wait s" in done.stdout
    tuned = Config.load(tmp_path / "tuned.toml")
    assert tuned == searched[2].config
    assert f"{tuned.memory_budget_mb:,.0f} MB guaranteed" in done.stdout
    # When the written config is simulated on the same trace
    sim = run_kqueue(tmp_path, "simulate", "--trace", str(small_trace), "--config", "tuned.toml",
                     "--cores", "8", "--json", timeout=110)  # fmt: skip
    assert sim.returncode == 0, sim.stderr
    data = json.loads(sim.stdout)
    # Then its peak and SLO margins are the tuner's (the summary's "budget" column and margins)
    budget_line = next(line for line in done.stdout.splitlines() if "peak memory MB" in line)
    assert budget_line.split()[-1] == f"{data['peak_memory_mb']:,.0f}"
    margins = next(line for line in done.stdout.splitlines() if line.startswith("SLO margins"))
    for name, margin in data["slo_margins"][0].items():
        if name != "host" and margin is not None:
            assert f"{name} {margin:+.0%}" in margins
    assert data["meets_targets"] and data["peak_memory_mb"] <= tuned.memory_budget_mb
