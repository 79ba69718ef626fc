"""Soak: 30 minutes at 1000 jobs/min of the prototype mix on two workers, watching for leaks.

Scenario: one private redis-server; two ``kqueue run`` worker processes (each with its pool and
isolated children) serve the prototype mix (``sim.model.workload.PROTOTYPE_MIX``: 70% fast
inline, 25% medium pool, 5% heavy isolated), dispatched at its Poisson arrival times at
``--rate-per-min``. Durations and CPU times are scaled by ``--time-scale`` (0.01: a heavy job
takes about 0.45 s) and memory by ``--memory-scale`` so a busy 2-core host holds the rate; each
job logs its start and finish to a file (``kqueue.ops.attempts``), which gives lost and
duplicated jobs exactly.

Every ``--sample-s`` the sampler reads, for every process of each worker's tree, its PSS
(``/proc/PID/smaps_rollup``) and its open file descriptors (``/proc/PID/fd``). Two PSS sums are
kept: the whole tree, and its *standing* part (processes older than ``STANDING_AGE_S``: the
worker and its pool, not the short-lived isolated children, whose memory is their jobs').

Printed: lost/duplicated counts; per minute the median standing PSS, whole-tree PSS and fds of
the two trees together; the growth of standing PSS and of fds from minute 5 to the last minute
(the windows scale with ``--duration-s``: the sixth and the last thirtieth of the run). With
``--check`` (default for runs of 10 minutes or more) it exits 1 unless nothing was lost or
duplicated, PSS grew less than ``MAX_PSS_GROWTH_PCT`` and fds grew at most ``MAX_FD_GROWTH``.

    nice -n 10 python experiments/soak.py                  # the full 30 minutes
    python experiments/soak.py --duration-s 60             # CI
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_mix import prototype_rows  # noqa: E402

from kqueue.job import App  # noqa: E402
from kqueue.ops.attempts import dispatch_paced, finished_count, tally, write_app  # noqa: E402
from kqueue.testing import RedisServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: A process this old is standing (a worker or a pool process): isolated children live for one
#: job (under a second here, seconds on a loaded host), so they never reach it.
STANDING_AGE_S = 60.0
MAX_PSS_GROWTH_PCT = 5.0
#: fds a tree may gain between the windows (a pool process being replaced opens a few pipes).
MAX_FD_GROWTH = 8
#: Worker settings: a small pool of fixed size (it does not scale, so the standing processes are
#: the same few the whole run), so two workers fit beside other sessions.
WORKER_ARGS = ("--pool-size", "3", "--pool-max-size", "3", "--max-concurrent-isolated", "3")


@dataclass(frozen=True)
class Sample:
    """One reading of both worker trees, summed."""

    time_s: float
    standing_pss_mb: float
    standing_fds: int
    standing: int
    tree_pss_mb: float
    fds: int
    processes: int
    #: The two ``kqueue run`` processes alone (the roots of the trees). Their RSS does not depend
    #: on how many children share their pages, as their PSS does.
    workers_pss_mb: float
    workers_fds: int
    workers_rss_mb: float


def pss_kb(pid: int, field: str = "Pss:") -> int:
    """The process's proportional set size (or another smaps_rollup ``field``), kB; 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def fd_count(pid: int) -> int:
    """How many file descriptors the process has open (0 if it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def read_trees(pids: list[int], now_s: float, standing_age_s: float = STANDING_AGE_S) -> Sample:
    """Sum PSS and fds over every process in the trees rooted at ``pids``."""
    standing_kb = standing_fds = standing = tree_kb = fds = count = 0
    wall_now = time.time()
    workers_kb = sum(pss_kb(pid) for pid in pids)
    workers_fds = sum(fd_count(pid) for pid in pids)
    workers_rss_kb = sum(pss_kb(pid, "Rss:") for pid in pids)
    for pid in pids:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in family:
            kb = pss_kb(proc.pid)
            try:
                age_s = wall_now - proc.create_time()
            except psutil.Error:
                continue
            open_fds = fd_count(proc.pid)
            tree_kb, fds, count = tree_kb + kb, fds + open_fds, count + 1
            if age_s >= standing_age_s or proc.pid in pids:
                standing_kb, standing_fds, standing = (
                    standing_kb + kb,
                    standing_fds + open_fds,
                    standing + 1,
                )
    return Sample(now_s, standing_kb / 1024, standing_fds, standing, tree_kb / 1024, fds, count,
                  workers_kb / 1024, workers_fds, workers_rss_kb / 1024)  # fmt: skip


class Sampler(threading.Thread):
    """Reads the trees every ``sample_s`` until stopped."""

    def __init__(self, pids: list[int], sample_s: float, standing_age_s: float):
        super().__init__(daemon=True)
        self.pids, self.sample_s, self.standing_age_s = pids, sample_s, standing_age_s
        self.samples: list[Sample] = []
        self.halt = threading.Event()
        self.began = time.monotonic()

    def run(self) -> None:
        while not self.halt.wait(self.sample_s):
            now_s = time.monotonic() - self.began
            self.samples.append(read_trees(self.pids, now_s, self.standing_age_s))


def start_worker(folder: Path, url: str, attempts: Path, index: int) -> subprocess.Popen:
    """One ``kqueue run`` process serving the attempts app, its output in a log file."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(folder)])
    env["KQUEUE_ATTEMPTS_DIR"] = str(attempts)
    env["KQUEUE_HOST_LABEL"] = f"w{index}"
    with open(folder / f"worker-{index}.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kqueue", "run", "--app", "attempts_app:app"]
            + ["--backend", url, *WORKER_ARGS],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(workers: list[subprocess.Popen]) -> None:
    """SIGTERM each worker, then SIGKILL its group if it does not exit within 60 s."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)


def window(samples: list[Sample], end_s: float, width_s: float) -> list[Sample]:
    """The samples taken in ``(end_s - width_s, end_s]``."""
    return [s for s in samples if end_s - width_s < s.time_s <= end_s]


def median_of(samples: list[Sample], field: str) -> float:
    """The median of one field over ``samples`` (nan when empty)."""
    values = [getattr(s, field) for s in samples]
    return statistics.median(values) if values else float("nan")


def soak(args) -> dict:
    """Run the soak; returns its figures (see the module docstring)."""
    jobs = int(args.rate_per_min * args.duration_s / 60)
    rows = prototype_rows(
        jobs,
        args.rate_per_min / 60,
        time_scale=args.time_scale,
        memory_scale=args.memory_scale,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        attempts = write_app(folder)
        with RedisServer(folder / "redis") as server:
            workers = [start_worker(folder, server.url, attempts, i) for i in range(2)]
            standing_age_s = min(STANDING_AGE_S, args.duration_s / 6)  # shorter for a short run
            sampler = Sampler([w.pid for w in workers], args.sample_s, standing_age_s)
            app = App(server.url)
            try:
                sampler.start()
                late_s = dispatch_paced(app, rows)
                deadline = time.monotonic() + args.drain_s
                while finished_count(attempts) < jobs and time.monotonic() < deadline:
                    time.sleep(1.0)
                time.sleep(2.0)  # a straggling duplicate would show in this time
                sampler.halt.set()
                sampler.join()
                alive = [w.poll() is None for w in workers]
            finally:
                sampler.halt.set()
                app.close()
                stop(workers)
            counts = tally(range(jobs), attempts)
    return {"jobs": jobs, "tally": counts, "samples": sampler.samples, "late_s": late_s,
            "alive": alive}  # fmt: skip


COLUMNS = (("standing_pss_mb", "standing MB", ".1f"), ("standing_fds", "fds", ".0f"),
           ("standing", "procs", ".0f"), ("workers_pss_mb", "workers MB", ".1f"),
           ("workers_fds", "fds", ".0f"), ("tree_pss_mb", "tree MB", ".1f"),
           ("fds", "fds", ".0f"), ("processes", "procs", ".0f"),
           ("workers_rss_mb", "workers RSS", ".1f"))  # fmt: skip


def full(samples: list[Sample]) -> list[Sample]:
    """The samples in which every standing process was there (not one just replaced)."""
    if not samples:
        return []
    usual = statistics.mode(s.standing for s in samples)
    return [s for s in samples if s.standing == usual]


def growth(early: list[Sample], late: list[Sample], field: str) -> tuple[float, float]:
    """The medians of ``field`` in the two windows."""
    return median_of(early, field), median_of(late, field)


def report(args, figures: dict) -> bool:
    """Print the figures; true when they meet the targets."""
    samples, counts = figures["samples"], figures["tally"]
    print(
        f"soak: {args.duration_s:g} s at {args.rate_per_min:g} jobs/min, prototype mix x"
        f"{args.time_scale:g} time, x{args.memory_scale:g} memory, 2 workers on Redis"
    )
    print(f"jobs: {counts.line()}; dispatcher at most {figures['late_s']:.2f} s late")
    age_s = min(STANDING_AGE_S, args.duration_s / 6)
    print("per minute, medians; standing = workers + pool processes (older than "
          f"{age_s:g} s); tree = every process")  # fmt: skip
    print(f"{'minute':>6}" + "".join(f"{label:>12}" for _, label, _ in COLUMNS))
    minutes = int(max(1, -(-args.duration_s // 60)))
    for minute in range(1, minutes + 1):
        part = window(samples, minute * 60, 60)
        if part:
            cells = "".join(f"{median_of(part, f):>12{spec}}" for f, _, spec in COLUMNS)
            print(f"{minute:>6}{cells}")
    width_s = max(args.duration_s / 30, 3 * args.sample_s)
    steady = full(samples)
    early = window(steady, args.duration_s / 6, width_s)
    late = window(steady, steady[-1].time_s if steady else 0.0, width_s)
    pss = growth(early, late, "standing_pss_mb")
    fds = growth(early, late, "standing_fds")
    workers = growth(early, late, "workers_pss_mb")
    worker_fds = growth(early, late, "workers_fds")
    worker_rss = growth(early, late, "workers_rss_mb")
    growth_pct = 100.0 * (pss[1] - pss[0]) / pss[0]
    settled = [s.standing_fds for s in steady if s.time_s > args.duration_s / 6]
    print(
        f"standing PSS, minute 5 -> last: {pss[0]:.1f} -> {pss[1]:.1f} MB ({growth_pct:+.1f}%); "
        f"standing fds {fds[0]:.0f} -> {fds[1]:.0f} (band after minute 5: "
        f"{min(settled, default=0)}-{max(settled, default=0)}); the two worker processes: "
        f"{workers[0]:.1f} -> {workers[1]:.1f} MB, fds {worker_fds[0]:.0f} -> {worker_fds[1]:.0f},"
        f" RSS {worker_rss[0]:.1f} -> {worker_rss[1]:.1f} MB"
    )
    ok = (
        not counts.lost
        and not counts.duplicated
        and all(figures["alive"])
        and growth_pct < MAX_PSS_GROWTH_PCT
        and fds[1] - fds[0] <= MAX_FD_GROWTH
    )
    print("targets met" if ok else "TARGETS MISSED")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the soak, print it; exit 1 on a missed target with --check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--rate-per-min", type=float, default=1000.0)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--memory-scale", type=float, default=0.1)
    parser.add_argument("--sample-s", type=float, default=None, help="default: duration / 360")
    parser.add_argument("--drain-s", type=float, default=120.0, help="wait for stragglers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args(argv)
    if args.sample_s is None:
        args.sample_s = max(0.5, args.duration_s / 360)
    check = args.check if args.check is not None else args.duration_s >= 600
    figures = soak(args)
    ok = report(args, figures)
    counts = figures["tally"]
    if counts.lost or counts.duplicated or not all(figures["alive"]):
        return 1  # never acceptable, at any length
    return 0 if ok or not check else 1


if __name__ == "__main__":
    sys.exit(main())
