"""Benchmark: kqueue against the Python job queues people use today, on one Redis, in one run.

Scenario: one private redis-server. The same ``--jobs`` no-op jobs (each does one Redis INCR with
its own per-thread client) are enqueued and drained by, in turn: Dramatiq (2 processes x 8
threads), Huey (2 worker processes) and one ``kqueue run --inline --burst`` process. Every queue
is timed the same way (``bench_redis.drain_rate``: from the first finished job to the last, so
start-up is excluded). ``--repeat`` alternates the three and prints medians and ranges.

The peers are not kqueue's dependencies: they run under another interpreter, given with
``--peers-python`` (a venv with ``pip install 'dramatiq[redis]' huey redis``). A peer that
interpreter cannot import is skipped with the reason; with no peer at all the script says so
and exits 0 (CI does not install them).

    python3 -m venv /work/peers-venv
    /work/peers-venv/bin/pip install 'dramatiq[redis]' huey redis
    python experiments/bench_redis_peers.py --peers-python /work/peers-venv/bin/python --repeat 3
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_redis import BENCH_APP, BENCH_CLIENT, drain_rate, throughput  # noqa: E402

from kqueue.testing import RedisServer  # noqa: E402

DRAMATIQ_APP = (
    BENCH_CLIENT
    + """
import dramatiq
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor(queue_name="bench")
def noop():
    _client().incr("bench:done")


def enqueue(jobs):
    for _ in range(jobs):
        noop.send()
"""
)

HUEY_APP = (
    BENCH_CLIENT
    + """
from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def noop():
    _client().incr("bench:done")


def enqueue(jobs):
    for _ in range(jobs):
        noop()
"""
)

#: Longest a peer may take to drain the jobs, seconds per 1,000 jobs (a hung peer fails the run).
TIMEOUT_S_PER_1000 = 10.0


@dataclass(frozen=True)
class Peer:
    """A peer queue: its app module, what it imports, and how its workers are started."""

    label: str
    module: str
    source: str
    imports: str
    worker_args: tuple[str, ...]


PEERS = (
    Peer(
        "Dramatiq, 2 processes x 8 threads",
        "peer_dramatiq",
        DRAMATIQ_APP,
        "dramatiq, dramatiq.brokers.redis, redis",
        ("-m", "dramatiq", "peer_dramatiq", "--processes", "2", "--threads", "8"),
    ),
    Peer(
        "Huey, 2 worker processes",
        "peer_huey",
        HUEY_APP,
        "huey, redis",
        ("-m", "huey.bin.huey_consumer", "peer_huey.huey", "-k", "process", "-w", "2"),
    ),
)


def missing(python: str, peer: Peer) -> str | None:
    """Why ``python`` cannot run ``peer`` (its import error), or None when it can."""
    try:
        done = subprocess.run(
            [python, "-c", f"import {peer.imports}"], capture_output=True, text=True, timeout=60
        )
    except OSError as exc:
        return f"cannot run {python}: {exc}"
    if done.returncode != 0:
        return (done.stderr.strip().splitlines() or ["import failed"])[-1]
    return None


def peer_rate(python: str, peer: Peer, server: RedisServer, folder: Path, jobs: int) -> float:
    """Jobs/s of ``peer``'s workers draining ``jobs`` INCR jobs enqueued beforehand.

    Raises:
        RuntimeError: the enqueue failed, or the workers failed or took too long.
    """
    client = redis.Redis(port=server.port)
    client.flushdb()
    env = dict(os.environ, BENCH_REDIS_URL=server.url, PYTHONPATH=str(folder))
    enqueue = [python, "-c", f"import {peer.module}; {peer.module}.enqueue({jobs})"]
    sent = subprocess.run(enqueue, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    if sent.returncode != 0:
        raise RuntimeError(f"{peer.label}: enqueueing failed:\n{sent.stderr[-2000:]}")
    log = open(folder / f"{peer.module}-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
    workers = subprocess.Popen(
        [python, *peer.worker_args],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopping it reaches its children
    )
    timeout_s = 30 + TIMEOUT_S_PER_1000 * jobs / 1000
    try:
        return drain_rate(client, jobs, [workers], folder, timeout_s)
    finally:
        os.killpg(workers.pid, signal.SIGTERM)
        try:
            workers.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(workers.pid, signal.SIGKILL)
            workers.wait(10)
        log.close()
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its table (or why it was skipped)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", help="interpreter with dramatiq[redis], huey, redis")
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per run")
    parser.add_argument("--repeat", type=int, default=1, help="runs per queue (medians shown)")
    args = parser.parse_args(argv)
    if not args.peers_python:
        print("skipped: no --peers-python given (an interpreter with dramatiq[redis] and huey)")
        return 0
    peers = []
    for peer in PEERS:
        reason = missing(args.peers_python, peer)
        if reason:
            print(f"skipped {peer.label}: {args.peers_python} cannot import it ({reason})")
        else:
            peers.append(peer)
    if not peers:
        print("skipped: no peer is importable from --peers-python")
        return 0
    rates = run(args.peers_python, peers, args.jobs, max(1, args.repeat))
    report(rates, args.jobs)
    return 0


def run(python: str, peers: list[Peer], jobs: int, repeat: int) -> dict[str, list[float]]:
    """Each peer's and kqueue's jobs/s per repeat, alternating, on one private redis-server."""
    rates: dict[str, list[float]] = {peer.label: [] for peer in peers}
    ours = "kqueue, 1 worker process"
    rates[ours] = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        (folder / "bench_app.py").write_text(BENCH_APP)
        for peer in peers:
            (folder / f"{peer.module}.py").write_text(peer.source)
        with RedisServer(folder / "redis") as server:
            for _ in range(repeat):
                for peer in peers:
                    rates[peer.label].append(peer_rate(python, peer, server, folder, jobs))
                rates[ours].append(throughput(server, folder, jobs, 1))
    return rates


def report(rates: dict[str, list[float]], jobs: int) -> None:
    """Print each queue's median jobs/s, its range, and kqueue's ratio to the fastest peer."""
    *peer_labels, ours = rates
    medians = {label: statistics.median(values) for label, values in rates.items()}
    print(f"{f'queue ({jobs:,} jobs, one INCR each)':<40}{'jobs/s':>10}{'range':>18}")
    for label, values in rates.items():
        spread = f"{min(values):,.0f}-{max(values):,.0f}" if len(values) > 1 else ""
        print(f"{label:<40}{medians[label]:>10,.0f}{spread:>18}")
    fastest = max(peer_labels, key=medians.get)
    ratio = medians[ours] / medians[fastest]
    print(f"kqueue / fastest peer ({fastest.split(',')[0]}): {ratio:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
