"""Every experiment runs in CI on small inputs and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("sim_theory.py", ["--jobs", "3000"], "M/D/1"),
        ("sim_speed.py", ["--jobs", "3000"], "median"),
        ("seed_target.py", ["--jobs", "3000"], "prototype, 1 host"),
    ],
)
def test_experiment_runs_small(script, args, expected):
    done = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
