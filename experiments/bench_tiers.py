"""Benchmark of the three tiers against baselines measured side by side in the same run.

Scenarios (full size; ``--small`` shrinks the counts for CI):

- pool: 200 jobs of 50 ms pure-Python CPU on 2 pool processes, from worker start to the last
  job done, vs a plain ``multiprocessing.Pool(2).map`` over the same calls (pool start included);
  target: our time is at most 1/0.95 of the baseline's (ratio >= 0.95).
- isolated: 300 no-op jobs, 2 at once, app preloaded: jobs/s (target >= 100), and the per-job cost
  of a fork-run-exit-reap cycle in ms, one at a time.
- inline: 400 jobs of ``time.sleep(0.1)`` at concurrency 16, from worker start: ideal 2.5 s,
  target ratio ideal/actual >= 0.95.
- memory: total PSS of a ``kqueue run`` worker with a pool of 10 at rest (target <= 150 MB).

Run: ``python experiments/bench_tiers.py [--small]`` from the project root. Timings on a shared
2-core machine are noisy: compare the ratios, which are measured in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.job import App  # noqa: E402
from kqueue.policy.config import Config, JobSettings, Tier  # noqa: E402
from kqueue.tiers.base import Invocation  # noqa: E402
from kqueue.tiers.isolated import IsolatedRunner  # noqa: E402
from kqueue.tiers.procs import family_pss_mb  # noqa: E402
from kqueue.worker import Worker  # noqa: E402

app = App("sqlite:///" + str(Path(tempfile.gettempdir()) / "kqueue-bench-unused.db"))
FULL = {"pool_jobs": 200, "cpu_s": 0.05, "isolated_jobs": 300, "inline_jobs": 400}
SMALL = {"pool_jobs": 40, "cpu_s": 0.02, "isolated_jobs": 40, "inline_jobs": 64}


def spin(loops: int) -> int:
    """Pure-Python CPU work: ``loops`` multiply-adds."""
    total = 0
    for i in range(loops):
        total += i * i
    return total


app.job(spin, name="bench.spin", tier="pool")


@app.job(name="bench.noop", tier="isolated")
def noop() -> None:
    """Does nothing: measures the tier's own cost."""


@app.job(name="bench.nap", tier="inline")
def nap(seconds: float) -> None:
    """Sleeps ``seconds`` (a blocking I/O stand-in)."""
    time.sleep(seconds)


def calibrate(cpu_s: float) -> int:
    """Loops of ``spin`` that take about ``cpu_s`` seconds here."""
    loops, began = 200_000, time.process_time()
    spin(loops)
    return max(1000, int(loops * cpu_s / max(1e-6, time.process_time() - began)))


def run_worker(folder: Path, name: str, calls: list[tuple], **settings) -> float:
    """Enqueue ``calls`` of job ``name``, run a burst worker; seconds from worker start to done."""
    bench = app.with_backend(f"sqlite:///{folder / (name + '.db')}")
    bench.jobs[name].dispatch_many([(args, {}) for args in calls])
    config = Config(**settings)
    began = time.perf_counter()
    summary = asyncio.run(Worker(bench, config, burst=True).run())
    elapsed_s = time.perf_counter() - began
    assert summary.by_status == {"ok": len(calls)}, summary.by_status
    bench.close()
    return elapsed_s


def bench_pool(folder: Path, jobs: int, cpu_s: float) -> dict:
    loops = calibrate(cpu_s)
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(spin, [loops] * jobs)
    baseline_s = time.perf_counter() - began
    ours_s = run_worker(
        folder, "bench.spin", [(loops,)] * jobs, pool_size=2, pool_max_size=2, poll_interval_s=0.05
    )
    return {"ours_s": ours_s, "baseline_s": baseline_s, "ratio": baseline_s / ours_s}


def bench_isolated(folder: Path, jobs: int) -> dict:
    ours_s = run_worker(
        folder, "bench.noop", [()] * jobs, pool_size=0, pool_max_size=0, max_concurrent_isolated=2
    )
    per_job_ms, fork_ms = asyncio.run(_one_at_a_time(min(jobs, 50)))
    return {"jobs_per_s": jobs / ours_s, "per_job_ms": per_job_ms, "fork_ms": fork_ms}


async def _one_at_a_time(jobs: int) -> tuple[float, float]:
    runner = IsolatedRunner(app, Config())
    await runner.start()
    settings = JobSettings(Tier.ISOLATED, None, 60.0, 1024.0, 1)
    invocation = Invocation("bench", app.jobs["bench.noop"], [], {}, settings, 1)
    began, forks = time.perf_counter(), []
    for _ in range(jobs):
        outcome = await runner.run(invocation)
        forks.append(outcome.extra["spawn_s"])
    total_s = time.perf_counter() - began
    await runner.stop(0.0)
    return total_s / jobs * 1000, sum(forks) / len(forks) * 1000


def bench_inline(folder: Path, jobs: int) -> dict:
    ideal_s = jobs * 0.1 / 16
    ours_s = run_worker(
        folder,
        "bench.nap",
        [(0.1,)] * jobs,
        pool_size=0,
        pool_max_size=0,
        max_concurrent_inline=16,
        poll_interval_s=0.05,
    )
    return {"ours_s": ours_s, "ideal_s": ideal_s, "ratio": ideal_s / ours_s}


def bench_memory(folder: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "experiments")])}
    url = f"sqlite:///{folder / 'memory.db'}"
    command = [sys.executable, "-m", "kqueue", "run", "--app", "bench_tiers:app"]
    command += ["--backend", url, "--pool-size", "10", "--pool-max-size", "10"]
    worker = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3.0)
        pss_mb = family_pss_mb(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    return {"pss_mb": pss_mb}


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print the table; returns 0 when every scenario ran."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small counts, for CI")
    args = parser.parse_args(argv)
    size = SMALL if args.small else FULL
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        pool = bench_pool(folder, size["pool_jobs"], size["cpu_s"])
        isolated = bench_isolated(folder, size["isolated_jobs"])
        inline = bench_inline(folder, size["inline_jobs"])
        memory = bench_memory(folder)
    rows = [
        ("pool vs Pool(2).map", f"{pool['ours_s']:.2f} s vs {pool['baseline_s']:.2f} s",
         f"{pool['ratio']:.2f}", ">= 0.95"),
        ("isolated, 2 at once", f"{isolated['jobs_per_s']:.0f} jobs/s", "", ">= 100 jobs/s"),
        ("isolated, per job", f"{isolated['per_job_ms']:.1f} ms (fork {isolated['fork_ms']:.1f})",
         "", ""),
        ("inline vs ideal", f"{inline['ours_s']:.2f} s vs {inline['ideal_s']:.2f} s",
         f"{inline['ratio']:.2f}", ">= 0.95"),
        ("memory, pool of 10", f"{memory['pss_mb']:.0f} MB PSS", "", "<= 150 MB"),
    ]  # fmt: skip
    print(f"{'scenario':<22}{'measured':<34}{'ratio':<7}target")
    for name, measured, ratio, target in rows:
        print(f"{name:<22}{measured:<34}{ratio:<7}{target}")
    return 0 if all(not math.isnan(v) for v in (pool["ratio"], memory["pss_mb"])) else 1


if __name__ == "__main__":
    sys.exit(main())
