"""Benchmark of the three tiers against baselines measured side by side in the same run.

Every scenario runs ``--runs`` times (3 by default); the pool and its baseline alternate which
goes first, so load from other processes on a shared machine hits both alike. The table shows
medians, the spread (min-max), and the load average before and after. What each clock counts:

- pool: 200 jobs of 50 ms pure-Python CPU on 2 pool processes. Ours: from building the worker
  (its start forks the 2 processes) to its burst run returning (queue drained, processes
  reaped); the jobs are enqueued before the clock starts. Baseline: from creating
  ``multiprocessing.Pool(2)`` (forks 2 processes) through ``map`` over the same calls to the
  pool's exit (terminate, join). Ratio = baseline time / our time; target >= 0.95. Also shown:
  the worker's own CPU per job (``os.times`` of this process), which competes with the two
  pool processes for two cores.
- isolated: 300 no-op jobs, 2 at once, app preloaded: jobs / (worker built -> burst run
  returned); target >= 100 jobs/s, and >= 0.5 of the bare limit measured right after in this
  process (which the worker ran in, so it is of the worker's size): ``os.fork()`` +
  ``os._exit(0)`` + ``waitpid``, 2 children at a time as the tier runs (1 at a time shown
  beside it). Per job: one fork-run-exit-reap cycle at a time through
  the isolated runner alone (no broker), and the part of it spent in ``fork`` in the parent.
- inline: 400 jobs of ``time.sleep(0.1)`` at concurrency 16, from building the worker to its
  burst run returning; ideal 400 x 0.1 s / 16 = 2.5 s; ratio = ideal / ours, target >= 0.95.
- memory: total PSS of a ``kqueue run`` worker and its children with a pool of 10 at rest,
  read 1 s after all 10 processes are up (target <= 150 MB).

Run: ``python experiments/bench_tiers.py [--runs N] [--small]`` from the project root.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import signal
import statistics
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
#: Pool processes in the memory scenario, and the longest wait for them to come up, seconds.
MEMORY_POOL = 10
MEMORY_START_TIMEOUT_S = 30.0


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
    """Loops of ``spin`` that take about ``cpu_s`` seconds of CPU here (best of 3 samples)."""
    loops = 200_000
    best_s = math.inf
    for _ in range(3):
        began = time.process_time()
        spin(loops)
        best_s = min(best_s, time.process_time() - began)
    return max(1000, int(loops * cpu_s / max(1e-6, best_s)))


def _own_cpu_s() -> float:
    times = os.times()
    return times.user + times.system


def run_worker(folder: Path, name: str, calls: list[tuple], **settings) -> tuple[float, float]:
    """Enqueue ``calls`` of job ``name``, run a burst worker in this process.

    Returns the seconds from building the worker to its run returning, and the CPU seconds this
    process (the worker, not its children) spent per job meanwhile.
    """
    bench = app.with_backend(f"sqlite:///{folder / (name + '.db')}")
    bench.jobs[name].dispatch_many([(args, {}) for args in calls])
    config = Config(**settings)
    began, cpu_began = time.perf_counter(), _own_cpu_s()
    summary = asyncio.run(Worker(bench, config, burst=True).run())
    elapsed_s, cpu_s = time.perf_counter() - began, _own_cpu_s() - cpu_began
    assert summary.by_status == {"ok": len(calls)}, summary.by_status
    bench.close()
    (folder / (name + ".db")).unlink()
    return elapsed_s, cpu_s / len(calls)


def baseline_pool(loops: int, jobs: int) -> float:
    """Seconds for ``multiprocessing.Pool(2)``: create, ``map`` the calls, exit."""
    began = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(spin, [loops] * jobs)
    return time.perf_counter() - began


def bench_pool(folder: Path, jobs: int, loops: int, run: int) -> dict:
    """One side-by-side run; the baseline goes first on even runs, second on odd ones."""
    settings = {"pool_size": 2, "pool_max_size": 2}
    if run % 2 == 0:
        baseline_s = baseline_pool(loops, jobs)
        ours_s, cpu_s = run_worker(folder, "bench.spin", [(loops,)] * jobs, **settings)
    else:
        ours_s, cpu_s = run_worker(folder, "bench.spin", [(loops,)] * jobs, **settings)
        baseline_s = baseline_pool(loops, jobs)
    return {
        "ours_s": ours_s,
        "baseline_s": baseline_s,
        "ratio": baseline_s / ours_s,
        "cpu_s": cpu_s,
    }


def bench_isolated(folder: Path, jobs: int) -> dict:
    """Throughput at 2 at once through the worker, then the cost of one cycle at a time."""
    settings = {"pool_size": 0, "pool_max_size": 0, "max_concurrent_isolated": 2}
    ours_s, cpu_s = run_worker(folder, "bench.noop", [()] * jobs, **settings)
    bare_per_s = bare_forks_per_s(jobs, 2)
    per_job_ms, fork_ms = asyncio.run(_one_at_a_time(min(jobs, 50)))
    return {
        "jobs_per_s": jobs / ours_s,
        "per_job_ms": per_job_ms,
        "fork_ms": fork_ms,
        "cpu_s": cpu_s,
        "bare_per_s": bare_per_s,
        "bare_one_per_s": bare_forks_per_s(jobs, 1),
        "ratio": jobs / ours_s / bare_per_s,
    }


def bare_forks_per_s(count: int, at_once: int) -> float:
    """The isolated tier's limit: ``os.fork()`` + ``os._exit(0)`` + ``waitpid``, ``at_once``
    children at a time, from this process (the worker just ran in it: a process of its size)."""
    began = time.perf_counter()
    running = done = 0
    while done < count:
        while running < at_once and done + running < count:
            if os.fork() == 0:
                os._exit(0)
            running += 1
        os.waitpid(-1, 0)
        running, done = running - 1, done + 1
    return count / (time.perf_counter() - began)


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
    return total_s / jobs * 1000, statistics.median(forks) * 1000


def bench_inline(folder: Path, jobs: int) -> dict:
    """400 sleeps of 0.1 s at concurrency 16 against the ideal 2.5 s."""
    ideal_s = jobs * 0.1 / 16
    settings = {"pool_size": 0, "pool_max_size": 0, "max_concurrent_inline": 16}
    ours_s, cpu_s = run_worker(folder, "bench.nap", [(0.1,)] * jobs, **settings)
    return {"ours_s": ours_s, "ideal_s": ideal_s, "ratio": ideal_s / ours_s, "cpu_s": cpu_s}


def bench_memory(folder: Path) -> dict:
    """Total PSS of a ``kqueue run`` worker with a pool of 10 at rest."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "experiments")])}
    url = f"sqlite:///{folder / 'memory.db'}"
    command = [sys.executable, "-m", "kqueue", "run", "--app", "bench_tiers:app"]
    command += ["--backend", url, "--pool-size", str(MEMORY_POOL)]
    command += ["--pool-max-size", str(MEMORY_POOL)]
    worker = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + MEMORY_START_TIMEOUT_S
        while _children(worker.pid) < MEMORY_POOL and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        pss_mb, processes = family_pss_mb(worker.pid), 1 + _children(worker.pid)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    return {"pss_mb": pss_mb, "processes": processes}


