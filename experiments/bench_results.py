"""Benchmark: what results cost on Redis, against baselines measured in the same run.

Scenario: one private redis-server and one idle ``kqueue run --inline`` worker. First the round
trip of a result: ``dispatch`` an echo job, wait for ``handle.result()``, one at a time,
``--samples`` times (median and p99), then the same awaited (``dispatch_async`` and
``result_async`` on redis.asyncio), beside the same client's bare Redis ``PING`` round trip and
the floor of a queue on this machine: a bare worker process that ``BLPOP``s a request and
``LPUSH``es the reply, with the same idle gap between samples (every wake of an idle process
costs what this host's scheduler and idle CPUs cost, which on a VM sets the tail).
Then the cost of storing results: ``--jobs`` no-op jobs drained by one burst worker with results
kept (the default, 1 hour) and with ``result_ttl_s=0`` (nothing kept), alternating ``--repeat``
times; jobs/s counts from the first finished job to the last (start-up excluded), and each
back-to-back pair gives one ratio (drift in the machine's load moves both runs of a pair). The
machine is shared and noisy: read the ratios printed side by side, not absolute figures.

    python experiments/bench_results.py --samples 500 --jobs 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from bench_redis import BENCH_APP, _worker, drain_rate  # experiments/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.job import App  # noqa: E402
from kqueue.testing import RedisServer  # noqa: E402

#: The benchmark's jobs beside bench_redis's: an echo, and a no-op that keeps no result.
RESULTS_APP = (
    BENCH_APP
    + """

@app.job(name="bench.echo", tier="inline")
def echo(value):
    return value


@app.job(name="bench.noop_unkept", tier="inline", result_ttl_s=0)
def noop_unkept():
    _client().incr("bench:done")
"""
)


def round_trips(server: RedisServer, folder: Path, samples: int) -> dict[str, list[float]]:
    """Seconds of each dispatch -> run -> result() on an idle worker, of the same awaited
    (``dispatch_async`` -> ``result_async``, redis.asyncio), and of each bare PING."""
    app = App(server.url, queue="results")
    echo = app.job(lambda value: value, name="bench.echo")
    worker = _worker(folder, server.url, "results")
    try:
        while not app.backend.worker_statuses():
            time.sleep(0.05)
        echo.dispatch("warm-up").result(timeout_s=30)
        trips, pings = [], []
        for i in range(samples):
            started = time.perf_counter()
            assert echo.dispatch(i).result(timeout_s=10) == i
            trips.append(time.perf_counter() - started)
            started = time.perf_counter()
            app.backend.client.ping()
            pings.append(time.perf_counter() - started)
            time.sleep(0.002)  # idle between samples, as a web request would be
        awaited = asyncio.run(async_round_trips(app, echo, samples))
    finally:
        worker.terminate()
        worker.wait(30)
        app.close()
    return {"sync": trips, "async": awaited, "ping": pings}


async def async_round_trips(app: App, echo, samples: int) -> list[float]:
    """Seconds of each ``await dispatch_async`` -> ``await result_async`` on the idle worker."""
    try:
        await (await echo.dispatch_async("warm-up")).result_async(timeout_s=30)
        trips = []
        for i in range(samples):
            started = time.perf_counter()
            assert await (await echo.dispatch_async(i)).result_async(timeout_s=10) == i
            trips.append(time.perf_counter() - started)
            await asyncio.sleep(0.002)
        return trips
    finally:
        await app.aclose()


def drain(server: RedisServer, folder: Path, jobs: int, name: str) -> float:
    """No-op jobs/s of job ``name`` drained by one burst worker, first to last completion."""
    app = App(server.url, queue="bench")
    client = redis.Redis(port=server.port)
    client.flushdb()
    noop = app.job(lambda: None, name=name)
    for start in range(0, jobs, 5000):
        noop.dispatch_many([((), {})] * min(5000, jobs - start))
    workers = [_worker(folder, server.url, "bench", "--burst")]
    try:
        return drain_rate(client, jobs, workers, folder, timeout_s=300)
    finally:
        workers[0].wait(60)
        client.close()
        app.close()


BARE_ECHO = """
import sys, redis
client = redis.Redis(port=int(sys.argv[1]))
while True:
    _, body = client.blpop(["bare:requests"])
    if body == b"stop":
        break
    client.lpush("bare:replies", body)
"""


def bare_round_trips(server: RedisServer, samples: int) -> list[float]:
    """Seconds of each LPUSH -> bare worker BLPOP and LPUSH -> BLPOP of the reply."""
    worker = subprocess.Popen([sys.executable, "-c", BARE_ECHO, str(server.port)])
    client = redis.Redis(port=server.port)
    try:
        client.lpush("bare:requests", "warm-up")
        client.blpop(["bare:replies"], timeout=30)
        trips = []
        for i in range(samples):
            started = time.perf_counter()
            client.lpush("bare:requests", i)
            client.blpop(["bare:replies"], timeout=10)
            trips.append(time.perf_counter() - started)
            time.sleep(0.002)
        return trips
    finally:
        client.lpush("bare:requests", "stop")
        worker.wait(30)
        client.close()


def quantile(values: list[float], q: int) -> float:
    """The q-th percentile (1..99) of ``values``."""
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=500, help="round trips measured")
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per throughput run")
    parser.add_argument("--repeat", type=int, default=3, help="throughput runs of each kind")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "bench_app.py").write_text(RESULTS_APP)
        with RedisServer(folder / "redis") as server:
            trips = round_trips(server, folder, args.samples)
            trips["bare"] = bare_round_trips(server, args.samples)
            rates: dict[str, list[float]] = {"bench.noop": [], "bench.noop_unkept": []}
            for _ in range(max(1, args.repeat)):
                for name, runs in rates.items():
                    runs.append(drain(server, folder, args.jobs, name))
    ping_ms = statistics.median(trips["ping"]) * 1000
    print(f"{'measure':<46}{'median':>10}{'p99':>10}{'x PING':>9}")
    for label, values in (
        ("result round trip (ms)", trips["sync"]),
        ("same, async client (ms)", trips["async"]),
        ("bare Redis PING (ms)", trips["ping"]),
        ("bare queue round trip, BLPOP worker (ms)", trips["bare"]),
    ):
        median_ms, p99_ms = statistics.median(values) * 1000, quantile(values, 99) * 1000
        print(f"{label:<46}{median_ms:>10.2f}{p99_ms:>10.2f}{median_ms / ping_ms:>9.1f}")
    kept, unkept = (statistics.median(rates[n]) for n in ("bench.noop", "bench.noop_unkept"))
    for label, name in (("results kept", "bench.noop"), ("result_ttl_s=0", "bench.noop_unkept")):
        values = rates[name]
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        print(f"{'no-op jobs/s, ' + label:<46}{statistics.median(values):>10,.0f}  {spread}")
    pairs = [k / u for k, u in zip(rates["bench.noop"], rates["bench.noop_unkept"], strict=True)]
    ratio = statistics.median(pairs)
    spread = f"{min(pairs):.1%}-{max(pairs):.1%}"
    print(f"{'throughput with results / without (medians)':<46}{kept / unkept:>10.1%}")
    print(f"{'same, median of back-to-back pairs':<46}{ratio:>10.1%}  {spread}")
    print(f"{'cost of storing results (pairs)':<46}{1 - ratio:>10.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
