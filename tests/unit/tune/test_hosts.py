"""Many hosts, checked (issue 14): one seeded split for ``tune`` and ``simulate --hosts``."""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
import pytest

from sim.cli import register, run_simulate
from sim.model.replay import prepare
from sim.model.workload import synth
from sim.progress import TuneProgress
from sim.tune.search import tune
from sim.tune.split import owners, shares


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(list(argv))


@pytest.fixture(scope="module")
def prepared():
    return prepare(synth(3000, 2.0, seed=2))


def test_the_split_is_seeded_and_every_share_together_is_the_trace(prepared):
    a, b, c = (owners(prepared, 5, seed) for seed in (0, 0, 1))
    assert (a == b).all() and (a != c).any()
    parts = shares(prepared, 5, 0)
    assert sum(len(p.jobs) for p in parts) == len(prepared.jobs)
    # the balanced rule (pull) spreads each class's jobs in flight, so no share is starved
    counts = np.bincount(a, minlength=5)
    assert counts.min() > 0.7 * counts.mean()
    random = owners(prepared, 5, 0, rule="random")
    assert (random != a).any()
    with pytest.raises(ValueError, match="unknown split rule"):
        owners(prepared, 5, 0, rule="hash")


def test_simulate_hosts_gives_exactly_the_tuners_numbers_for_the_same_seed(tmp_path, capsys):
    # Given a trace that needs more than one 2-core host, tuned over two seeds
    trace = tmp_path / "jobs.csv"
    synth(3000, 2.0, seed=2).to_csv(trace, index=False)
    targets = ["--cores", "2", "--memory-budget", "4GB"]
    args = _parse("tune", "--trace", str(trace), *targets, "--seeds", "2", "--seed", "5")
    from sim.cli import _tune_inputs

    prepared, problem, _ = _tune_inputs(args)
    found = tune(prepared, problem, processes=1)
    assert found.hosts >= 2 and found.hosts_verified
    # the count was checked with the config as written: the budget's admission on
    assert found.config.memory_budget_mb == 4096 and found.check.config == found.config
    config = tmp_path / "tuned.toml"
    config.write_text(found.config.to_toml())
    # When simulate replays that config on the same number of hosts with the same seed
    for seed in (5, 6):
        sim_args = _parse("simulate", "--trace", str(trace), "--config", str(config), *targets,
                          "--hosts", str(found.hosts), "--seed", str(seed), "--json")  # fmt: skip
        assert run_simulate(sim_args) == 0
        data = json.loads(capsys.readouterr().out)
        # Then every host's numbers are the tuner's, exactly
        tuned = [r.evaluation for r in found.check.runs if r.seed == seed]
        assert len(data["hosts"]) == found.hosts == len(tuned)
        for host, evaluation in zip(data["hosts"], tuned, strict=True):
            assert host["peak_memory_mb"] == evaluation.peak_memory_mb
            assert host["stable"] == evaluation.stable
        for margins, evaluation in zip(data["slo_margins"], tuned, strict=True):
            assert [margins[name] for name, _ in evaluation.margins] == [
                m for _, m in evaluation.margins
            ]
        assert data["meets_targets"] is True
        assert data["killed_timeout"] == data["killed_memory"] == data["dead"] == 0
        assert data["worst"]["host"] in range(1, found.hosts + 1)
    # And the count below the answer was checked, and what fails there is named
    assert found.below is not None and not found.below.feasible
    assert f"at {found.hosts - 1} hosts" in found.what_sets_count()


def test_simulate_says_whether_one_host_meets_the_targets(tmp_path, capsys):
    trace = tmp_path / "jobs.csv"
    synth(400, 1.0, seed=1).to_csv(trace, index=False)
    args = _parse("simulate", "--trace", str(trace), "--cores", "8", "--memory-budget", "100MB")
    assert run_simulate(args) == 0
    out = capsys.readouterr().out
    assert "does NOT meet the targets: peak memory" in out and "over the 100 MB budget" in out
    args = _parse("simulate", "--trace", str(trace), "--cores", "8", "--json")
    assert run_simulate(args) == 0
    assert json.loads(capsys.readouterr().out)["meets_targets"] is True


@pytest.mark.parametrize("command", ["simulate", "tune"])
def test_cores_zero_is_refused_and_the_default_host_is_stated(command, capsys):
    with pytest.raises(SystemExit):
        _parse(command, "--trace", "x.csv", "--cores", "0")
    assert "--cores: must be at least 1, got 0" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args([command, "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default: 4 cores" in help_text
    assert "the defaults (inline 1 s, pool 10 s, isolated 60 s p95 waits) always bind" in help_text


def test_tune_progress_never_goes_silent_for_more_than_its_quiet_time():
    out = io.StringIO()
    with TuneProgress(stream=out, quiet_s=0.3) as progress:
        report = progress("[3 hosts, seed 0, host 1] stage 1/2 (5,000 jobs)")
        report(1, 10)
        time.sleep(1.2)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("tune [3 hosts, seed 0, host 1] stage 1/2")
    repeats = [line for line in lines if line.endswith(" s)") and "running" in line]
    assert len(repeats) >= 2 and "[3 hosts, seed 0, host 1]" in repeats[0]
