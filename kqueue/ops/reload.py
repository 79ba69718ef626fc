"""Reload on deploy: SIGHUP makes ``kqueue run`` start the new code and config, losing no job.

What happens on SIGHUP (``Worker.request_reload``): the worker stops leasing, hands the jobs it
leased but had not started back to the queue, lets running jobs finish (up to
``shutdown_grace_s``; one still running then is handed back, to run again elsewhere: at least
once) and sends their acks. Then this module checks, in a short-lived child process, that the
app still imports and the config still loads; if so it replaces the process with a fresh one
(``execv``, the same command line, the same PID, so a supervisor such as systemd keeps tracking
it), which imports the app and reads the config anew. If not, it logs why and serves on with
the code and config it has, so a broken deploy does not stop the fleet.

Why exec rather than reloading modules in place, or Dramatiq's successor processes: see
``docs/DECISIONS.md`` (issue 20).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from kqueue.worker import Worker, WorkerSummary

log = logging.getLogger("kqueue.reload")

#: How long the check of the new app and config may take, seconds.
PREFLIGHT_TIMEOUT_S = 60.0
#: What the check runs: import the app, read the config (exit 1 with the error on failure).
_PREFLIGHT = """
import sys
from kqueue.job import App
from kqueue.policy.config import Config
try:
    App.from_spec(sys.argv[1])
    Config.load(sys.argv[2] or None)
except Exception as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
"""


def serve(
    make_worker: Callable[[], Worker],
    app_spec: str,
    config_path: str | None,
    on_stopped: Callable[[WorkerSummary], Any],
    hangups: list[int],
) -> WorkerSummary:
    """Run a worker until it stops; on a reload, exec a fresh process if the new code loads.

    Args:
        make_worker: builds the worker (again, after a refused reload).
        app_spec: ``module:attribute`` of the app, checked before a reload.
        config_path: the ``kqueue.toml`` (None: none), checked before a reload.
        on_stopped: called with each run's summary (before an exec, too).
        hangups: from ``note_hangups``, called before the app was imported.

    Returns:
        The summary of the run that stopped for a reason other than a reload.
    """
    while True:
        worker = make_worker()
        if hangups:  # a SIGHUP came while the app was importing: it may have read old code
            worker.reload_requested = True
        else:
            summary = asyncio.run(worker.run())
            note_hangups(hangups)  # the loop's handler is gone: a SIGHUP now must not kill
            on_stopped(summary)
        if not worker.reload_requested:
            return summary
        problem = preflight(app_spec, config_path)
        if problem is None:
            exec_fresh()
        log.error("reload refused, the running code carries on: %s", problem)
        hangups.clear()


def note_hangups(noted: list[int] | None = None) -> list[int]:
    """Note SIGHUPs in the list returned (instead of dying) until the worker's loop installs
    its own handler; call it first thing, before the app is imported."""
    noted = [] if noted is None else noted
    signal.signal(signal.SIGHUP, lambda signum, frame: noted.append(signum))
    return noted


def preflight(app_spec: str, config_path: str | None) -> str | None:
    """Whether the app imports and the config loads in a fresh interpreter: None, or why not."""
    command = [sys.executable, "-c", _PREFLIGHT, app_spec, config_path or ""]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PREFLIGHT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"importing {app_spec} took over {PREFLIGHT_TIMEOUT_S:.0f} s"
    if done.returncode == 0:
        return None
    return (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]


def exec_fresh() -> None:
    """Replace this process with the same command line run anew (never returns)."""
    log.info("reloading: starting the new code and config in a fresh process (pid %d)", os.getpid())
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
