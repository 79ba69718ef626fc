"""The tiers benchmark runs in CI on small counts (it reports ratios; nothing here checks speed)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_bench_tiers_small_prints_its_table():
    done = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "bench_tiers.py"), "--small"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stderr
    for scenario in (
        "pool vs Pool(2).map",
        "isolated, 2 at once",
        "isolated / bare forks",
        "inline vs ideal",
        "memory",
    ):
        assert scenario in done.stdout
