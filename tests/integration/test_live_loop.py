"""The closed loop: run for real, tune on the live trace, run the tuned config for real.

``kqueue replay`` runs a workload on a real worker with the default settings and records the
live trace; ``kqueue calibrate`` measures the host; ``kqueue tune`` recommends a config from the
live trace; the workload runs again with that config. The measured peak memory must improve in
the direction the simulator predicted for the two configs.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib

import numpy as np
import pytest

from kqueue.policy import HostProfile
from tests.conftest import run_kqueue

pytestmark = pytest.mark.slow


def write_workload(path, jobs: int = 60, rate_per_s: float = 6.0, seed: int = 7) -> None:
    """Poisson arrivals of a fast mail class and a slower, memory-hungry report class."""
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate_per_s, jobs))
    lines = ["submitted_at,job_class,duration_s,cpu_s,memory_mb"]
    for i, submitted_at in enumerate(arrivals):
        report = i % 3 == 0
        duration_s = 0.6 if report else 0.05
        memory_mb = 20 if report else 1
        lines.append(
            f"{submitted_at:.4f},{'report' if report else 'mail'},{duration_s},"
            f"{duration_s / 10:.4f},{memory_mb}"
        )
    path.write_text("\n".join(lines) + "\n")


def replay(folder, name: str, *extra: str) -> dict:
    result = run_kqueue(
        folder,
        "replay",
        "--trace",
        "work.csv",
        "--trace-out",
        f"{name}.csv",
        "--backend",
        f"sqlite:///{folder / (name + '.db')}",
        *extra,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def predicted_peak_mb(folder, *extra: str) -> float:
    result = run_kqueue(
        folder,
        "simulate",
        "--trace",
        "live-default.csv",
        "--host",
        "host.toml",
        "--json",
        "--no-progress",
        *extra,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["peak_memory_mb"]


@pytest.mark.timeout(300)
def test_tuning_a_live_trace_improves_the_next_live_run_as_predicted(tmp_path):
    # Given a workload run for real with the default settings, and this host calibrated
    write_workload(tmp_path / "work.csv")
    before = replay(tmp_path, "live-default")
    assert before["by_status"] == {"ok": 60}
    assert run_kqueue(tmp_path, "calibrate", "--out", "host.toml").returncode == 0
    written = tomllib.loads((tmp_path / "host.toml").read_text())
    assert set(written) == {f.name for f in dataclasses.fields(HostProfile)}
    # When kqueue tune reads the live trace and writes a config
    tuned = run_kqueue(
        tmp_path,
        "tune",
        "--trace",
        "live-default.csv",
        "--host",
        "host.toml",
        "--out",
        "tuned.toml",
        "--no-progress",
        timeout=120,
    )
    assert tuned.returncode == 0, tuned.stderr
    # Then the simulator predicts less peak memory for it than for the defaults ...
    predicted_default = predicted_peak_mb(tmp_path)
    predicted_tuned = predicted_peak_mb(tmp_path, "--config", "tuned.toml")
    assert predicted_tuned < predicted_default
    # ... and the same workload, run for real with it, measures less too
    after = replay(tmp_path, "live-tuned", "--config", "tuned.toml")
    assert after["by_status"] == {"ok": 60}
    print(
        f"peak memory: predicted {predicted_default:.0f} -> {predicted_tuned:.0f} MB, "
        f"measured {before['peak_memory_mb']:.0f} -> {after['peak_memory_mb']:.0f} MB"
    )
    assert after["peak_memory_mb"] < before["peak_memory_mb"]
