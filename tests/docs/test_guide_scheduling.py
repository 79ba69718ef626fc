"""docs/guide/scheduling.md stays true: each Python block runs, its kqueue.toml loads, and its
shell lines run against a scratch SQLite file."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from kqueue.policy.config import Config
from kqueue.policy.schedule import load_schedules
from tests.conftest import ROOT, kqueue_env, run_kqueue

GUIDE = ROOT / "docs" / "guide" / "scheduling.md"
SECTIONS = (
    "Priorities",
    "Queue order",
    "Rate and concurrency limits",
    "Pausing",
    "Periodic jobs",
    "In the simulator",
    "Planning with a fixed limit",
)


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.S)


def test_the_guide_has_its_sections():
    headings = re.findall(r"^## (.+)$", GUIDE.read_text(), flags=re.M)
    assert [s for s in SECTIONS if s not in headings] == []


@pytest.mark.timeout(120)
@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_each_python_block_runs(tmp_path, index):
    (tmp_path / "example.py").write_text(_blocks("python")[index])
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, env=kqueue_env(tmp_path),
                          capture_output=True, text=True, timeout=110)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_toml_block_loads_with_its_schedule_and_limits(tmp_path):
    [toml] = _blocks("toml")
    path = tmp_path / "kqueue.toml"
    path.write_text(toml)
    config = Config.load(path)
    assert config.leader_lease_s == 5.0
    assert config.jobs["ops.ping"].rate_limit == "100/min"
    [nightly] = load_schedules(path).values()
    assert nightly.cron.text == "30 2 * * mon-fri" and nightly.catch_up.value == "last"


def test_the_shell_lines_run_as_written(tmp_path):
    outputs = []
    for block in _blocks("bash"):
        for line in block.strip().splitlines():
            done = run_kqueue(tmp_path, *shlex.split(line)[1:])
            assert done.returncode == 0, (line, done.stderr)
            outputs.append(done.stdout.strip())
    assert outputs[-1] == "paused: job:tasks.send_newsletter"
