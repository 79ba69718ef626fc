"""experiments/gil_switch.py runs one round in CI and prints both ratios (no speed asserted)."""

from __future__ import annotations

from tests.conftest import run_experiment


def test_gil_switch_runs_a_round_and_prints_both_measures():
    done = run_experiment("gil_switch.py", "--rounds", "1")
    assert "GIL hand-over (ms)" in done.stdout, done.stdout
    assert "two spinning threads (s)" in done.stdout, done.stdout
