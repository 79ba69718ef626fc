"""The sim-vs-real experiment runs small in CI and prints its table (it asserts no accuracy: the
comparison depends on the host's load; the full run's table is the evidence)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import require_redis_server

ROOT = Path(__file__).resolve().parents[1]


def test_sim_vs_real_runs_small_and_prints_its_table(tmp_path):
    require_redis_server()
    done = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "sim_vs_real.py"), "--small"]
        + ["--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=115,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    for workload in ("io", "cpu", "prototype", "memory"):
        assert f"{workload:<10} throughput_per_min" in done.stdout
        assert (tmp_path / f"sim_vs_real_{workload}.png").exists()
    assert "targeted rows missed" in done.stdout
