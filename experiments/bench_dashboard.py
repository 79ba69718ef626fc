"""Benchmark: how fast the dashboard's overview answers on a loaded backend, and what it costs idle.

Scenario: one private redis-server loaded as a busy fleet leaves it: ``--workers`` live worker
statuses (each with a pool of 10 processes), ``--rows`` fleet-trace rows finished in the last
hour (the default is the issue's 100,000) across 3 queues, 3 tiers and 12 job classes, and
``--dead`` dead letters. A real ``kqueue dashboard`` process serves it. Measured:

- the first overview after start (it reads the hour of trace from the backend);
- ``--requests`` sequential ``GET /`` (the HTML page) and ``GET /api/overview``, median and p95,
  beside a static file in the same run (the floor: the HTTP round trip alone); the backend is
  read at most once a second whatever the request rate, so one request in a second pays it;
- the dashboard's CPU over ``--seconds`` with one page open (one server-sent-events stream, as
  a browser tab keeps) and with none, as a share of one core.

The machine is shared and noisy: read the ratios and medians, not single figures.

    python experiments/bench_dashboard.py --rows 100000 --dead 1000 --workers 10
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.backends.redis import RedisBackend  # noqa: E402
from kqueue.job import encode_message  # noqa: E402
from kqueue.policy.config import Config  # noqa: E402
from kqueue.policy.trace import TraceRow  # noqa: E402
from kqueue.policy.trace_wire import encode_row  # noqa: E402
from kqueue.testing import RedisServer, free_port  # noqa: E402

QUEUES = ("default", "mail", "reports")
#: The floor: an HTTP round trip to the same server with no backend read.
FLOOR = "/static/favicon.svg"
TIERS = ("inline", "inline", "inline", "pool", "isolated")


def load(backend: RedisBackend, rows: int, dead: int, workers: int) -> None:
    """Fill the backend as a busy fleet would have."""
    now = time.time()
    batch = []
    for i in range(rows):
        finished = now - 3500 * (i / rows)
        batch.append(encode_row(TraceRow(
            f"job-{i}", QUEUES[i % 3], f"class.{i % 12}", TIERS[i % 5], finished - 2, finished - 1,
            finished, 1.0 + (i % 7) * 0.1, 1.0, 0.5, 40.0, "failed" if i % 50 == 0 else "ok",
            1, f"host-{i % workers}:1", 1.0, finished - 2,
        )))  # fmt: skip
        if len(batch) == 5000:
            backend.append_trace(batch, 1_440_000)
            batch = []
    backend.append_trace(batch, 1_440_000)
    backend.enqueue_many("mail", [(f"dead-{i}", encode_message("mail.send", [i], {}, now))
                                  for i in range(dead)])  # fmt: skip
    for lease in backend.lease("mail", "bench", dead, 60.0):
        backend.dead(lease, "ValueError: boom\nTraceback (most recent call last): ...")
    toml = Config().to_toml()
    for w in range(workers):
        processes = [{"pid": 1000 * w + p, "state": "idle", "jobs_done": 10, "memory_mb": 60.0,
                      "job": None, "running_s": None} for p in range(10)]  # fmt: skip
        status = {"worker": f"host-{w}:1", "pid": 1, "host": f"host-{w}", "queues": list(QUEUES),
                  "published_at": now, "done": 1000, "per_minute": {}, "memory_mb": 80.0,
                  "config_toml": toml,
                  "tiers": {"inline": {"running": 0, "capacity": 100, "waiting": 0},
                            "pool": {"running": 0, "capacity": 10, "waiting": 0,
                                     "processes": processes}}}  # fmt: skip
        backend.publish_status(f"host-{w}:1", json.dumps(status).encode(), 3600.0)


def get_ms(port: int, path: str) -> float:
    """Milliseconds of one GET (a fresh connection, as a script's request would be)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path)
    answer = connection.getresponse()
    answer.read()
    connection.close()
    assert answer.status == 200, (path, answer.status)
    return (time.perf_counter() - started) * 1000


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def cpu_share(process: psutil.Process, seconds: float) -> float:
    """The process's CPU (user + system, its threads together) per wall second."""
    before, started = process.cpu_times(), time.perf_counter()
    time.sleep(seconds)
    after = process.cpu_times()
    used = (after.user - before.user) + (after.system - before.system)
    return used / (time.perf_counter() - started)


def open_page(port: int, stop: threading.Event) -> threading.Thread:
    """Keep one live-update stream open (what a browser tab with the overview does)."""

    def run() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/events")
        answer = connection.getresponse()
        while not stop.is_set():
            answer.fp.readline()
        connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="fleet-trace rows (last hour)")
    parser.add_argument("--dead", type=int, default=1000, help="dead letters")
    parser.add_argument("--workers", type=int, default=10, help="live worker statuses")
    parser.add_argument("--requests", type=int, default=100, help="requests per endpoint")
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU measuring time, each")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch, RedisServer(Path(scratch) / "redis") as server:
        backend = RedisBackend.from_url(server.url)
        load(backend, args.rows, args.dead, args.workers)
        port = free_port()
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        command = [sys.executable, "-m", "kqueue", "dashboard", "--backend", server.url,
                   "--port", str(port)]  # fmt: skip
        dashboard = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    get_ms(port, "/healthz")
                    break
                except OSError:
                    time.sleep(0.1)
            cold_ms = get_ms(port, "/api/overview")
            times = {path: [] for path in (FLOOR, "/api/overview", "/")}
            for _ in range(args.requests):
                for path, measured in times.items():
                    measured.append(get_ms(port, path))
                time.sleep(0.02)
            process = psutil.Process(dashboard.pid)
            idle = cpu_share(process, args.seconds)
            stop = threading.Event()
            open_page(port, stop)
            one_page = cpu_share(process, args.seconds)
            stop.set()
        finally:
            dashboard.terminate()
            dashboard.wait(30)
            backend.close()
    floor = statistics.median(times[FLOOR])
    print(f"backend: {args.rows:,} trace rows in the last hour, {args.dead:,} dead letters, "
          f"{args.workers} workers")  # fmt: skip
    print(f"{'request':<34}{'median ms':>10}{'p95 ms':>10}{'x floor':>11}")
    print(f"{'first overview after start':<34}{cold_ms:>10.1f}")
    labels = {FLOOR: "GET a static file (the floor)", "/api/overview": "GET /api/overview",
              "/": "GET / (overview page)"}  # fmt: skip
    for path, label in labels.items():
        median = statistics.median(times[path])
        print(f"{label:<34}{median:>10.1f}{p95(times[path]):>10.1f}{median / floor:>11.1f}")
    print(f"{'dashboard CPU, no page open':<34}{idle:>10.1%} of a core")
    print(f"{'dashboard CPU, one page open':<34}{one_page:>10.1%} of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
