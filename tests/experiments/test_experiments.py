"""Every experiment runs in CI on small inputs and prints its table."""

from __future__ import annotations

import pytest

from tests.conftest import run_experiment


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("sim_theory.py", ["--jobs", "3000"], "M/D/1"),
        ("sim_speed.py", ["--jobs", "3000"], "median"),
        ("sim_fingerprint.py", ["--jobs", "300"], "finished=300"),
        ("seed_target.py", ["--jobs", "3000", "--live-minutes", "0"], "prototype, 1 host"),
        # the live part, compressed: tuned with the budget searched, replayed, every job done
        (
            "seed_target.py",
            ["--only-live", "--live-minutes", "0.1", "--live-time-scale", "0.1"],
            "live, this box",
        ),
        ("heap_trim.py", ["--small"], "job after a trim"),
    ],
)
def test_experiment_runs_small(script, args, expected):
    assert expected in run_experiment(script, *args, timeout=110).stdout
