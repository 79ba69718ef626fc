"""Benchmark: what ``wait_replicas=1`` (Redis ``WAIT`` after dispatch and ack) costs, in one run.

Scenario: one private primary with one replica and three sentinels (``tests.support.sentinel``).
The same work runs through three URLs of that one primary, alternating, ``--repeat`` times:
``redis://`` straight to it (the baseline), ``redis+sentinel://`` (the master found through the
sentinels), and ``redis+sentinel://...?wait_replicas=1``. Measured for each: single dispatches
per second from one client (each one round trip, plus ``WAIT``'s replica round trip; timed in
chunks of 50 with the modes interleaved, median of the chunks), and the
no-op jobs per second one ``kqueue run --inline --burst`` with 16 slots drains (acks go in
batches with the next lease, so one ``WAIT`` covers a batch), first completion to last. Medians
and ratios to the baseline are printed side by side, each mode going first in turn; the machine
is shared: compare ratios, not figures.

    python experiments/bench_wait.py --jobs 5000 --repeat 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_redis import BENCH_APP, drain_rate  # noqa: E402

from kqueue.job import App  # noqa: E402
from tests.support.sentinel import SentinelCluster  # noqa: E402

MODES = ("redis://", "sentinel", "sentinel+wait")
#: Dispatches timed together, per mode in turn.
CHUNK = 50


def urls(cluster: SentinelCluster) -> dict[str, str]:
    """The three URLs of the cluster's primary, by mode."""
    return {
        "redis://": f"redis://127.0.0.1:{cluster.master_port()}/0",
        "sentinel": cluster.url(),
        "sentinel+wait": cluster.url(wait_replicas=1, wait_timeout_ms=1000),
    }


def dispatch_rates(by_mode: dict[str, str], client: redis.Redis, jobs: int) -> dict[str, list]:
    """Single ``dispatch()`` calls per second from one client per mode, timed in interleaved
    chunks of ``CHUNK`` (so a burst of load elsewhere on the machine hits every mode alike)."""
    client.flushdb()
    apps = {mode: App(url, queue="bench") for mode, url in by_mode.items()}
    jobs_by_mode = {mode: app.job(lambda: None, name="bench.noop") for mode, app in apps.items()}
    for job in jobs_by_mode.values():
        job.dispatch()  # warm up: connection, sentinel look-up, script load
    rates: dict[str, list] = {mode: [] for mode in by_mode}
    for _ in range(max(1, jobs // CHUNK)):
        for mode, job in jobs_by_mode.items():
            started = time.perf_counter()
            for _ in range(CHUNK):
                job.dispatch()
            rates[mode].append(CHUNK / (time.perf_counter() - started))
    for app in apps.values():
        app.close()
    return rates


def drain(url: str, client: redis.Redis, folder: Path, jobs: int, counter_url: str) -> float:
    """No-op jobs per second one burst worker on ``url`` drains."""
    client.flushdb()
    app = App(url, queue="bench")
    noop = app.job(lambda: None, name="bench.noop")
    for start in range(0, jobs, 5000):
        noop.dispatch_many([((), {})] * min(5000, jobs - start))
    app.close()
    worker = _worker(folder, url, counter_url)
    try:
        return drain_rate(client, jobs, [worker], folder, timeout_s=300)
    finally:
        worker.wait(60)


def _worker(folder: Path, url: str, counter_url: str) -> subprocess.Popen:
    """A ``kqueue run --inline --burst`` on ``url`` whose jobs count on ``counter_url``."""
    env = dict(os.environ, BENCH_REDIS_URL=counter_url, PYTHONPATH=f"{ROOT}{os.pathsep}{folder}")
    command = [sys.executable, "-m", "kqueue", "run", "--app", "bench_app:app", "--backend", url]
    command += ["--queue", "bench", "--inline", "--burst", "--max-concurrent-inline", "16"]
    log = open(folder / f"worker-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    return subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)


def measure(folder: Path, jobs: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Dispatch and drain rates per mode, ``repeat`` alternating rounds."""
    results = {mode: {"dispatch": [], "drain": []} for mode in MODES}
    with SentinelCluster(folder / "redis") as cluster:
        by_mode = urls(cluster)
        counter_url = by_mode["redis://"]
        client = redis.Redis.from_url(counter_url)
        for mode, rates in dispatch_rates(by_mode, client, jobs * repeat // 2).items():
            results[mode]["dispatch"] = rates
        for round_number in range(repeat):
            shift = round_number % len(MODES)  # each mode goes first in turn
            for mode in MODES[shift:] + MODES[:shift]:
                url = by_mode[mode]
                results[mode]["drain"].append(drain(url, client, folder, jobs, counter_url))
        client.close()
    return results


def report(results: dict[str, dict[str, list[float]]]) -> None:
    """Print medians, ranges and ratios to the ``redis://`` baseline."""
    print(f"{'mode':<16}{'measure':<18}{'median/s':>10}{'vs redis://':>13}{'range':>18}")
    for measure_name in ("dispatch", "drain"):
        base = statistics.median(results["redis://"][measure_name])
        for mode in MODES:
            values = results[mode][measure_name]
            median = statistics.median(values)
            spread = f"{min(values):.0f}-{max(values):.0f}"
            print(f"{mode:<16}{measure_name:<18}{median:>10.0f}{median / base:>13.2f}{spread:>18}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000, help="no-op jobs per drain run")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (medians)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "bench_app.py").write_text(BENCH_APP)
        results = measure(folder, args.jobs, max(1, args.repeat))
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
