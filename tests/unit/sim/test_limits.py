"""The twin applies the runtime's limits (``kqueue.policy.limits``) as the tiers do (issue 14)."""

from __future__ import annotations

import pandas as pd
import pytest

from kqueue.policy import Config, HostProfile, JobOptions, Status, Tier, resolve_job
from kqueue.policy.limits import after_kill_s, can_limit, kill_status
from sim.model.replay import simulate


def _trace(rows: list[tuple[float, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["submitted_at", "job_class", "duration_s", "memory_mb"])


def _config(**jobs: dict) -> Config:
    return Config.from_mapping({"max_attempts": 3, "retry_backoff_s": 2.0, "jobs": jobs})


def test_the_rule_kills_only_on_limited_tiers_and_memory_first():
    settings = resolve_job(Config(timeout_s=10.0, max_memory_mb=100.0), "job", JobOptions())
    assert not can_limit(Tier.INLINE)
    assert kill_status(Tier.INLINE, 99.0, 999.0, settings) is None
    assert kill_status(Tier.POOL, 11.0, 50.0, settings) is Status.TIMEOUT
    assert kill_status(Tier.ISOLATED, 11.0, 101.0, settings) is Status.MEMORY
    assert kill_status(Tier.POOL, 10.0, 100.0, settings) is None
    # the runtime's backoff (1 s, doubling), then dead after max_attempts (3)
    assert [after_kill_s(settings, a) for a in (1, 2, 3)] == [1.0, 2.0, None]


def test_a_pool_job_past_its_timeout_is_retried_with_backoff_then_dead_lettered():
    # Given one pooled job of 50 s whose class has a 10 s timeout and 3 attempts
    config = _config(slow={"tier": "pool", "timeout_s": 10.0})
    result = simulate(_trace([(0.0, "slow", 50.0, 10.0)]), config, HostProfile.ideal())
    # Then each attempt is stopped at 10 s, retried after 2 s then 4 s, then dead-lettered
    assert result.killed_timeout == 3 and result.killed_memory == 0
    assert result.dead == 1
    assert result.kills == {"pool": {"timeout": 3}}
    assert result.dead_by_tier == {"pool": {"timeout": 1}}
    assert result.makespan_s == pytest.approx(10 + 2 + 10 + 4 + 10)
    assert "KILLED by limits: 3 attempts for time" in result.table()


def test_an_isolated_job_over_its_memory_limit_is_killed_and_holds_at_most_the_limit():
    config = _config(big={"tier": "isolated", "max_memory_mb": 100.0, "max_attempts": 1})
    host = HostProfile.load(None, **{**HostProfile.ideal().to_dict(), "isolated_process_mb": 0.0})
    result = simulate(_trace([(0.0, "big", 5.0, 500.0)]), config, host)
    assert result.killed_memory == 1 and result.dead == 1
    assert result.dead_by_tier == {"isolated": {"memory": 1}}
    assert result.peak_memory_mb <= 100.0


def test_inline_jobs_cannot_be_limited():
    config = _config(fast={"tier": "inline", "timeout_s": 1.0, "max_memory_mb": 1.0})
    result = simulate(_trace([(0.0, "fast", 5.0, 50.0)]), config, HostProfile.ideal())
    assert result.killed_timeout == result.killed_memory == result.dead == 0
    assert result.finished == 1


def test_a_job_within_its_limits_is_untouched():
    config = _config(ok={"tier": "pool", "timeout_s": 10.0, "max_memory_mb": 100.0})
    result = simulate(_trace([(0.0, "ok", 5.0, 50.0)]), config, HostProfile.ideal())
    assert result.killed_timeout == result.killed_memory == result.dead == 0
    assert "limits killed no job" in result.table()
    assert result.to_dict()["kills"] == {}


def test_a_timed_out_attempt_teaches_the_history_as_the_runtime_does():
    # Given an auto-routed class whose jobs run 50 s against a 10 s timeout, one attempt each,
    # with the pool tier up to 8 s estimates: the first three go by the 5 s default (pool)
    config = Config.from_mapping(
        {"max_attempts": 1, "pooled_max_duration_s": 8.0, "jobs": {"slow": {"timeout_s": 10.0}}}
    )
    rows = [(t * 20.0, "slow", 50.0, 10.0) for t in range(5)]
    trace = simulate(_trace(rows), config, HostProfile.ideal()).trace()
    # Then, as the runtime's recorder (``kqueue.policy.estimator.LEARNS_FROM``), their 10 s
    # timeouts are durations the history learns: the next jobs are estimated at 10 s and go
    # isolated, not pooled by the default forever
    assert list(trace["tier"]) == ["pool"] * 3 + ["isolated"] * 2
    assert list(trace["estimated_s"])[3:] == pytest.approx([10.0, 10.0])
