"""Soak: 30 minutes at 1000 jobs/min of the prototype mix on two workers, watching for leaks.

Scenario: one private redis-server; two ``kqueue run`` worker processes (each with its pool and
isolated children) serve the prototype mix (``sim.model.workload.PROTOTYPE_MIX``: 70% fast
inline, 25% medium pool, 5% heavy isolated), dispatched at its Poisson arrival times at
``--rate-per-min``. Durations and CPU times are scaled by ``--time-scale`` (0.01: a heavy job
takes about 0.45 s) and memory by ``--memory-scale`` so a busy 2-core host holds the rate; each
job logs its start and finish to a file (``kqueue.ops.attempts``), which gives lost and
duplicated jobs exactly.

Every ``--sample-s`` the sampler reads every process of each worker's tree
(``kqueue.ops.procmem``): PSS, private (USS) and resident memory, open descriptors. Each process
has its role: a worker (the ``kqueue run`` process), a pool process (listed in its worker's
published status) or an isolated child (any other). The *standing* processes are the workers
and their pools. Their PSS moves with how many isolated children share their pages at that
instant, so the sampler also counts, as root, the distinct anonymous pages the standing
processes map together (``anon_unique_mb``), which sharing does not move: that is where a leak
would grow. The memory target is judged, as the issue states it, on the worker trees' PSS (every
process of both trees): the sum of PSS over the trees counts each page they map once, whatever
its sharing among them, so a page unshared by copy-on-write counts as the new page it is; it
also moves with the file-backed pages (code, libraries) other processes on the host share with
the trees, which the distinct anonymous memory, printed beside it, does not count.

Printed: lost/duplicated counts; per minute the medians by role; and a table for the README:
minute 5 against minute 30 (the windows scale with ``--duration-s``: the minute ending at a
sixth of the run, and the last minute of dispatch, not the drain after it, when no isolated
child is left to share pages), in samples where every pool process was there (not one being
replaced), each window's median and its lowest sample side by side. The memory of a sample
includes what the pool jobs running at that instant hold (7-35 MB each), so the medians move
with how many run; a window's lowest sample, the one with the least job memory in flight, is
the nearest to what the processes hold standing, and the memory target is judged on it. With
``--check`` (default for runs of 10 minutes or more) it exits 1 unless nothing was lost or
duplicated, the worker trees' PSS's lowest sample grew less than ``MAX_MEMORY_GROWTH_PCT`` and
the standing fds (medians) grew at most ``MAX_FD_GROWTH``.

    python experiments/soak.py                             # the full 30 minutes (not niced:
                                                           # it must keep up with the rate)
    python experiments/soak.py --duration-s 60             # CI
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_mix import prototype_rows  # noqa: E402
from soak_trees import BREAKDOWN_HEADER, Sample, Sampler  # noqa: E402

from kqueue.job import App  # noqa: E402
from kqueue.ops.attempts import dispatch_paced, finished_count, tally, write_app  # noqa: E402
from kqueue.testing import RedisServer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MAX_MEMORY_GROWTH_PCT = 5.0
#: fds the standing processes may gain between the windows (a worker holds four per live child,
#: so the medians move by a few with how many isolated children happen to be running).
MAX_FD_GROWTH = 8
#: Worker settings: a small pool of fixed size (it does not scale, so the standing processes are
#: the same few the whole run), so two workers fit beside other sessions.
WORKER_ARGS = ("--pool-size", "3", "--pool-max-size", "3", "--max-concurrent-isolated", "3")


def start_worker(
    folder: Path, url: str, attempts: Path, index: int, extra: tuple[str, ...] = ()
) -> subprocess.Popen:
    """One ``kqueue run`` process serving the attempts app (``extra``: more of its options), its
    output in a log file."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(folder)])
    env["KQUEUE_ATTEMPTS_DIR"] = str(attempts)
    env["KQUEUE_HOST_LABEL"] = f"w{index}"
    with open(folder / f"worker-{index}.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "kqueue", "run", "--app", "attempts_app:app"]
            + ["--backend", url, *WORKER_ARGS, *extra],
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
        extra = worker_config(folder, args.max_jobs_per_worker)
        with RedisServer(folder / "redis") as server:
            workers = [start_worker(folder, server.url, attempts, i, extra) for i in range(2)]
            pids = [w.pid for w in workers]
            sampler = Sampler(pids, args.sample_s, server.url, args.breakdown_s)
            app = App(server.url)
            try:
                sampler.start()
                late_s = dispatch_paced(app, rows)
                dispatched_s = time.monotonic() - sampler.began
                drain(attempts, jobs, args.drain_s)
                time.sleep(2.0)  # a straggling duplicate would show in this time
                sampler.halt.set()
                sampler.join()
                alive = [w.poll() is None for w in workers]
                left = app.backend.counts().get("default", {})
            finally:
                sampler.halt.set()
                app.close()
                stop(workers)
            counts = tally(range(jobs), attempts)
    return {"jobs": jobs, "tally": counts, "samples": sampler.samples, "late_s": late_s,
            "alive": alive, "dispatched_s": dispatched_s, "left": left,
            "breakdowns": sampler.breakdowns}  # fmt: skip


def worker_config(folder: Path, max_jobs_per_worker: int | None) -> tuple[str, ...]:
    """The workers' extra options: a ``kqueue.toml`` setting ``max_jobs_per_worker`` when given
    (high enough, no pool process is recycled in the run)."""
    if max_jobs_per_worker is None:
        return ()
    path = folder / "kqueue.toml"
    path.write_text(f"max_jobs_per_worker = {max_jobs_per_worker}\n")
    return ("--config", str(path))


def drain(attempts: Path, jobs: int, idle_s: float) -> None:
    """Wait until every job finished, or until none finished for ``idle_s`` seconds.

    A starved run (other load on the host) can end its dispatch with minutes of backlog; a fixed
    deadline would count the jobs still queued as lost.
    """
    done, last_progress = finished_count(attempts), time.monotonic()
    while done < jobs and time.monotonic() - last_progress < idle_s:
        time.sleep(1.0)
        now_done = finished_count(attempts)
        if now_done > done:
            done, last_progress = now_done, time.monotonic()


#: The per-minute table: (field, header, format).
COLUMNS = (("workers_pss_mb", "workers MB", ".1f"), ("workers_rss_mb", "w RSS", ".1f"),
           ("pool_pss_mb", "pool MB", ".1f"), ("pool_uss_mb", "pool USS", ".1f"),
           ("standing_pss_mb", "standing MB", ".1f"), ("standing_anon_mb", "anon MB", ".1f"),
           ("isolated", "iso", ".0f"), ("tree_pss_mb", "tree MB", ".1f"),
           ("workers_fds", "w fds", ".0f"), ("pool_fds", "pool fds", ".0f"),
           ("isolated_fds", "iso fds", ".0f"))  # fmt: skip
#: The README table's rows: (label, field).
FIGURES = (
    ("workers + pools (standing), distinct anonymous memory, MB", "standing_anon_mb"),
    ("workers + pools (standing), PSS, MB", "standing_pss_mb"),
    ("the 2 worker processes, PSS, MB", "workers_pss_mb"),
    ("the 2 worker processes, RSS, MB", "workers_rss_mb"),
    ("the pool processes, PSS, MB", "pool_pss_mb"),
    ("the pool processes, private (USS), MB", "pool_uss_mb"),
    ("isolated children alive", "isolated"),
    ("whole trees, PSS, MB", "tree_pss_mb"),
    ("open fds: workers + pools (standing)", "standing_fds"),
    ("open fds: the 2 workers", "workers_fds"),
    ("open fds: the pool processes", "pool_fds"),
)


def median_of(samples: list[Sample], field: str) -> float:
    """The median of one field (or property) over ``samples`` (nan when empty)."""
    values = [getattr(s, field) for s in samples]
    return statistics.median(values) if values else float("nan")


def lowest_of(samples: list[Sample], field: str) -> float:
    """The lowest value of one field over ``samples`` (nan when empty): for memory, the sample
    with the least job memory in flight, the nearest to what the processes hold standing."""
    values = [getattr(s, field) for s in samples]
    return min(values) if values else float("nan")


def full(samples: list[Sample]) -> list[Sample]:
    """The samples in which every pool process was there (not one just being replaced)."""
    if not samples:
        return []
    usual = statistics.mode((s.workers, s.pool) for s in samples)
    return [s for s in samples if (s.workers, s.pool) == usual]


def windows(args, figures: dict) -> tuple[list[Sample], list[Sample], float, float]:
    """The early and late samples (full ones) and the minute each window ends at."""
    width_s = max(args.duration_s / 30, 3 * args.sample_s)
    steady = full(figures["samples"])
    early_end_s = args.duration_s / 6
    late_end_s = min(figures["dispatched_s"], steady[-1].time_s if steady else 0.0)
    early = window(steady, early_end_s, width_s)
    late = window(steady, late_end_s, width_s)
    return early, late, early_end_s / 60, late_end_s / 60


def growth(early: float, late: float) -> float:
    """Percent growth from ``early`` to ``late`` (inf when ``early`` is 0)."""
    return 100.0 * (late - early) / early if early else math.inf


def change(early: float, late: float, field: str) -> str:
    """``+1.2%`` for memory, ``+3`` for counts."""
    if "mb" not in field:
        return f"{late - early:+.0f}"
    return f"{100.0 * (late - early) / early:+.1f}%" if early else "n/a"


def print_minutes(args, samples: list[Sample]) -> None:
    """Per minute, the medians of every column."""
    print("per minute, medians over all samples (roles: workers, pool processes, isolated)")
    print(f"{'minute':>6}" + "".join(f"{label:>12}" for _, label, _ in COLUMNS))
    for minute in range(1, int(max(1, -(-args.duration_s // 60))) + 1):
        part = window(samples, minute * 60, 60)
        if part:
            cells = "".join(f"{median_of(part, f):>12{spec}}" for f, _, spec in COLUMNS)
            print(f"{minute:>6}{cells}")


def report(args, figures: dict) -> bool:
    """Print the figures; true when they meet the targets."""
    samples, counts = figures["samples"], figures["tally"]
    print(
        f"soak: {args.duration_s:g} s at {args.rate_per_min:g} jobs/min, prototype mix x"
        f"{args.time_scale:g} time, x{args.memory_scale:g} memory, 2 workers on Redis"
    )
    print(f"jobs: {counts.line()}; the last batch went out {figures['late_s']:.2f} s late")
    left = {state: n for state, n in figures["left"].items() if n}
    if counts.lost:
        print(f"not finished at the end, in the queue by state: {left or 'none'}")
    times = [0.0] + [s.time_s for s in samples]
    gap_s = max((b - a for a, b in itertools.pairwise(times)), default=0.0)
    print(f"samples: {len(samples)}, every {args.sample_s:g} s; longest gap {gap_s:.1f} s"
          + (" (the sampler was starved or stopped: windows may be empty)"
             if gap_s > 10 * args.sample_s else ""))  # fmt: skip
    print_minutes(args, samples)
    early, late, early_min, late_min = windows(args, figures)
    print(f"\n| measure ({len(early)} and {len(late)} samples) | minute {early_min:.3g}, "
          f"median | minute {late_min:.3g}, median | change | minute {early_min:.3g}, lowest "
          f"| minute {late_min:.3g}, lowest | change |\n|---|---|---|---|---|---|---|")  # fmt: skip
    medians, lowest = {}, {}
    for label, field in FIGURES:
        medians[field] = median_of(early, field), median_of(late, field)
        lowest[field] = lowest_of(early, field), lowest_of(late, field)
        spec = ".1f" if "mb" in field else ".0f"
        cells = " | ".join(
            f"{one:{spec}} | {two:{spec}} | {change(one, two, field)}"
            for one, two in (medians[field], lowest[field])
        )
        print(f"| {label} | {cells} |")
    print(f"| jobs | {counts.dispatched:,} dispatched | {counts.finished:,} finished | "
          f"{len(counts.lost)} lost, {len(counts.duplicated)} duplicated "
          f"({len(counts.unexplained)} unexplained) | | | |")  # fmt: skip
    judged, also = "tree_pss_mb", "standing_anon_mb"  # the measure; the sharing-free one
    growth_pct, median_pct = (growth(*lowest[judged]), growth(*medians[judged]))
    fd_growth = medians["standing_fds"][1] - medians["standing_fds"][0]
    print(
        f"worker tree PSS ({judged}), minute {early_min:.3g} -> {late_min:.3g}, lowest sample: "
        f"{lowest[judged][0]:.1f} -> {lowest[judged][1]:.1f} MB ({growth_pct:+.1f}%, target < "
        f"{MAX_MEMORY_GROWTH_PCT:g}%); medians {medians[judged][0]:.1f} -> "
        f"{medians[judged][1]:.1f} MB ({median_pct:+.1f}%, with the jobs in flight); standing "
        f"distinct anonymous memory ({also}, not judged), lowest {lowest[also][0]:.1f} -> "
        f"{lowest[also][1]:.1f} MB ({growth(*lowest[also]):+.1f}%), medians "
        f"{medians[also][0]:.1f} -> {medians[also][1]:.1f} MB ({growth(*medians[also]):+.1f}%); "
        f"standing fds {medians['standing_fds'][0]:.0f} -> {medians['standing_fds'][1]:.0f} "
        f"({fd_growth:+.0f}, target <= {MAX_FD_GROWTH})"
    )
    ok = (
        not counts.lost
        and not counts.duplicated
        and all(figures["alive"])
        and growth_pct < MAX_MEMORY_GROWTH_PCT
        and fd_growth <= MAX_FD_GROWTH
    )
    print("targets met" if ok else "TARGETS MISSED")
    return ok


def write_samples(path: Path, samples: list[Sample]) -> None:
    """Every sample as a CSV row (its fields, in order)."""
    names = [f.name for f in dataclasses.fields(Sample)]
    write_rows(path, names, [[getattr(s, n) for n in names] for s in samples])


def write_rows(path: Path, header, rows) -> None:
    """A CSV file: the header, then the rows."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the soak, print it; exit 1 on a missed target with --check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=1800.0)
    parser.add_argument("--rate-per-min", type=float, default=1000.0)
    parser.add_argument("--time-scale", type=float, default=0.01)
    parser.add_argument("--memory-scale", type=float, default=0.1)
    parser.add_argument("--sample-s", type=float, default=None, help="default: duration / 360")
    parser.add_argument(
        "--drain-s",
        type=float,
        default=120.0,
        help="end the drain after this long without progress",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples-out", type=Path, help="write every sample to this CSV")
    parser.add_argument("--check", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument(
        "--max-jobs-per-worker",
        type=int,
        help="the pool's recycling (config max_jobs_per_worker; default the config's 1000)",
    )
    parser.add_argument(
        "--smaps-out",
        type=Path,
        help="write every standing process's mappings by kind, every --breakdown-s, to this CSV",
    )
    parser.add_argument("--breakdown-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.sample_s is None:
        args.sample_s = max(0.5, args.duration_s / 360)
    check = args.check if args.check is not None else args.duration_s >= 600
    if not args.smaps_out:
        args.breakdown_s = 0.0
    figures = soak(args)
    if args.samples_out:
        write_samples(args.samples_out, figures["samples"])
    if args.smaps_out:
        write_rows(args.smaps_out, BREAKDOWN_HEADER, figures["breakdowns"])
    ok = report(args, figures)
    counts = figures["tally"]
    if counts.lost or counts.duplicated or not all(figures["alive"]):
        return 1  # never acceptable, at any length
    return 0 if ok or not check else 1


if __name__ == "__main__":
    sys.exit(main())
