"""What ``kqueue run`` imports before its first job: nothing the first job does not need.

Start-up time is mostly imports (docs/DECISIONS.md, issue 19, session 9). These tests guard it
without a clock: a real ``kqueue run`` process runs one job that writes the names in
``sys.modules`` at that moment, and none of the planner, the dashboard, the data stack, Celery's
names, the trace readers or the process helpers' optional libraries may be among them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

#: Imported by no worker before its first job (each is imported where it is used, if ever).
#: ``multiprocess`` and its ``dill`` are not here: the pool and isolated tiers start their
#: processes through multiprocess's fork context (the spec names the package), so a worker loads
#: them at start.
NOT_AT_START = (
    "pandas",
    "numpy",
    "simpy",
    "matplotlib",
    "scipy",
    "pyarrow",
    "sim",
    "kqueue.dashboard",
    "kqueue.api.celery",
    "kqueue.policy.trace_input",
    "kqueue.policy.trace_swf",
    "kqueue.ops.calibrate",
    "psutil",
    "tarfile",
    "zipfile",
    "zoneinfo",
)

APP = """
import json, sys
from kqueue import App

app = App({url!r})


@app.job(name="probe.modules", tier="inline")
def modules():
    with open({out!r}, "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""


def _loaded(modules: list[str]) -> list[str]:
    """The names of ``NOT_AT_START`` (or their submodules) found in ``modules``."""
    return sorted(
        name for name in modules if any(name == n or name.startswith(n + ".") for n in NOT_AT_START)
    )


@pytest.mark.timeout(120)
def test_a_worker_imports_nothing_heavy_before_its_first_job(tmp_path):
    # Given an app on a SQLite backend with one job queued that records sys.modules
    out = tmp_path / "modules.json"
    url = f"sqlite:///{tmp_path / 'q.db'}"
    (tmp_path / "probe_app.py").write_text(APP.format(url=url, out=str(out)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    dispatch = "import probe_app; probe_app.modules.dispatch()"
    subprocess.run([sys.executable, "-c", dispatch], env=env, cwd=tmp_path, check=True)
    # When `kqueue run` (with a pool and the isolated tier, as by default) runs it
    command = [sys.executable, "-m", "kqueue", "run", "--app", "probe_app:app", "--burst"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    # Then the job ran, and none of those modules was imported by then
    modules = json.loads(out.read_text())
    assert "kqueue.worker.loop" in modules  # the probe ran inside a worker
    assert _loaded(modules) == []


def test_the_command_module_imports_nothing_heavy():
    # Given a fresh interpreter, when it imports the `kqueue` command and parses `run`
    code = textwrap.dedent(
        """
        import json, sys
        from kqueue.cli.main import _command, build_parser
        build_parser(_command(["run", "--app", "x:y"])).parse_args(["run", "--app", "x:y"])
        print(json.dumps(sorted(sys.modules)))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    # Then none of the heavy modules is loaded
    assert _loaded(json.loads(done.stdout)) == []


def test_every_other_command_still_sees_the_whole_parser():
    from kqueue.cli.main import _command, build_parser

    # Given the command lines of a worker and of the planner
    # Then a worker's builds only `run`, the rest every subcommand (the planner's included)
    assert _command(["-v", "run", "--app", "a:b"]) == "run"
    assert _command(["tune", "--trace", "t.csv"]) is None
    [only_run] = build_parser("run")._subparsers._group_actions
    assert sorted(only_run.choices) == ["run"]
    [every] = build_parser()._subparsers._group_actions
    assert {"run", "tune", "simulate", "dashboard", "dead"} <= set(every.choices)
