"""Benchmark: what appending to the fleet trace costs a worker, beside the same worker without.

Scenario: one private redis-server and, in each of ``--repeat`` rounds, two ``kqueue run
--inline`` workers started together, side by side: one with the fleet trace on (the default
``trace_keep_rows``), one with it off (``trace_keep_rows = 0``), each draining ``--jobs`` no-op
jobs from its own queue. Running them at the same moment exposes both to the same load on a
shared machine, which back-to-back runs do not (the load moves between runs by more than the
cost measured). Each worker's jobs count into its own Redis counter; its jobs/s and its CPU
seconds per 1,000 jobs (user + system, from ``psutil``) are taken from its first finished job to
its last, so start-up is left out. Reported per round and as medians: the ratio trace-on /
trace-off of each. Then what the trace costs Redis: ``MEMORY USAGE`` of the stream per row,
scaled to the default cap. Read the ratios, not the absolute figures.

    python experiments/bench_fleet_trace.py --jobs 20000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.job import App  # noqa: E402
from kqueue.policy.config import Config  # noqa: E402
from kqueue.testing import RedisServer  # noqa: E402

#: The no-op job: one INCR of this worker's own counter (named in its environment).
BENCH_APP = """
import os, threading
import redis
from kqueue import App

_local = threading.local()
app = App()


@app.job(name="bench.noop", tier="inline")
def noop():
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    client.incr(os.environ["BENCH_COUNTER"])
"""
#: The two settings compared: the fleet trace on (default cap) and off.
VARIANTS = {"on": Config().trace_keep_rows, "off": 0}
POLL_S = 0.002


@dataclass
class Drain:
    """One worker's drain: its process, counter and what was seen of it."""

    name: str
    process: subprocess.Popen
    counter: str
    first_done: int = 0
    first_at: float = 0.0
    first_cpu_s: float = 0.0
    last_at: float = 0.0
    last_cpu_s: float = 0.0

    def cpu_s(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def rate(self, jobs: int) -> float:
        return (jobs - self.first_done) / (self.last_at - self.first_at)

    def cpu_per_1000(self, jobs: int) -> float:
        return (self.last_cpu_s - self.first_cpu_s) / (jobs - self.first_done) * 1000


def start(folder: Path, url: str, name: str, keep_rows: int) -> Drain:
    config = folder / f"trace-{name}.toml"
    config.write_text(f"trace_keep_rows = {keep_rows}\n")
    env = dict(os.environ, BENCH_REDIS_URL=url, BENCH_COUNTER=f"bench:done:{name}",
               PYTHONPATH=f"{ROOT}{os.pathsep}{folder}")  # fmt: skip
    command = [sys.executable, "-m", "kqueue", "run", "--app", "bench_app:app", "--backend", url,
               "--queue", f"bench-{name}", "--inline", "--config", str(config)]  # fmt: skip
    with open(folder / f"worker-{name}-{time.monotonic_ns()}.log", "w") as log:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=log)
    return Drain(name, process, f"bench:done:{name}")


def watch(client: redis.Redis, drains: list[Drain], jobs: int, timeout_s: float = 600) -> None:
    """Poll the counters until every drain is done, noting first and last times and CPU."""
    deadline = time.monotonic() + timeout_s
    pending = list(drains)
    while pending:
        if time.monotonic() > deadline or any(d.process.poll() is not None for d in pending):
            raise RuntimeError(f"a worker failed or was too slow; counters: {pending}")
        for drain in list(pending):
            done = int(client.get(drain.counter) or 0)
            if done and not drain.first_done:
                drain.first_done, drain.first_at, drain.first_cpu_s = (
                    done,
                    time.perf_counter(),
                    drain.cpu_s(),
                )
            if done >= jobs:
                drain.last_at, drain.last_cpu_s = time.perf_counter(), drain.cpu_s()
                pending.remove(drain)
        time.sleep(POLL_S)


def round_side_by_side(server: RedisServer, folder: Path, jobs: int) -> dict[str, Drain]:
    """One round: both workers drain ``jobs`` each at the same time."""
    client = redis.Redis(port=server.port)
    client.flushdb()
    for name in VARIANTS:
        app = App(server.url, queue=f"bench-{name}")
        noop = app.job(lambda: None, name="bench.noop")
        for begin in range(0, jobs, 5000):
            noop.dispatch_many([((), {})] * min(5000, jobs - begin))
        app.close()
    drains = [start(folder, server.url, name, keep) for name, keep in VARIANTS.items()]
    try:
        watch(client, drains, jobs)
    finally:
        for drain in drains:
            drain.process.terminate()
            drain.process.wait(60)
        client.close()
    return {drain.name: drain for drain in drains}


