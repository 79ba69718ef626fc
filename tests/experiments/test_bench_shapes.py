"""experiments/bench_shapes.py runs small in CI and prints every ratio (no speed asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT, require_redis_server, run_experiment


@pytest.mark.redis
def test_bench_shapes_runs_small_and_prints_its_ratios():
    require_redis_server()
    done = run_experiment("bench_shapes.py", "--small")
    for expected in (
        "kqueue / bare INCR loop",
        "noop, worker CPU/job (us)",
        "async, worker CPU/job (us)",
        "kqueue async / bare async loop",
        "sleep, ideal / from start",
        "sleep, start to first job (ms)",
        "cpu, raw Pool(2).map time / ours",
        "kqueue isolated / bare fork loop",
        "dispatch() / bare LPUSH",
        "dispatch_many / dispatch()",
    ):
        assert expected in done.stdout, done.stdout


def test_bench_shapes_refuses_an_unknown_workload():
    script = ROOT / "experiments" / "bench_shapes.py"
    command = [sys.executable, str(script), "--only", "noop,teleport"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "unknown workload(s) teleport" in done.stderr
