"""A small live fleet and its dashboard, for the dashboard's tests, screenshots and benchmark.

``Fleet(folder)`` writes an app module (inline mail, pool reports, one job that always fails
with ``<script>alert(1)</script>``) beside a SQLite file; ``start_worker`` runs a real ``kqueue
run`` on it, ``start_dashboard`` a real ``kqueue dashboard`` on a free port, and ``trickle`` a
thread that dispatches a few jobs a second until stopped. Dead letters for the retry and delete
buttons are made on a queue no worker serves (``PARKED``), through the backend as a worker would.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.job import encode_message, new_job_id
from kqueue.testing import free_port
from tests.conftest import kqueue_cmd, kqueue_env

APP = """
import time
from kqueue import App

app = App({url!r})

@app.job(name="mail.send", tier="inline")
def send(i):
    time.sleep(0.005)
    return {{"sent": i}}

@app.job(name="report.build", tier="pool")
def build(i):
    time.sleep(0.05)

@app.job(name="report.slow", tier="pool")
def slow(i):
    time.sleep(0.3)

@app.job(name="<b>evil</b>", tier="inline", max_attempts=1)
def evil(i):
    raise ValueError("<script>alert(1)</script>")
"""
#: A queue no worker serves: its dead letters stay until the test retries or deletes them.
PARKED = "parked"
XSS = "<script>alert(1)</script>"


class Fleet:
    """A folder with an app, its SQLite backend, and the processes started on it."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.url = f"sqlite:///{folder / 'kqueue.db'}"
        (folder / "fleetapp.py").write_text(APP.format(url=self.url))
        (folder / "kqueue.toml").write_text("pool_size = 2\npool_max_size = 2\n")
        self.backend = SQLiteBackend(folder / "kqueue.db")
        self.processes: list[subprocess.Popen] = []
        self.port: int | None = None
        self._stop = threading.Event()

    def dispatch(self, name: str, n: int, queue: str = "default") -> list[str]:
        """Enqueue ``n`` calls of job ``name`` (as the app's dispatch would)."""
        now = time.time()
        messages = [(new_job_id(), encode_message(name, [i], {}, now)) for i in range(n)]
        self.backend.enqueue_many(queue, messages)
        return [job_id for job_id, _ in messages]

    def park_dead(self, n: int, reason: str = XSS) -> list[str]:
        """Make ``n`` dead letters on ``PARKED`` whose error is ``reason``."""
        ids = self.dispatch("<b>evil</b>", n, queue=PARKED)
        for lease in self.backend.lease(PARKED, "test", n, 30.0):
            self.backend.dead(lease, f"ValueError: {reason}\nTraceback: {reason}")
        return ids

    def _start(self, *args: str) -> subprocess.Popen:
        with open(self.folder / f"proc-{len(self.processes)}.log", "w") as log:  # child has a copy
            process = subprocess.Popen(
                kqueue_cmd(*args), cwd=self.folder, env=kqueue_env(self.folder),
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def start_worker(self, *extra: str, config: str = "kqueue.toml") -> subprocess.Popen:
        """A real worker on the default queue (``kqueue.toml``: a pool of 2); waits until it
        has published its status."""
        process = self._start("run", "--app", "fleetapp:app", "--config", config, *extra)
        deadline = time.monotonic() + 60
        while not self.backend.worker_statuses():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {self.log(process)}")
            time.sleep(0.1)
        return process

    def start_dashboard(self, *extra: str, port: int | None = None) -> subprocess.Popen:
        """A real dashboard on a free port (kept across restarts); waits until it answers."""
        self.port = port or self.port or free_port()
        process = self._start("dashboard", "--backend", self.url, "--port", str(self.port), *extra)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"dashboard exited: {self.log(process)}")
            with contextlib.suppress(OSError):
                http("GET", self.base + "/healthz")  # any answer (a 401 too): it is up
                return process
            time.sleep(0.2)
        raise RuntimeError("dashboard did not answer within 60 s")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get_json(self, path: str) -> dict:
        with urllib.request.urlopen(self.base + path, timeout=60) as answer:
            return json.loads(answer.read())

    def log(self, process: subprocess.Popen) -> str:
        index = self.processes.index(process)
        return (self.folder / f"proc-{index}.log").read_text()[-3000:]

    def trickle(self, per_s: float = 5.0) -> threading.Thread:
        """Dispatch mail and reports at about ``per_s`` a second until ``close``."""

        def run() -> None:
            backend = SQLiteBackend(self.folder / "kqueue.db")
            i = 0
            while not self._stop.wait(1.0 / per_s):
                name = "report.build" if i % 5 == 0 else "mail.send"
                now = time.time()
                backend.enqueue("default", new_job_id(), encode_message(name, [i], {}, now))
                i += 1
            backend.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def stop(self, process: subprocess.Popen) -> None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def close(self) -> None:
        self._stop.set()
        for process in reversed(self.processes):
            if process.poll() is None:
                self.stop(process)
        self.backend.close()


def http(method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    """(status, body) of one request, without raising on 4xx/5xx."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
