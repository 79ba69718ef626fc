"""Reload on deploy: SIGHUP to a real ``kqueue run`` starts the new code and config, losing
nothing.

The app's job appends ``<number> <version> <pid>`` to a per-process file, so the test knows
which code ran each job, in which process, and how often. Between dispatches the test rewrites
the app module and the ``kqueue.toml`` on disk, as a deploy does, then signals the worker.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from kqueue.backends import open_backend
from kqueue.job import App
from tests.conftest import start_kqueue

pytestmark = pytest.mark.slow

APP = """
import os, time
from kqueue import App

VERSION = {version!r}
app = App()


@app.job(name="work", tier="inline", max_attempts=10)
def work(i, sleep_s):
    time.sleep(sleep_s)
    path = os.path.join(os.environ["KQUEUE_TEST_RUNS"], f"{{os.getpid()}}.runs")
    with open(path, "a") as out:
        out.write(f"{{i}} {{VERSION}} {{os.getpid()}}\\n")
"""


def deploy(app_dir: Path, version: str, inline: int) -> None:
    """Write the app module and its config as a deploy of ``version`` would."""
    (app_dir / "reload_app.py").write_text(APP.format(version=version))
    (app_dir / "kqueue.toml").write_text(f"max_concurrent_inline = {inline}\n")


def runs(app_dir: Path) -> dict[int, list[tuple[str, int]]]:
    """Job number -> (version, pid) of each run."""
    by_job: dict[int, list[tuple[str, int]]] = {}
    for path in (app_dir / "runs").glob("*.runs"):
        for line in path.read_text().splitlines():
            number, version, pid = line.split()
            by_job.setdefault(int(number), []).append((version, int(pid)))
    return by_job


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def inline_capacity(url: str) -> set[int]:
    """The inline capacity each live worker publishes (its ``max_concurrent_inline``)."""
    backend = open_backend(url)
    try:
        bodies = [json.loads(status.body) for status in backend.worker_statuses()]
    finally:
        backend.close()
    return {body["tiers"]["inline"]["capacity"] for body in bodies}


def log_text(app_dir: Path) -> str:
    return "".join(path.read_text() for path in app_dir.glob("worker-*.log"))


@pytest.fixture(params=["sqlite", "redis"])
def backend_url(request, tmp_path):
    """A fresh backend URL: a SQLite file, or the session's private Redis (emptied)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'kqueue.db'}"
    server = request.getfixturevalue("redis_server")
    backend = open_backend(server.url)
    backend.client.flushdb()
    backend.close()
    return server.url


@pytest.mark.timeout(180)
def test_sighup_runs_the_new_code_and_config_and_loses_nothing(tmp_path, monkeypatch, backend_url):
    # Given a worker running v1 of the app with max_concurrent_inline = 3, busy with 200 jobs
    app_dir, n = tmp_path, 200
    (app_dir / "runs").mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(app_dir / "runs"))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")  # a stale .pyc must not hide the deploy
    deploy(app_dir, "v1", inline=3)
    app = App(backend_url)
    work = app.job(lambda i, sleep_s: None, name="work")
    work.dispatch_many([((i, 0.05), {}) for i in range(n)])
    args = ("run", "--app", "reload_app:app", "--config", "kqueue.toml", "--backend", backend_url)
    process = start_kqueue(app_dir, *args)
    try:
        wait_until(lambda: len(runs(app_dir)) >= 30, 60, "v1 to run some jobs")
        assert inline_capacity(backend_url) == {3}
        # When v2 (a new job body, max_concurrent_inline = 6) is deployed and the worker HUPed
        deploy(app_dir, "v2", inline=6)
        process.send_signal(signal.SIGHUP)
        # Then the same process (the same PID: exec) finishes the jobs with v2's code
        wait_until(lambda: len(runs(app_dir)) == n, 90, "every job to run")
        assert process.poll() is None, log_text(app_dir)
        wait_until(lambda: inline_capacity(backend_url) == {6}, 30, "the new config")
        # And when a broken v3 is deployed and HUPed, the worker refuses it and serves on
        (app_dir / "reload_app.py").write_text("this is not python\n")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload refused" in log_text(app_dir), 60, "the refusal")
        work.dispatch_many([((i, 0.0), {}) for i in range(n, n + 20)])
        wait_until(lambda: len(runs(app_dir)) == n + 20, 60, "jobs after the refusal")
        assert process.poll() is None, log_text(app_dir)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        code = process.wait(30)
        app.close()
    by_job = runs(app_dir)
    versions = [version for job in sorted(by_job) for version, _ in by_job[job]]
    # every job ran exactly once (each was short beside the grace period), all in one process,
    # v1 up to the reload and v2 after it (the jobs running at the HUP finished on v1)
    assert sorted(by_job) == list(range(n + 20))
    assert all(len(job_runs) == 1 for job_runs in by_job.values()), "a job ran twice"
    assert {pid for job_runs in by_job.values() for _, pid in job_runs} == {process.pid}
    assert versions.count("v1") >= 30 and versions.count("v2") >= 20
    assert "v1" not in versions[versions.index("v2") + 10 :], "v1 ran well after the reload"
    assert code == 0, log_text(app_dir)
    log = log_text(app_dir)
    assert "reloading" in log and "Traceback" not in log.split("reload refused")[0]


