"""Runs that count every attempt: an app whose jobs log their start and finish, and the tally.

The soak (``experiments/soak.py``), the hosts experiment (``experiments/hosts.py``) and the
network-namespace test need the same three things: a job that reproduces a trace row
(``kqueue.ops.synthetic``) and writes ``S <no>`` when an attempt starts and ``F <no>`` when it
finishes, to a file of its own process (``<host>-<pid>.log`` in ``KQUEUE_ATTEMPTS_DIR``; not
Redis, so a Redis or network fault cannot lose or double a record); a dispatcher that sends a
trace's rows at their arrival times; and a tally of lost and duplicated jobs from those files.

A job is *lost* when no attempt of it finished; *duplicated* when more than one did. A
duplicate is *explained* when one of its attempts started on a host in ``suspect_hosts`` (a host
whose link went down or that was killed: at-least-once delivery runs its jobs again elsewhere).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

#: The environment variables the app's jobs read (when they run, never at import).
ATTEMPTS_DIR_ENV = "KQUEUE_ATTEMPTS_DIR"
HOST_LABEL_ENV = "KQUEUE_HOST_LABEL"
#: Job names of the app, one per tier, so each class of the mix runs where the prototype put it.
JOB_BY_TIER = {"inline": "mix.inline", "pool": "mix.pool", "isolated": "mix.isolated"}

APP_SOURCE = '''"""Jobs that reproduce a trace row and log each attempt (kqueue.ops.attempts)."""

import os

from kqueue.job import App
from kqueue.ops.synthetic import synthetic

app = App()
_log = []


def _write(line):
    if not _log:
        folder = os.environ["KQUEUE_ATTEMPTS_DIR"]
        host = os.environ.get("KQUEUE_HOST_LABEL", "local")
        path = os.path.join(folder, f"{host}-{os.getpid()}.log")
        _log.append(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
    os.write(_log[0], line.encode())


def attempt(no, duration_s, cpu_s, memory_mb):
    _write(f"S {no}\\n")
    synthetic(duration_s, cpu_s, memory_mb)
    _write(f"F {no}\\n")


for _tier, _name in JOB_BY_TIER.items():
    app.job(attempt, name=_name, tier=_tier, max_attempts=20)
'''


def app_source() -> str:
    """Python source of the ``attempts_app`` module (``--app attempts_app:app``)."""
    return APP_SOURCE.replace("JOB_BY_TIER", repr(JOB_BY_TIER))


def write_app(folder: Path) -> Path:
    """Write ``attempts_app.py`` and an ``attempts`` folder into ``folder``; the folder's path."""
    (folder / "attempts_app.py").write_text(app_source())
    attempts = folder / "attempts"
    attempts.mkdir(exist_ok=True)
    return attempts


@dataclass(frozen=True)
class Row:
    """One job to dispatch: its number, arrival time (seconds from the start) and work."""

    no: int
    arrival_s: float
    tier: str
    duration_s: float
    cpu_s: float
    memory_mb: float


@dataclass(frozen=True)
class Attempt:
    """One attempt of a job as its log shows it."""

    host: str
    pid: int
    finished: bool


def read_attempts(folder: Path) -> dict[int, list[Attempt]]:
    """Job number -> its attempts (one per ``S`` line, finished if a matching ``F`` follows)."""
    by_job: dict[int, list[Attempt]] = {}
    for path in sorted(Path(folder).glob("*.log")):
        host, _, pid = path.stem.rpartition("-")
        started: dict[int, int] = {}
        finished: dict[int, int] = {}
        for line in path.read_text().splitlines():
            kind, _, no = line.partition(" ")
            if not no.isdigit():
                continue  # a line cut short by a kill
            counts = started if kind == "S" else finished
            counts[int(no)] = counts.get(int(no), 0) + 1
        for no, starts in started.items():
            done = finished.get(no, 0)
            runs = [Attempt(host, int(pid), i < done) for i in range(starts)]
            by_job.setdefault(no, []).extend(runs)
    return by_job


def finished_count(folder: Path) -> int:
    """How many distinct jobs have a finished attempt so far."""
    attempts = read_attempts(folder)
    return sum(any(a.finished for a in runs) for runs in attempts.values())


@dataclass(frozen=True)
class Tally:
    """Lost and duplicated jobs of a run (see the module docstring)."""

    dispatched: int
    finished: int
    lost: tuple[int, ...]
    duplicated: tuple[int, ...]
    unexplained: tuple[int, ...]
    attempts: int

    def line(self) -> str:
        """One line for a report."""
        return (
            f"{self.finished:,}/{self.dispatched:,} finished, {len(self.lost)} lost, "
            f"{len(self.duplicated)} duplicated ({len(self.unexplained)} unexplained), "
            f"{self.attempts:,} attempts"
        )


def tally(numbers: Iterable[int], folder: Path, suspect_hosts: Sequence[str] = ()) -> Tally:
    """Count lost and duplicated jobs among ``numbers`` from the attempt logs in ``folder``."""
    wanted = sorted(set(numbers))
    by_job = read_attempts(folder)
    done = {no: [a for a in by_job.get(no, []) if a.finished] for no in wanted}
    lost = tuple(no for no in wanted if not done[no])
    duplicated = tuple(no for no in wanted if len(done[no]) > 1)
    unexplained = tuple(
        no for no in duplicated if not any(a.host in suspect_hosts for a in by_job[no])
    )
    return Tally(
        dispatched=len(wanted),
        finished=len(wanted) - len(lost),
        lost=lost,
        duplicated=duplicated,
        unexplained=unexplained,
        attempts=sum(len(runs) for runs in by_job.values()),
    )


def dispatch_paced(app, rows: Sequence[Row], *, tick_s: float = 0.2, stop=None) -> float:
    """Dispatch ``rows`` at their arrival times, in a batch per job name every ``tick_s``.

    ``app`` is a ``kqueue.job.App`` with the attempts app's job names registered (or any app
    whose ``app.job`` can register them here). ``stop``, if given, is called each tick and ends
    the dispatch early when it returns true. Returns how far behind schedule the last batch
    went out, seconds (a dispatcher that cannot keep up shows here).
    """
    jobs = {tier: app.job(lambda *a: None, name=name) for tier, name in JOB_BY_TIER.items()}
    began = time.monotonic()
    next_row, late_s = 0, 0.0
    while next_row < len(rows):
        if stop is not None and stop():
            break
        now_s = time.monotonic() - began
        batch: dict[str, list] = {}
        while next_row < len(rows) and rows[next_row].arrival_s <= now_s:
            row = rows[next_row]
            args = (row.no, row.duration_s, row.cpu_s, row.memory_mb)
            batch.setdefault(row.tier, []).append((args, {}))
            next_row += 1
        for tier, calls in batch.items():
            jobs[tier].dispatch_many(calls)
        if batch:
            late_s = max(0.0, time.monotonic() - began - rows[next_row - 1].arrival_s)
        time.sleep(tick_s)
    return late_s
