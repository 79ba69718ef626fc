"""Benchmark: kqueue's Redis backend against the raw ceiling of the same Redis, in one run.

Scenario: one private redis-server (never a shared one). First the raw ceiling: redis-benchmark's
non-pipelined LPUSH and RPOP (50 clients), or the same commands from one redis-py client when
redis-benchmark is missing. Then kqueue: ``--jobs`` no-op jobs (each does one Redis INCR with its
own per-thread client) are enqueued, and one, then two ``kqueue run --inline --burst`` processes
drain them; jobs/s counts from the first finished job to the last (process start-up excluded).
Finally the latency from dispatch to start on an idle worker (one job at a time, p50/p99).
The machine is shared and noisy: compare the ratios printed side by side, not absolute figures;
``--repeat`` alternates the 1- and 2-process runs and prints their medians and ranges.

    python experiments/bench_redis.py --jobs 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.job import App  # noqa: E402
from kqueue.testing import RedisServer  # noqa: E402

#: The jobs' own Redis client, created lazily, one per thread (the peers' apps use it too).
BENCH_CLIENT = """
import os, threading, time
import redis

_local = threading.local()


def _client():
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return client
"""

#: The jobs the workers run.
BENCH_APP = (
    BENCH_CLIENT
    + """
from kqueue import App

app = App()


@app.job(name="bench.noop", tier="inline")
def noop():
    _client().incr("bench:done")


@app.job(name="bench.stamp", tier="inline")
def stamp(sent_at):
    _client().rpush("bench:latency", time.time() - sent_at)
"""
)

POLL_S = 0.002
LATENCY_GAP_S = 0.02


def ceiling(server: RedisServer, requests: int) -> dict[str, float]:
    """Operations/s of non-pipelined LPUSH and RPOP on this server."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return _ceiling_redis_py(server, requests)
    command = [binary, "-p", str(server.port), "-t", "lpush,rpop", "-n", str(requests), "--csv"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rates = {}
    for line in output.splitlines():
        cells = [cell.strip('"') for cell in line.split(",")]
        if cells[0] in ("LPUSH", "RPOP"):
            rates[cells[0]] = float(cells[1])
    return rates


def _ceiling_redis_py(server: RedisServer, requests: int) -> dict[str, float]:
    client = redis.Redis(port=server.port)
    rates = {}
    for name, call in (("LPUSH", client.lpush), ("RPOP", client.rpop)):
        started = time.perf_counter()
        for _ in range(requests):
            call("ceiling", "x") if name == "LPUSH" else call("ceiling")
        rates[name] = requests / (time.perf_counter() - started)
    client.close()
    return rates


def _worker(folder: Path, url: str, queue: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, BENCH_REDIS_URL=url, PYTHONPATH=f"{ROOT}{os.pathsep}{folder}")
    command = [sys.executable, "-m", "kqueue", "run", "--app", "bench_app:app", "--backend", url]
    command += ["--queue", queue, "--inline", *extra]
    log = open(folder / f"worker-{queue}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    return subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)


def throughput(server: RedisServer, folder: Path, jobs: int, processes: int) -> float:
    """No-op jobs/s drained by ``processes`` burst workers, first to last completion."""
    app = App(server.url, queue="bench")
    client = redis.Redis(port=server.port)
    client.flushdb()
    noop = app.job(lambda: None, name="bench.noop")
    for start in range(0, jobs, 5000):
        noop.dispatch_many([((), {})] * min(5000, jobs - start))
    workers = [_worker(folder, server.url, "bench", "--burst") for _ in range(processes)]
    try:
        rate = drain_rate(client, jobs, workers, folder)
    finally:
        for worker in workers:
            worker.wait(60)
    client.close()
    app.close()
    return rate


def drain_rate(
    client: redis.Redis,
    jobs: int,
    workers: list[subprocess.Popen],
    folder: Path,
    timeout_s: float = float("inf"),
) -> float:
    """Jobs/s of ``workers`` as seen in the ``bench:done`` counter, first completion to last.

    Start-up is excluded the same way for every queue measured: the clock starts when the
    counter first moves, and the jobs counted by then are left out.

    Raises:
        RuntimeError: a worker exited with an error, or ``timeout_s`` passed, before all
            ``jobs`` were done.
    """
    done = first_done = 0
    first_at = started_at = time.perf_counter()
    while done < jobs:
        if time.perf_counter() - started_at > timeout_s:
            raise RuntimeError(f"{done} of {jobs} done after {timeout_s:.0f} s; logs in {folder}")
        done = int(client.get("bench:done") or 0)
        if done and not first_done:
            first_done, first_at = done, time.perf_counter()
        if any(w.poll() not in (None, 0) for w in workers):
            raise RuntimeError(f"a worker failed; see the logs in {folder}")
        time.sleep(POLL_S)
    return (jobs - first_done) / (time.perf_counter() - first_at)


def latency(server: RedisServer, folder: Path, samples: int) -> tuple[float, float]:
    """p50 and p99 seconds from dispatch to start, one job at a time on an idle worker."""
    app = App(server.url, queue="latency")
    client = redis.Redis(port=server.port)
    client.flushdb()
    stamp = app.job(lambda sent_at: None, name="bench.stamp")
    worker = _worker(folder, server.url, "latency")
    while not app.backend.worker_statuses():
        time.sleep(0.05)
    for _ in range(samples):
        stamp.dispatch(time.time())
        time.sleep(LATENCY_GAP_S)
    while client.llen("bench:latency") < samples:
        time.sleep(0.01)
    values = sorted(float(x) for x in client.lrange("bench:latency", 0, -1))
    worker.terminate()
    worker.wait(30)
    client.close()
    app.close()
    cuts = statistics.quantiles(values, n=100)
    return cuts[49], cuts[98]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per throughput run")
    parser.add_argument("--samples", type=int, default=200, help="latency samples")
    parser.add_argument("--repeat", type=int, default=1, help="throughput runs (medians shown)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "bench_app.py").write_text(BENCH_APP)
        with RedisServer(folder / "redis") as server:
            raw = ceiling(server, max(10_000, args.jobs * 5))
            runs: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(max(1, args.repeat)):
                for processes, rates in runs.items():
                    rates.append(throughput(server, folder, args.jobs, processes))
            p50, p99 = latency(server, folder, args.samples)
    top = min(raw.values())
    print(f"{'measure':<44}{'value':>14}{'of ceiling':>12}  {'range':>15}")
    for name, rate in sorted(raw.items()):
        print(f"{'ceiling ' + name + ' ops/s (non-pipelined)':<44}{rate:>14,.0f}")
    for processes, rates in runs.items():
        label = f"kqueue no-op jobs/s, {processes} worker process" + ("es" if processes > 1 else "")
        rate = statistics.median(rates)
        spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else ""
        print(f"{label:<44}{rate:>14,.0f}{rate / top:>12.1%}  {spread:>15}")
    print(f"{'latency dispatch->start p50 (ms)':<44}{p50 * 1000:>14.1f}")
    print(f"{'latency dispatch->start p99 (ms)':<44}{p99 * 1000:>14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
