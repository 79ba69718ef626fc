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
#: A process this old is part of the tree's standing memory (the worker, its pool).
STANDING_AGE_S = 5.0
MAX_PSS_GROWTH_PCT = 5.0
#: fds a tree may gain between the windows (a pool process being replaced opens a few pipes).
MAX_FD_GROWTH = 8
#: Worker settings: a small pool, so two workers fit beside other sessions.
WORKER_ARGS = ("--pool-size", "2", "--pool-max-size", "4", "--max-concurrent-isolated", "3")


@dataclass(frozen=True)
class Sample:
    """One reading of both worker trees, summed."""

    time_s: float
    standing_pss_mb: float
    tree_pss_mb: float
    fds: int
    processes: int


def pss_kb(pid: int) -> int:
    """The process's proportional set size, kB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
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


def read_trees(pids: list[int], now_s: float) -> Sample:
    """Sum PSS and fds over every process in the trees rooted at ``pids``."""
    standing_kb = tree_kb = fds = count = 0
    wall_now = time.time()
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
            tree_kb += kb
            standing_kb += kb if age_s >= STANDING_AGE_S else 0
            fds += fd_count(proc.pid)
            count += 1
    return Sample(now_s, standing_kb / 1024, tree_kb / 1024, fds, count)


class Sampler(threading.Thread):
    """Reads the trees every ``sample_s`` until stopped."""

    def __init__(self, pids: list[int], sample_s: float):
        super().__init__(daemon=True)
        self.pids, self.sample_s = pids, sample_s
        self.samples: list[Sample] = []
        self.halt = threading.Event()
        self.began = time.monotonic()

    def run(self) -> None:
        while not self.halt.wait(self.sample_s):
            self.samples.append(read_trees(self.pids, time.monotonic() - self.began))


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
            sampler = Sampler([w.pid for w in workers], args.sample_s)
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


def report(args, figures: dict) -> bool:
    """Print the figures; true when they meet the targets."""
    samples, counts = figures["samples"], figures["tally"]
    print(
        f"soak: {args.duration_s:g} s at {args.rate_per_min:g} jobs/min, prototype mix x"
        f"{args.time_scale:g} time, x{args.memory_scale:g} memory, 2 workers on Redis"
    )
    print(f"jobs: {counts.line()}; dispatcher at most {figures['late_s']:.2f} s late")
    print(f"{'minute':>6}{'standing PSS MB':>17}{'tree PSS MB':>13}{'fds':>6}{'procs':>7}")
    minutes = int(max(1, -(-args.duration_s // 60)))
    for minute in range(1, minutes + 1):
        part = window(samples, minute * 60, 60)
        if part:
            print(
                f"{minute:>6}{median_of(part, 'standing_pss_mb'):>17.1f}"
                f"{median_of(part, 'tree_pss_mb'):>13.1f}{median_of(part, 'fds'):>6.0f}"
                f"{median_of(part, 'processes'):>7.0f}"
            )
    width_s = args.duration_s / 30
    early = window(samples, args.duration_s / 6, width_s)
    late = window(samples, samples[-1].time_s if samples else 0.0, width_s)
    pss_early, pss_late = median_of(early, "standing_pss_mb"), median_of(late, "standing_pss_mb")
    fds_early, fds_late = median_of(early, "fds"), median_of(late, "fds")
    growth_pct = 100.0 * (pss_late - pss_early) / pss_early
    settled = [s.fds for s in samples if s.time_s > args.duration_s / 6]
    print(
        f"standing PSS, minute 5 -> last: {pss_early:.1f} -> {pss_late:.1f} MB "
        f"({growth_pct:+.1f}%); fds {fds_early:.0f} -> {fds_late:.0f} "
        f"(band after minute 5: {min(settled, default=0)}-{max(settled, default=0)})"
    )
    ok = (
        not counts.lost
        and not counts.duplicated
        and all(figures["alive"])
        and growth_pct < MAX_PSS_GROWTH_PCT
        and fds_late - fds_early <= MAX_FD_GROWTH
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
