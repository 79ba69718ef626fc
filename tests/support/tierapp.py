"""Helpers for the tier tests: a test app module written to ``tmp_path``, and ways to watch it.

The app is a real module that ``kqueue run --app tierjobs:app`` imports in a real worker
process; the test process enqueues raw messages to the same SQLite file (it never imports the
app, so each test's module stays private to its own worker).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import psutil

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.errors import TraceError
from kqueue.job import encode_message, new_job_id
from kqueue.policy import read_trace
from kqueue.tiers.procs import workers_children
from tests.conftest import kqueue_cmd, kqueue_env

APP_SOURCE = '''
import asyncio, os, time
from pathlib import Path
from kqueue.job import App

HERE = Path(__file__).parent
app = App("sqlite:///" + str(HERE / "kq.db"))


def mark(name):
    (HERE / name).write_text(str(os.getpid()))


@app.job(name="sleep")
def sleep(seconds, tier=None):
    time.sleep(seconds)


pool_sleep = app.job(sleep.fn, name="pool.sleep", tier="pool")
iso_sleep = app.job(sleep.fn, name="iso.sleep", tier="isolated")
inline_sleep = app.job(sleep.fn, name="inline.sleep", tier="inline")


@app.job(name="pool.pid", tier="pool")
def pool_pid():
    with open(HERE / "pids.txt", "a") as handle:
        handle.write(f"{os.getpid()}\\n")


def once_then_ok(marker, seconds):
    """First attempt: write our pid to ``marker`` and sleep; later attempts return at once."""
    if (HERE / marker).exists():
        return
    mark(marker)
    time.sleep(seconds)


app.job(once_then_ok, name="pool.once", tier="pool")
app.job(once_then_ok, name="pool.once.short", tier="pool", estimated_duration_s=0.1)
app.job(sleep.fn, name="pool.short", tier="pool", estimated_duration_s=0.1)
app.job(once_then_ok, name="iso.once", tier="isolated")


def hog(megabytes):
    block = bytearray(int(megabytes * 1024 * 1024))
    time.sleep(0.1)
    return len(block)


app.job(hog, name="pool.hog", tier="pool", max_memory_mb=100, max_attempts=1)
app.job(hog, name="iso.hog", tier="isolated", max_memory_mb=100, max_attempts=1)
app.job(sleep.fn, name="pool.late", tier="pool", timeout_s=1, max_attempts=1)
app.job(sleep.fn, name="iso.late", tier="isolated", timeout_s=1, max_attempts=1)


@app.job(name="inline.late", tier="inline", timeout_s=1, max_attempts=1)
async def inline_late(seconds):
    await asyncio.sleep(seconds)
'''


def write_app(tmp_path: Path) -> SQLiteBackend:
    """Write the test app as ``tierjobs.py`` in ``tmp_path``; return its backend."""
    (tmp_path / "tierjobs.py").write_text(APP_SOURCE)
    return SQLiteBackend(tmp_path / "kq.db")


def enqueue(backend: SQLiteBackend, name: str, *args, count: int = 1) -> list[str]:
    """Enqueue ``count`` calls of job ``name`` with ``args``; returns their ids."""
    now = time.time()
    messages = [(new_job_id(), encode_message(name, args, {}, now)) for _ in range(count)]
    backend.enqueue_many("default", messages, job_class=name)
    return [job_id for job_id, _ in messages]


def trace(tmp_path: Path):
    """The worker's trace as a DataFrame."""
    return read_trace(tmp_path / "trace.csv")


def ok_rows(tmp_path: Path, job_class: str) -> int:
    """Rows of ``job_class`` with status ok in the trace so far (0 before the first row)."""
    try:
        rows = trace(tmp_path)
    except TraceError:
        return 0
    return int(((rows.job_class == job_class) & (rows.status == "ok")).sum())


@contextlib.contextmanager
def worker_running(cwd: Path, *args: str):
    """A ``kqueue`` worker process in the background; SIGKILLed and reaped if still running."""
    with open(cwd / "worker.log", "w") as log:
        worker = subprocess.Popen(
            kqueue_cmd(*args), cwd=cwd, env=kqueue_env(cwd), stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield worker
        finally:
            if worker.poll() is None:
                worker.kill()
            worker.wait()


def left_in_queue(backend: SQLiteBackend) -> int:
    """Jobs still ready, scheduled or leased (dead letters excluded)."""
    counts = backend.counts().get("default", {})
    return sum(v for k, v in counts.items() if k != "dead")


def wait_for(predicate, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout_s`` passes; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def children(pid: int) -> list[int]:
    """Pids of the live (not zombie) descendants of ``pid`` that run jobs (not the zygote)."""
    return [p.pid for p in workers_children(pid)]


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids: list[int]) -> bool:
    """True when none of ``pids`` is a live process any more."""
    return not any(_pid_alive(pid) for pid in pids)


def _pid_alive(pid: int) -> bool:
    try:
        return _alive(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return False