def test_a_sighup_while_the_app_imports_reloads_once_the_worker_is_built(tmp_path, monkeypatch):
    # Given an app whose import takes a second, and a worker started on it
    (tmp_path / "slow_app.py").write_text(
        "import pathlib, time\nfrom kqueue import App\n"
        "pathlib.Path('importing').touch()\ntime.sleep(1.0)\napp = App()\n"
    )
    url = f"sqlite:///{tmp_path / 'kqueue.db'}"
    process = start_kqueue(tmp_path, "run", "--app", "slow_app:app", "--backend", url)
    try:
        # When a SIGHUP arrives during the import
        wait_until((tmp_path / "importing").exists, 60, "the import to start")
        process.send_signal(signal.SIGHUP)
        # Then the worker does not die of it: it starts again (fresh import) and serves
        wait_until(lambda: bool(_statuses(url)), 60, "the worker to serve")
        assert process.poll() is None
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_text(tmp_path)
    assert "reloading" in log_text(tmp_path)


def _statuses(url: str) -> list:
    backend = open_backend(url)
    try:
        return backend.worker_statuses()
    finally:
        backend.close()


def test_reload_is_documented_in_the_run_help():
    from kqueue.cli.main import build_parser

    [commands] = build_parser()._subparsers._group_actions
    assert "SIGHUP" in commands.choices["run"].format_help()


POOL_APP = """
import os, time
from kqueue import App

app = App()


@app.job(name="slow", tier="pool", max_attempts=10)
def slow(i, sleep_s):
    time.sleep(sleep_s)
    path = os.path.join(os.environ["KQUEUE_TEST_RUNS"], f"{os.getpid()}.runs")
    with open(path, "a") as out:
        out.write(f"{i} pool {os.getpid()}\\n")
"""


def _start_pool_worker(app_dir: Path, monkeypatch, n: int, sleep_s: float):
    (app_dir / "runs").mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(app_dir / "runs"))
    (app_dir / "pool_app.py").write_text(POOL_APP)
    url = f"sqlite:///{app_dir / 'kqueue.db'}"
    app = App(url)
    app.job(lambda i, sleep_s: None, name="slow").dispatch_many(
        [((i, sleep_s), {}) for i in range(n)]
    )
    app.close()
    args = ("run", "--app", "pool_app:app", "--backend", url, "--pool-size", "2")
    return url, start_kqueue(app_dir, *args, "--pool-max-size", "2")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.timeout(120)
def test_a_reload_with_pool_processes_runs_every_job_once_and_replaces_the_pool(
    tmp_path, monkeypatch
):
    # Given a worker whose two pool processes run 40 jobs of 0.2 s
    n = 40
    _, process = _start_pool_worker(tmp_path, monkeypatch, n, 0.2)
    try:
        wait_until(lambda: len(runs(tmp_path)) >= 6, 60, "the pool to run some jobs")
        # When it is HUPed mid-run
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloading: starting" in log_text(tmp_path), 60, "the exec")
        old_pool = {pid for job_runs in runs(tmp_path).values() for _, pid in job_runs}
        # Then the old pool processes are gone, new ones finish the rest, each job once
        wait_until(lambda: not any(_alive(pid) for pid in old_pool), 30, "the old pool to end")
        wait_until(lambda: len(runs(tmp_path)) == n, 60, "every job to run")
        assert process.poll() is None, log_text(tmp_path)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    by_job = runs(tmp_path)
    assert sorted(by_job) == list(range(n))
    assert all(len(job_runs) == 1 for job_runs in by_job.values()), "a job ran twice"
    new_pool = {pid for job_runs in by_job.values() for _, pid in job_runs} - old_pool
    assert new_pool and code == 0


@pytest.mark.timeout(90)
def test_sigterm_during_a_reload_stops_the_worker_instead(tmp_path, monkeypatch):
    # Given a worker busy with jobs of 2 s, HUPed
    _, process = _start_pool_worker(tmp_path, monkeypatch, 4, 2.0)
    try:
        wait_until(lambda: "started on" in log_text(tmp_path), 60, "the worker to start")
        time.sleep(0.5)
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloading: finishing" in log_text(tmp_path), 30, "the reload")
        # When SIGTERM follows while running jobs finish
        process.send_signal(signal.SIGTERM)
        # Then it exits (0) rather than starting again
        assert process.wait(60) == 0, log_text(tmp_path)
    finally:
        if process.poll() is None:
            process.kill()
    assert log_text(tmp_path).count("started on") == 1, log_text(tmp_path)
