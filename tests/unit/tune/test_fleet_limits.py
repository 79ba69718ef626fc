"""A class's fixed shared limit in a plan: split over the hosts, refused when the trace offers
more than it lets through, and kept in the written config (issue 16, item 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile
from kqueue.policy.ratelimit import parse_rate_limit
from sim.model.replay import prepare, simulate
from sim.model.rules import host_part
from sim.model.theory import poisson_trace
from sim.tune import split
from sim.tune.fleet_limits import fixed_limits, with_waits
from tests.conftest import run_kqueue

API_LIMIT = {"jobs": {"api": {"tier": "inline", "rate_limit": "10/s"}}}


def _api_trace(jobs: int, rate_per_s: float, seed: int = 1):
    trace = poisson_trace(jobs, rate_per_s, 0.01, deterministic=True, seed=seed)
    trace["job_class"] = "api"
    return trace


def test_one_hosts_part_of_a_shared_limit_is_its_part_of_the_classes_jobs():
    config = Config.from_mapping(
        {"jobs": {"api": {"rate_limit": "100/min", "concurrency_limit": 3}, "other": {}}}
    )
    half = host_part(config, {"api": 0.5, "other": 0.5})
    options = half.job_options("api")
    assert parse_rate_limit(options.rate_limit, "test").rate_per_s == pytest.approx(50 / 60)
    assert options.concurrency_limit == 1  # floor(1.5): never more than the fleet's 3
    assert host_part(config, {"api": 0.1}).job_options("api").concurrency_limit == 1
    assert host_part(config, {"api": 1.0}) is config and host_part(config, {}) is config


def test_two_hosts_together_start_no_more_than_the_fleets_one_rate_limit():
    # Given 1,200 jobs offered at 20/s to a class whose rate_limit (10/s) every worker shares
    prepared = prepare(_api_trace(1200, 20.0))
    config = Config.from_mapping(API_LIMIT)
    # When the trace is split over two hosts and each share is simulated
    starts = np.concatenate(
        [
            simulate(part, config, HostProfile.ideal()).outcome.started_s + part_origin
            for part, part_origin in _shares_with_origins(prepared, hosts=2)
        ]
    )
    # Then the fleet starts about 10 jobs a second, not 10 per host
    starts.sort()
    rate_per_s = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 9.0 < rate_per_s < 10.5, rate_per_s


def _shares_with_origins(prepared, hosts: int):
    for part in split.shares(prepared, hosts, seed=0):
        yield part, part.origin_s - prepared.origin_s


def test_a_class_offered_more_than_its_limit_is_named_before_any_search():
    prepared = prepare(_api_trace(600, 20.0))
    (limit,) = fixed_limits(prepared, Config.from_mapping(API_LIMIT))
    assert limit.saturated and limit.load == pytest.approx(2.0, rel=0.05)
    assert "its backlog grows whatever the host count" in limit.describe()
    fits = fixed_limits(prepare(_api_trace(600, 5.0)), Config.from_mapping(API_LIMIT))[0]
    waited = with_waits(prepare(_api_trace(600, 5.0)), Config.from_mapping(API_LIMIT), fits)
    assert not waited.saturated and waited.p95_wait_s is not None
    assert "its waits are the limit's" in waited.describe()


def _mixed_csv(tmp_path, api_rate_per_s: float):
    other = poisson_trace(1200, 4.0, 0.05, seed=3)  # 300 s of other work
    api = _api_trace(int(api_rate_per_s * 300), api_rate_per_s, seed=2)
    other["job_class"] = "work"
    span_s = float(other["submitted_at"].max())
    api["submitted_at"] = api["submitted_at"] * span_s / float(api["submitted_at"].max())
    trace = pd.concat([api, other], ignore_index=True).sort_values("submitted_at")
    path = tmp_path / "jobs.csv"
    trace.to_csv(path, index=False)
    (tmp_path / "base.toml").write_text('[jobs."api"]\nrate_limit = "100/min"\n')
    return path


def test_tune_refuses_a_class_its_fixed_limit_cannot_hold_or_plans_without_it(tmp_path):
    path = _mixed_csv(tmp_path, api_rate_per_s=2.0)  # 120/min against 100/min
    args = ("tune", "--trace", str(path), "--config", "base.toml", "--cores", "4",
            "--no-progress", "--seeds", "1")  # fmt: skip
    refused = run_kqueue(tmp_path, *args, timeout=120)
    assert refused.returncode != 0
    assert "class 'api' (rate_limit 100/min, fixed, shared by every host)" in refused.stderr
    assert "no host count can work" in refused.stderr
    dropped = run_kqueue(tmp_path, *args, "--drop-impossible", timeout=120)
    assert dropped.returncode == 0, dropped.stderr
    assert "dropped (--drop-impossible): class 'api'" in dropped.stdout


def test_tune_keeps_a_fixed_limit_it_can_hold_and_says_what_it_does_to_the_waits(tmp_path):
    path = _mixed_csv(tmp_path, api_rate_per_s=1.0)  # about 60/min against 100/min
    done = run_kqueue(tmp_path, "tune", "--trace", str(path), "--config", "base.toml",
                      "--cores", "4", "--no-progress", "--seeds", "1", "--out", "tuned.toml",
                      timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert Config.load(tmp_path / "tuned.toml").job_options("api").rate_limit == "100/min"
    assert "its waits are the limit's: p95" in done.stdout