def trace_cpu_per_row_s(server: RedisServer, rows: int = 20_000) -> float:
    """CPU seconds of the trace's own work per row, in this process: the row's values, their
    encoding and the append to Redis (what the worker adds per attempt, without its job)."""
    from kqueue.backends.redis import RedisBackend
    from kqueue.policy.trace_wire import encode_values

    backend = RedisBackend.from_url(server.url)
    now = time.time()
    started = time.process_time()
    for begin in range(0, rows, 1000):
        batch = [
            (
                f"{i:032x}",
                "bench-on",
                "bench.noop",
                "inline",
                now,
                now + 0.1,
                now + 0.2,
                0.1,
                0.0002,
                0.0002,
                0.1,
                "ok",
                1,
                "host:1:abcdef",
                1.0,
                now,
                0,
            )  # fmt: skip
            for i in range(begin, begin + 1000)
        ]
        backend.append_trace([encode_values(values) for values in batch], 1_440_000)
    used = time.process_time() - started
    backend.client.delete("kqueue:trace")
    backend.close()
    return used / rows


def trace_memory(server: RedisServer) -> tuple[int, float]:
    """(rows in the fleet trace, bytes of Redis memory per row) after the last round."""
    client = redis.Redis(port=server.port)
    rows = client.xlen("kqueue:trace")
    used = client.memory_usage("kqueue:trace", samples=0) or 0
    client.close()
    return rows, used / max(1, rows)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per worker per round")
    parser.add_argument("--repeat", type=int, default=3, help="rounds")
    args = parser.parse_args(argv)
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "bench_app.py").write_text(BENCH_APP)
        with RedisServer(folder / "redis") as server:
            for _ in range(max(1, args.repeat)):
                rounds.append(round_side_by_side(server, folder, args.jobs))
            rows, row_bytes = trace_memory(server)
            per_row_s = trace_cpu_per_row_s(server)
    n = args.jobs
    print(f"{'round':<8}{'jobs/s on':>11}{'jobs/s off':>11}{'on/off':>9}"
          f"{'CPU ms/1000 on':>16}{'off':>8}{'on/off':>9}")  # fmt: skip
    rates, cpus = [], []
    for i, r in enumerate(rounds, 1):
        on, off = r["on"], r["off"]
        rate, cpu = on.rate(n) / off.rate(n), on.cpu_per_1000(n) / off.cpu_per_1000(n)
        rates.append(rate)
        cpus.append(cpu)
        on_ms, off_ms = on.cpu_per_1000(n) * 1000, off.cpu_per_1000(n) * 1000
        print(f"{i:<8}{on.rate(n):>11,.0f}{off.rate(n):>11,.0f}{rate:>9.1%}"
              f"{on_ms:>16.0f}{off_ms:>8.0f}{cpu:>9.1%}")  # fmt: skip
    print(f"{'throughput trace on / off, median of rounds':<48}{statistics.median(rates):>10.1%}"
          f"  {min(rates):.1%}-{max(rates):.1%}")  # fmt: skip
    print(f"{'cost of the fleet trace in throughput':<48}{1 - statistics.median(rates):>10.1%}")
    print(f"{'CPU per job trace on / off, median of rounds':<48}{statistics.median(cpus):>10.1%}"
          f"  {min(cpus):.1%}-{max(cpus):.1%}")  # fmt: skip
    off_per_job_s = statistics.median(r["off"].cpu_per_1000(n) for r in rounds) / 1000
    print(f"{'trace CPU per row here (values+encode+append)':<48}{per_row_s * 1e6:>8.1f} us")
    print(f"{'... as a share of a no-op job (trace-off worker)':<48}"
          f"{per_row_s / off_per_job_s:>10.1%}")  # fmt: skip
    keep = VARIANTS["on"]
    print(f"{'fleet-trace rows in Redis after the last round':<48}{rows:>10,}")
    print(f"{'Redis bytes per trace row':<48}{row_bytes:>10.0f}")
    print(f"{f'Redis MB at trace_keep_rows = {keep:,}':<48}{row_bytes * keep / 2**20:>10.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
