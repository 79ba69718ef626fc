"""The atheris harnesses run clean for a bounded number of coverage-guided inputs.

Each harness (``atheris_<parser>.py``) runs in its own process, as a developer would run it for
longer: ``PYTHONPATH=. python tests/fuzz/atheris_trace.py -atheris_runs=100000``. Here it gets
``RUNS`` inputs from a fixed seed, so CI stays bounded and a failure reproduces. atheris ships
wheels for Linux x86-64 only (it is in the dev extra there): elsewhere the test skips, and under
``CI=true`` on Linux x86-64 a missing atheris fails it.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
#: Inputs per harness: the trace reader runs pandas on a file per input, about 1 ms each.
RUNS = {"message": 2000, "config": 2000, "trace": 1000}


def require_atheris() -> None:
    """Skip without atheris; fail under ``CI=true`` where the dev extra installs it."""
    if importlib.util.find_spec("atheris") is not None:
        return
    supported = sys.platform == "linux" and platform.machine() == "x86_64"
    message = "atheris is not installed: pip install -e '.[dev]' (wheels for Linux x86-64)"
    if os.environ.get("CI") == "true" and supported:
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.parametrize("parser", ["message", "trace", "config"])
def test_harness_runs_clean(tmp_path, parser):
    require_atheris()
    command = [
        sys.executable,
        str(HERE / f"atheris_{parser}.py"),
        f"-atheris_runs={RUNS[parser]}",
        "-seed=1",
        "-timeout=20",  # an input that takes longer is a hang: libFuzzer reports it
        f"-artifact_prefix={tmp_path}/",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100
    )
    crashes = sorted(p.name for p in tmp_path.glob("crash-*")) + sorted(
        p.name for p in tmp_path.glob("timeout-*")
    )
    assert done.returncode == 0 and not crashes, f"{crashes}\n{done.stderr[-4000:]}"
    assert f"Done {RUNS[parser]} in" in done.stderr