def _children(pid: int) -> int:
    """The processes below ``pid`` that run jobs (not the pool's zygote)."""
    from kqueue.tiers.procs import workers_children

    return len(workers_children(pid))


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _spread(runs: list[dict], key: str, fmt: str) -> str:
    values = [run[key] for run in runs]
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def table(pool: list[dict], isolated: list[dict], inline: list[dict], memory: list[dict]) -> list:
    """The rows printed: scenario, median measured, spread over runs, median ratio, target."""
    m = _median
    return [
        ("pool vs Pool(2).map", f"{m(pool, 'ours_s'):.2f} s vs {m(pool, 'baseline_s'):.2f} s",
         _spread(pool, "ratio", ".2f"), f"{m(pool, 'ratio'):.2f}", ">= 0.95"),
        ("pool, worker CPU/job", f"{m(pool, 'cpu_s') * 1000:.2f} ms", "", "", ""),
        ("isolated, 2 at once", f"{m(isolated, 'jobs_per_s'):.0f} jobs/s",
         _spread(isolated, "jobs_per_s", ".0f"), "", ">= 100 jobs/s"),
        ("isolated / bare forks", f"{m(isolated, 'bare_per_s'):.0f} bare forks/s 2 at once, "
         f"{m(isolated, 'bare_one_per_s'):.0f} 1 at a time", _spread(isolated, "ratio", ".2f"),
         f"{m(isolated, 'ratio'):.2f}", ">= 0.5"),
        ("isolated, per job", f"{m(isolated, 'per_job_ms'):.1f} ms (fork "
         f"{m(isolated, 'fork_ms'):.1f}), worker CPU {m(isolated, 'cpu_s') * 1000:.2f} ms",
         _spread(isolated, "per_job_ms", ".1f"), "", ""),
        ("inline vs ideal", f"{m(inline, 'ours_s'):.2f} s vs {m(inline, 'ideal_s'):.2f} s",
         _spread(inline, "ratio", ".2f"), f"{m(inline, 'ratio'):.2f}", ">= 0.95"),
        (f"memory, pool of {MEMORY_POOL}", f"{m(memory, 'pss_mb'):.0f} MB PSS "
         f"({memory[0]['processes']} processes)", _spread(memory, "pss_mb", ".0f"), "",
         "<= 150 MB"),
    ]  # fmt: skip


def measure(size: dict, runs: int) -> list:
    """Every scenario ``runs`` times in one process, in a scratch folder; the table rows."""
    loops = calibrate(size["cpu_s"])
    results: dict[str, list[dict]] = {"pool": [], "isolated": [], "inline": [], "memory": []}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for run in range(runs):
            results["pool"].append(bench_pool(folder, size["pool_jobs"], loops, run))
            results["isolated"].append(bench_isolated(folder, size["isolated_jobs"]))
            results["inline"].append(bench_inline(folder, size["inline_jobs"]))
            results["memory"].append(bench_memory(folder))
    return table(results["pool"], results["isolated"], results["inline"], results["memory"])


def main(argv: list[str] | None = None) -> int:
    """Run every scenario and print the table; returns 0 when every scenario ran."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small counts and 1 run, for CI")
    parser.add_argument("--runs", type=int, help="repetitions of each scenario (default 3)")
    args = parser.parse_args(argv)
    size = SMALL if args.small else FULL
    runs = args.runs or (1 if args.small else 3)
    load_before = os.getloadavg()
    rows = measure(size, runs)
    load_after = os.getloadavg()
    print(f"medians over {runs} run(s); load average (1, 5, 15 min) before "
          f"{_load(load_before)}, after {_load(load_after)}; {os.cpu_count()} CPUs")  # fmt: skip
    print(f"{'scenario':<22}{'measured (median)':<48}{'spread':<12}{'ratio':<7}target")
    for name, measured, spread, ratio, target in rows:
        print(f"{name:<22}{measured:<48}{spread:<12}{ratio:<7}{target}")
    return 0


def _load(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.1f}" for value in load)


if __name__ == "__main__":
    sys.exit(main())
