"""Benchmark: what appending to the fleet trace costs a worker, against the same worker without.

Scenario: one private redis-server; ``--jobs`` no-op jobs drained by one burst ``kqueue run
--inline`` worker with the fleet trace on (the default ``trace_keep_rows``) and off
(``trace_keep_rows = 0``), alternating ``--repeat`` times. Reported side by side: jobs/s from the
first finished job to the last (start-up excluded), the worker's CPU seconds per 1,000 jobs (its
user + system time, from the operating system's accounting of the reaped child), and each
back-to-back pair's ratio (drift in the machine's load moves both runs of a pair). Then what the
trace costs Redis: ``MEMORY USAGE`` of the stream per row, scaled to the default cap. The
machine is shared and noisy: read the ratios, not the absolute figures.

    python experiments/bench_fleet_trace.py --jobs 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
from pathlib import Path

import redis
from bench_redis import BENCH_APP, _worker, drain_rate  # experiments/ is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.job import App  # noqa: E402
from kqueue.policy.config import Config  # noqa: E402
from kqueue.testing import RedisServer  # noqa: E402

#: The two settings compared: the fleet trace on (default cap) and off.
VARIANTS = {"trace on": Config().trace_keep_rows, "trace off": 0}


def children_cpu_s() -> float:
    """User + system CPU seconds of every reaped child process so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def drain(server: RedisServer, folder: Path, jobs: int, keep_rows: int) -> tuple[float, float]:
    """(no-op jobs/s, worker CPU s per 1,000 jobs) of one burst worker with ``keep_rows``."""
    config = folder / f"keep-{keep_rows}.toml"
    config.write_text(f"trace_keep_rows = {keep_rows}\n")
    app = App(server.url, queue="bench")
    client = redis.Redis(port=server.port)
    client.flushdb()
    noop = app.job(lambda: None, name="bench.noop")
    for start in range(0, jobs, 5000):
        noop.dispatch_many([((), {})] * min(5000, jobs - start))
    cpu_before = children_cpu_s()
    worker = _worker(folder, server.url, "bench", "--burst", "--config", str(config))
    try:
        rate = drain_rate(client, jobs, [worker], folder, timeout_s=300)
    finally:
        worker.wait(60)
        client.close()
        app.close()
    return rate, (children_cpu_s() - cpu_before) / jobs * 1000


def trace_memory(server: RedisServer) -> tuple[int, float]:
    """(rows in the fleet trace, bytes of Redis memory per row) after a traced drain."""
    client = redis.Redis(port=server.port)
    rows = client.xlen("kqueue:trace")
    used = client.memory_usage("kqueue:trace", samples=0) or 0
    client.close()
    return rows, used / max(1, rows)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each variant")
    args = parser.parse_args(argv)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "bench_app.py").write_text(BENCH_APP)
        with RedisServer(folder / "redis") as server:
            for _ in range(max(1, args.repeat)):
                for name in ("trace off", "trace on"):  # "on" last: its stream is measured
                    runs[name].append(drain(server, folder, args.jobs, VARIANTS[name]))
            rows, row_bytes = trace_memory(server)
    print(f"{'measure':<48}{'median':>10}  range")
    for name, measured in runs.items():
        rates, cpus = [r for r, _ in measured], [c for _, c in measured]
        print(f"{'no-op jobs/s, ' + name:<48}{statistics.median(rates):>10,.0f}  "
              f"{min(rates):,.0f}-{max(rates):,.0f}")  # fmt: skip
        print(f"{'worker CPU s per 1,000 jobs, ' + name:<48}{statistics.median(cpus):>10.3f}")
    on, off = runs["trace on"], runs["trace off"]
    pairs = [a[0] / b[0] for a, b in zip(on, off, strict=True)]
    cpu_pairs = [a[1] / b[1] for a, b in zip(on, off, strict=True)]
    print(f"{'throughput on / off, median of pairs':<48}{statistics.median(pairs):>10.1%}  "
          f"{min(pairs):.1%}-{max(pairs):.1%}")  # fmt: skip
    print(f"{'cost of the fleet trace in throughput (pairs)':<48}"
          f"{1 - statistics.median(pairs):>10.1%}")  # fmt: skip
    print(f"{'CPU per job on / off, median of pairs':<48}{statistics.median(cpu_pairs):>10.1%}")
    keep = VARIANTS["trace on"]
    print(f"{'fleet-trace rows in Redis after the last run':<48}{rows:>10,}")
    print(f"{'Redis bytes per trace row':<48}{row_bytes:>10.0f}")
    print(f"{f'Redis MB at trace_keep_rows = {keep:,}':<48}{row_bytes * keep / 2**20:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
