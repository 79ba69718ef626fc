"""The shared-logs table (issue 14) runs on a cut of a real log and prints its row."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_experiment

TRACES = Path("/work/shared/traces")


@pytest.mark.skipif(not TRACES.exists(), reason="the shared traces are not on this machine")
def test_shared_logs_prints_a_row_per_log_and_rate():
    out = run_experiment("shared_logs.py", "--only", "KTH", "--rates", "own,1000/min",
                         "--jobs", "2000", "--seeds", "1", timeout=110).stdout  # fmt: skip
    rows = [line for line in out.splitlines() if line.startswith("| KTH")]
    assert len(rows) == 2
    own, fast = rows
    assert "| own | 2,000 |" in own and "| 1000/min | 2,000 |" in fast
    assert " s |" in own and "timeout_s" in own
