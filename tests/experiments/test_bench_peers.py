"""The peers benchmark skips cleanly, saying why, where Dramatiq and Huey are not installed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "bench_redis_peers.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--jobs", "10", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(90)
def test_without_peers_python_it_says_so_and_exits_0():
    done = _run()
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped: no --peers-python given" in done.stdout


@pytest.mark.timeout(90)
def test_an_interpreter_without_the_peers_skips_each_with_its_import_error(tmp_path):
    # Given a stand-in interpreter whose every import fails, When the benchmark is asked to
    # use it, Then it names each peer and the import error, and runs nothing.
    fake = tmp_path / "python"
    fake.write_text(f"#!/bin/sh\nexec {sys.executable} -c 'raise ImportError(\"no peers here\")'\n")
    fake.chmod(0o755)
    done = _run("--peers-python", str(fake))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped Dramatiq" in done.stdout and "skipped Huey" in done.stdout
    assert "no peers here" in done.stdout
    assert "skipped: no peer is importable" in done.stdout
