"""docs/guide/operations.md stays true: its examples and its reload commands run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kqueue.backends import open_backend
from tests.conftest import ROOT, kqueue_env, require_redis_server
from tests.support.sentinel import SentinelCluster

GUIDE = ROOT / "docs" / "guide" / "operations.md"
#: The sentinels the guide's example names; the test puts its own cluster's in their place.
GUIDE_SENTINELS = "127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.S)


def _python(tmp_path, code: str) -> subprocess.CompletedProcess:
    (tmp_path / "example.py").write_text(code)
    return subprocess.run(
        [sys.executable, "example.py"],
        cwd=tmp_path,
        env=kqueue_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_url_example_parses_and_names_the_bad_part(tmp_path):
    parse, _ = _blocks("python")
    done = _python(tmp_path, parse)
    assert done.returncode == 0, done.stderr
    assert "SentinelURL(sentinels=(('10.0.0.1', 26379), ('10.0.0.2', 26379))" in done.stdout
    assert "database 'zero' is not a number" in done.stdout


@pytest.mark.redis
@pytest.mark.timeout(90)
def test_the_dispatch_example_queues_its_job_through_sentinel(tmp_path):
    require_redis_server()
    _, example = _blocks("python")
    assert GUIDE_SENTINELS in example
    with SentinelCluster(tmp_path / "redis") as cluster:
        hosts = cluster.url().split("//")[1].split("/")[0]
        done = _python(tmp_path, example.replace(GUIDE_SENTINELS, hosts))
        assert done.returncode == 0, done.stderr
        backend = open_backend(cluster.url())
        try:
            assert backend.counts()["default"]["ready"] == 1
        finally:
            backend.close()


TASKS = """
from kqueue import App

app = App()


@app.job(name="tasks.hello", tier="inline")
def hello():
    return "hi"
"""


@pytest.mark.timeout(90)
def test_the_reload_commands_reload_the_worker_and_stop_it_cleanly(tmp_path):
    [commands] = _blocks("bash")
    (tmp_path / "tasks.py").write_text(TASKS)
    (tmp_path / "kqueue.toml").write_text("max_concurrent_inline = 4\n")
    env = kqueue_env(tmp_path)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    done = subprocess.run(
        ["bash", "-euc", commands], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    log = (tmp_path / "worker.log").read_text()
    assert done.returncode == 0, (done.stderr, log)
    assert "reloading" in log and log.count("started on default") == 2, log
