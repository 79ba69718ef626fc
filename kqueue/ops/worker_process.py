"""A ``kqueue run`` worker started as its own process, the way an operator starts one.

``kqueue replay`` and ``kqueue calibrate`` measure a worker: its jobs' timings and the memory
(PSS) of its process tree. A worker hosted inside the measuring process would be measured with
that process's own imports and threads, and pool processes forked from it mid-run end up owning
copies of its pages. So they start a separate ``python -m kqueue run`` with an app module on the
command line, the settings in a ``kqueue.toml`` and the backend URL, exactly as in production,
and measure that process and its children.

The child is always ended: ``stop()`` (also on leaving the ``with`` block) sends SIGTERM, then
SIGKILL after a grace period; and the kernel sends it SIGTERM if the process that started it
dies without cleaning up (Linux ``PR_SET_PDEATHSIG``), so a killed replay leaves no worker behind.
The child asks for that itself, first thing in ``kqueue run`` (``term_with_parent_from_env``),
rather than in a ``preexec_fn`` between fork and exec, which is unsafe in a process with threads
(calibrate runs in-process workers first, and their threads may still be alive).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import kqueue
from kqueue.errors import KQueueError
from kqueue.policy.config import Config
from kqueue.tiers.procs import libc_prctl
from kqueue.worker import DRAIN_SIGNAL

#: How long a started worker may take to publish its first status, seconds.
READY_TIMEOUT_S = 60.0
#: How often readiness is checked, seconds.
READY_POLL_S = 0.05
#: After SIGTERM, how long ``stop`` waits before SIGKILL, seconds.
STOP_GRACE_S = 10.0
_PR_SET_PDEATHSIG = 1
#: Set for the child to the starting process's pid: ``kqueue run`` then dies with that process.
PARENT_PID_ENV = "KQUEUE_TERM_WITH_PARENT"


@dataclass(frozen=True)
class WorkerExit:
    """What a finished worker process reported: its exit code and its summary line."""

    returncode: int
    #: The JSON summary ``kqueue run`` prints (``done``, ``by_status``, ...), ``{}`` if none.
    summary: dict


def write_app_module(folder: Path, name: str, source: str) -> str:
    """Write ``source`` as ``folder/<name>.py``; returns the ``--app`` spec ``<name>:app``."""
    (folder / f"{name}.py").write_text(source)
    return f"{name}:app"


class WorkerProcess:
    """One ``kqueue run`` child process; use as a context manager.

    Args:
        app_spec: ``module:attribute`` of the app, importable from ``folder``.
        backend_url: the backend the worker serves (overrides the app's).
        config: the worker's settings, written to ``folder/kqueue.toml``.
        folder: the child's working directory (on its import path).
        queues: the queues it serves.
        trace_out: CSV the worker appends its trace rows to.
        force_inline: run every job inline (``--inline``).
    """

    def __init__(
        self,
        app_spec: str,
        backend_url: str,
        config: Config,
        folder: Path,
        *,
        queues: tuple[str, ...] = ("default",),
        trace_out: str | None = None,
        force_inline: bool = False,
    ):
        self.folder = Path(folder)
        config_path = self.folder / "kqueue.toml"
        config_path.write_text(config.to_toml())
        self.argv = [sys.executable, "-m", "kqueue", "run", "--app", app_spec]
        self.argv += ["--backend", backend_url, "--config", str(config_path)]
        for queue in queues:
            self.argv += ["--queue", queue]
        if trace_out is not None:
            self.argv += ["--trace-out", str(Path(trace_out).resolve())]
        if force_inline:
            self.argv.append("--inline")
        self._stdout = self.folder / "worker.out"
        self._process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        """The worker's process id (it has been started)."""
        assert self._process is not None, "start() first"
        return self._process.pid

    def start(self, backend) -> None:
        """Start the worker and return once it has published its first status on ``backend``.

        Raises:
            KQueueError: it exited, or did not become ready within ``READY_TIMEOUT_S``.
        """
        env = dict(os.environ)
        # the app's folder, this working directory (where --app specs are found, as in
        # ``kqueue.cli.load_app``), then the kqueue this process runs (a checkout or an install)
        paths = [str(self.folder), os.getcwd(), str(Path(kqueue.__file__).resolve().parents[1])]
        env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env[PARENT_PID_ENV] = str(os.getpid())
        with self._stdout.open("wb") as out:
            self._process = subprocess.Popen(
                self.argv, cwd=self.folder, env=env, stdout=out, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.pid not in _live_pids(backend):
            if self._process.poll() is not None:
                raise KQueueError(
                    f"worker exited with code {self._process.returncode} before it was ready: "
                    f"{' '.join(self.argv)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise KQueueError(f"worker not ready after {READY_TIMEOUT_S:.0f} s")
            time.sleep(READY_POLL_S)

    def running(self) -> bool:
        """True while the started worker has not exited."""
        return self._process is not None and self._process.poll() is None

    def drain(self) -> None:
        """Ask the worker to finish what is queued and exit (``DRAIN_SIGNAL``)."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(DRAIN_SIGNAL)

    def wait(self, timeout_s: float | None = None) -> WorkerExit:
        """Wait for the worker to exit; returns its exit code and summary.

        Raises:
            subprocess.TimeoutExpired: it is still running after ``timeout_s``.
        """
        assert self._process is not None, "start() first"
        returncode = self._process.wait(timeout_s)
        summary = {}
        lines = self._stdout.read_text().strip().splitlines()
        with contextlib.suppress(ValueError, IndexError):
            summary = json.loads(lines[-1])
        return WorkerExit(returncode, summary if isinstance(summary, dict) else {})

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """End the worker if it still runs: SIGTERM, then SIGKILL after ``grace_s``."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _live_pids(backend) -> set[int]:
    """Pids of the workers with a live status on ``backend`` (none while it is unreachable)."""
    pids = set()
    with contextlib.suppress(KQueueError):
        for status in backend.worker_statuses():
            with contextlib.suppress(ValueError, AttributeError, TypeError, KeyError):
                pids.add(int(json.loads(status.body)["pid"]))
    return pids


def term_with_parent_from_env() -> None:
    """In ``kqueue run``, first thing: if a ``WorkerProcess`` started this process (its pid in
    ``PARENT_PID_ENV``), have the kernel send SIGTERM when that process dies (Linux; elsewhere
    only the check below), and exit at once if it has died already. The variable is removed, so
    processes this one starts do not inherit it."""
    value = os.environ.pop(PARENT_PID_ENV, None)
    if value is None:
        return
    try:
        parent_pid = int(value)
    except ValueError:
        raise KQueueError(f"{PARENT_PID_ENV}={value!r} is not a process id") from None
    prctl = libc_prctl()
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl
        sys.exit(1)
