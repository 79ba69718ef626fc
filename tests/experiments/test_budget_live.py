"""experiments/budget_live.py runs small and passes its own criterion."""

from __future__ import annotations

from tests.conftest import run_experiment


def test_budget_live_runs_small_and_keeps_the_budget():
    done = run_experiment("budget_live.py", "--small", timeout=170)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "peak within budget+5% (1575 MB) and every job completed: PASS" in done.stdout
