"""Benchmark: kqueue in the shape users run it, against the bare limit and the peers, in one run.

Every queue runs the same jobs from a worker started the way its users start it, and every clock
runs from the moment the worker process is started (``Popen``) to the last job done, seen by
polling a Redis counter every 10 ms from this process. The jobs are dispatched one by one with
each queue's own call before the worker starts. Workloads:

- ``noop``: a sync job doing one ``INCR`` on a redis-py client made once per process, lazily and
  under a lock, shared by the threads. kqueue: ``kqueue run --config kqueue.toml`` with
  ``max_concurrent_inline = 16``, ``pool_size = 2``, ``pool_max_size = 2``. Dramatiq: 2 processes
  x 8 threads; Huey: 2 worker processes. The limit: a bare loop doing the same ``INCR`` from one
  thread on the same server, measured in the same repeat.
- ``async``: the same job as ``async def`` with a ``redis.asyncio`` client; limit: a bare
  ``redis.asyncio`` ``INCR`` loop (kqueue only: the peers have no ``async def`` jobs).
- ``sleep``: ``--sleep-jobs`` x ``time.sleep(0.1)`` at concurrency 16 (Dramatiq 1 x 16 threads,
  Huey 16 threads); ideal = jobs x 0.1 s / 16; the ratio is ideal / measured, and the time from
  worker start to the first job done is shown beside it.
- ``cpu``: ``--cpu-jobs`` jobs of about 80 ms pure-Python CPU on 2 processes (kqueue's pool, Huey
  2 processes, Dramatiq 2 x 1), against ``multiprocessing.Pool(2).map`` of the same calls from
  the pool's creation to its exit, in the same repeat.
- ``isolated``: the no-op job (its ``INCR`` on a fresh connection, as a fresh process must make)
  in kqueue's isolated tier, 2 at once, against a bare ``os.fork()`` + the same ``INCR`` +
  ``os._exit`` + ``waitpid`` loop, 2 at once as well (and one at a time, shown beside it), run
  after the queues from a process that imported what a worker imports and then touched pages
  until it is as resident as kqueue's worker was at its last job (so it forks a process of the
  worker's size: fork copies the page tables of what is resident).
- ``dispatch``: ``job.dispatch()`` one by one and ``dispatch_many`` in batches of 1,000, against
  a bare ``LPUSH`` loop of the same count on one client.

Start-up counts, so every queue starts from compiled bytecode, as a ``pip install`` leaves it:
the peers' packages were compiled when pip installed them, and this script compiles kqueue's
sources and the apps first (an editable install with ``PYTHONDONTWRITEBYTECODE=1``, as on the
development machines, otherwise recompiles about 90 modules, some 100 ms, at every start).

``--repeat`` (default 3) alternates the queues within each repeat; the table prints medians and
ranges, and the ratios kqueue / limit and kqueue / fastest peer. The peers are not kqueue's
dependencies: they run under ``--peers-python`` (a venv with ``pip install 'dramatiq[redis]' huey
redis``); without it only kqueue and the limits run.

    python experiments/bench_shapes.py --peers-python /work/peers-venv/bin/python --repeat 3

``--baseline-tree PATH`` runs a second kqueue, imported from another source tree (an export of
main, say: ``git archive main | tar -x -C /tmp/base``), beside this one in every repeat, so a
change is measured before and after in the same minutes; its rows are labelled ``kqueue @NAME``.
Both trees' ``kqueue`` and ``sim`` are compiled first.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import math
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis
import redis.asyncio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kqueue.testing import RedisServer  # noqa: E402

#: What every app shares: the lazily made, lock-guarded client, the CPU loop, the async client.
SHARED = """
import asyncio, os, threading, time
import redis, redis.asyncio

_lock = threading.Lock()
_client = None
_aclients = {}


def client():
    global _client
    if _client is None or _client[0] != os.getpid():
        with _lock:
            if _client is None or _client[0] != os.getpid():
                _client = (os.getpid(), redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    return _client[1]


def aclient():
    loop = asyncio.get_running_loop()
    if loop not in _aclients:
        _aclients[loop] = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return _aclients[loop]


def spin(loops):
    total = 0
    for i in range(loops):
        total += i * i
    return total
"""

KQUEUE_APP = (
    SHARED
    + """
from kqueue import App

app = App(os.environ["BENCH_REDIS_URL"])


@app.job(name="shape.noop", tier="inline")
def noop():
    client().incr("bench:done")


@app.job(name="shape.anoop", tier="inline")
async def anoop():
    await aclient().incr("bench:done")


@app.job(name="shape.nap", tier="inline")
def nap(seconds):
    time.sleep(seconds)
    client().incr("bench:done")


@app.job(name="shape.crunch", tier="pool")
def crunch(loops):
    spin(loops)
    client().incr("bench:done")


@app.job(name="shape.fork", tier="isolated")
def fork():
    client().incr("bench:done")


def enqueue(workload, jobs, arg):
    job = {"noop": noop, "async": anoop, "sleep": nap, "cpu": crunch, "isolated": fork}[workload]
    args = () if arg is None else (arg,)
    for _ in range(jobs):
        job.dispatch(*args)
"""
)

KQUEUE_CONFIG = """
max_concurrent_inline = 16
pool_size = 2
pool_max_size = 2
max_concurrent_isolated = 2
"""

DRAMATIQ_APP = (
    SHARED
    + """
import dramatiq
from dramatiq.brokers.redis import RedisBroker

dramatiq.set_broker(RedisBroker(url=os.environ["BENCH_REDIS_URL"]))


@dramatiq.actor(queue_name="bench")
def noop():
    client().incr("bench:done")


@dramatiq.actor(queue_name="bench")
def nap(seconds):
    time.sleep(seconds)
    client().incr("bench:done")


@dramatiq.actor(queue_name="bench")
def crunch(loops):
    spin(loops)
    client().incr("bench:done")


def enqueue(workload, jobs, arg):
    actor = {"noop": noop, "sleep": nap, "cpu": crunch}[workload]
    args = () if arg is None else (arg,)
    for _ in range(jobs):
        actor.send(*args)
"""
)

HUEY_APP = (
    SHARED
    + """
from huey import RedisHuey

huey = RedisHuey("bench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def noop():
    client().incr("bench:done")


@huey.task()
def nap(seconds):
    time.sleep(seconds)
    client().incr("bench:done")


@huey.task()
def crunch(loops):
    spin(loops)
    client().incr("bench:done")


def enqueue(workload, jobs, arg):
    task = {"noop": noop, "sleep": nap, "cpu": crunch}[workload]
    args = () if arg is None else (arg,)
    for _ in range(jobs):
        task(*args)
"""
)

POLL_S = 0.01
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SLEEP_S = 0.1
SLEEP_CONCURRENCY = 16
CPU_JOB_S = 0.08
#: Longest any queue may take for one workload, seconds, beyond its ideal (a hung worker fails).
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Queue:
    """A queue under test: its app module, the interpreter, and its worker command per workload."""

    label: str
    module: str
    python: str
    workers: dict[str, tuple[str, ...]]
    #: The source tree it imports kqueue from (a baseline tree runs beside this one).
    root: Path = ROOT
    #: "ours", "baseline" (another kqueue tree, ``--baseline-tree``) or "peer".
    kind: str = "peer"


def kqueue_queue(root: Path = ROOT) -> Queue:
    """This tree's kqueue or, with ``root``, a baseline tree's (labelled by its folder name)."""
    command = ("-m", "kqueue", "run", "--app", "kq_app:app", "--config", "kqueue.toml")
    every = ("noop", "async", "sleep", "cpu", "isolated")
    workers = dict.fromkeys(every, command)
    if root == ROOT:
        return Queue("kqueue, 1 process", "kq_app", sys.executable, workers, kind="ours")
    return Queue(f"kqueue @{root.name}", "kq_app", sys.executable, workers, root, "baseline")


def peer_queues(python: str) -> list[Queue]:
    dramatiq = ("-m", "dramatiq", "dq_app", "--processes")
    huey = ("-m", "huey.bin.huey_consumer", "hy_app.huey", "-k")
    return [
        Queue(
            "Dramatiq",
            "dq_app",
            python,
            {
                "noop": (*dramatiq, "2", "--threads", "8"),
                "sleep": (*dramatiq, "1", "--threads", "16"),
                "cpu": (*dramatiq, "2", "--threads", "1"),
            },
        ),
        Queue(
            "Huey",
            "hy_app",
            python,
            {
                "noop": (*huey, "process", "-w", "2"),
                "sleep": (*huey, "thread", "-w", "16"),
                "cpu": (*huey, "process", "-w", "2"),
            },
        ),
    ]


@dataclass
class Run:
    """One queue's run of one workload: seconds from worker start to the first and last job,
    and CPU seconds: of all the worker's processes by its first job, and the worker's own per
    job from its first job to its last (its start not counted)."""

    first_s: float
    last_s: float
    jobs: int
    first_cpu_s: float = math.nan
    cpu_per_job_s: float = math.nan
    #: The worker process's resident memory at its last job, MB.
    rss_mb: float = math.nan

    @property
    def rate(self) -> float:
        return self.jobs / self.last_s


@dataclass
class Bench:
    """The scratch folder, the private server, and every figure measured so far."""

    folder: Path
    server: RedisServer
    figures: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.figures.setdefault(key, []).append(value)

    def env(self, root: Path = ROOT) -> dict[str, str]:
        path = os.pathsep.join([str(self.folder), str(root)])
        return dict(os.environ, BENCH_REDIS_URL=self.server.url, PYTHONPATH=path)


def run_queue(bench: Bench, queue: Queue, workload: str, jobs: int, arg) -> Run:
    """Dispatch ``jobs`` with the queue's own call, start its worker, time it to the last job."""
    client = redis.Redis(port=bench.server.port)
    client.flushdb()
    enqueue = [
        queue.python,
        "-c",
        f"import {queue.module} as m; m.enqueue({workload!r}, {jobs}, {arg!r})",
    ]
    sent = subprocess.run(
        enqueue, cwd=bench.folder, env=bench.env(queue.root), capture_output=True, text=True
    )
    if sent.returncode != 0:
        raise RuntimeError(f"{queue.label} {workload}: enqueue failed:\n{sent.stderr[-2000:]}")
    log = open(bench.folder / f"{queue.module}-{workload}.log", "a")  # noqa: SIM115
    started = time.perf_counter()
    worker = subprocess.Popen(
        [queue.python, *queue.workers[workload]],
        cwd=bench.folder,
        env=bench.env(queue.root),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        return _watch(client, worker, jobs, started, f"{queue.label} {workload}")
    finally:
        _stop(worker)
        log.close()
        client.close()


def _watch(
    client: redis.Redis, worker: subprocess.Popen, jobs: int, started: float, what: str
) -> Run:
    first_s, first_cpu_s, first = None, math.nan, (0, math.nan)
    while True:
        done = int(client.get("bench:done") or 0)
        now = time.perf_counter() - started
        if done and first_s is None:
            first_s, first_cpu_s = now, group_cpu_s(worker.pid)
            first = (done, process_cpu_s(worker.pid))
        if done >= jobs:
            per_job_s = (process_cpu_s(worker.pid) - first[1]) / max(1, done - first[0])
            return Run(first_s, now, jobs, first_cpu_s, per_job_s, process_rss_mb(worker.pid))
        if worker.poll() is not None or now > TIMEOUT_S:
            raise RuntimeError(f"{what}: {done} of {jobs} done after {now:.0f} s")
        time.sleep(POLL_S)


def _cpu_fields(stat: str) -> tuple[int, float]:
    """(process group, own user + system CPU seconds) from a ``/proc/PID/stat`` line."""
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[2]), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_cpu_s(pid: int) -> float:
    """CPU seconds process ``pid`` has used itself (all threads; not its children)."""
    try:
        return _cpu_fields(Path(f"/proc/{pid}/stat").read_text())[1]
    except (OSError, IndexError, ValueError):
        return math.nan


def process_rss_mb(pid: int) -> float:
    """Resident memory of process ``pid``, MB (NaN if it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return math.nan
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def group_cpu_s(pgid: int) -> float:
    """CPU seconds used so far by the live processes of process group ``pgid`` (a worker
    started in a session of its own, and every process it forked). Waits for a core do not
    count, so on a loaded box this compares start-up costs where wall time cannot."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            group, cpu_s = _cpu_fields(stat.read_text())
        except (OSError, IndexError, ValueError):
            continue
        total += cpu_s if group == pgid else 0.0
    return total


def _stop(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)


# --- the limits, measured in this process ---------------------------------------------------


def bare_incr(bench: Bench, count: int) -> float:
    client = redis.Redis(port=bench.server.port)
    started = time.perf_counter()
    for _ in range(count):
        client.incr("bench:bare")
    rate = count / (time.perf_counter() - started)
    client.close()
    return rate


def bare_async_incr(bench: Bench, count: int) -> float:
    async def loop() -> float:
        client = redis.asyncio.Redis(port=bench.server.port)
        started = time.perf_counter()
        for _ in range(count):
            await client.incr("bench:bare")
        rate = count / (time.perf_counter() - started)
        await client.aclose()
        return rate

    return asyncio.run(loop())


def bare_lpush(bench: Bench, count: int) -> float:
    client = redis.Redis(port=bench.server.port)
    started = time.perf_counter()
    for _ in range(count):
        client.lpush("bench:bare-list", "x" * 200)
    rate = count / (time.perf_counter() - started)
    client.delete("bench:bare-list")
    client.close()
    return rate


BARE_FORK = """
import os, sys, time
import kqueue.worker, kq_app  # what a worker imports
count, at_once, rss_mb = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
page = os.sysconf("SC_PAGE_SIZE")
resident_mb = int(open("/proc/self/statm").read().split()[1]) * page / 2**20
ballast = bytearray(max(0, int((rss_mb - resident_mb) * 2**20)))
ballast[::page] = b"x" * len(range(0, len(ballast), page))  # resident, as the worker's heap
cpu_began = os.times().user + os.times().system
started = time.perf_counter()
running = done = 0
while done < count:
    while running < at_once and done + running < count:
        if os.fork() == 0:  # the same job as kqueue's isolated one: connect, INCR, exit
            kq_app.client().incr("bench:bare")
            os._exit(0)
        running += 1
    os.waitpid(-1, 0)
    running, done = running - 1, done + 1
cpu = os.times()
print(count / (time.perf_counter() - started), (cpu.user + cpu.system - cpu_began) / count)
"""


def bare_fork(bench: Bench, count: int, at_once: int, rss_mb: float) -> tuple[float, float]:
    """Forks per second of the bare loop with ``at_once`` children at a time, from a process
    of ``rss_mb`` resident (NaN: as imported), and its parent's CPU seconds per fork."""
    rss = "0" if math.isnan(rss_mb) else f"{rss_mb:.1f}"
    command = [sys.executable, "-c", BARE_FORK, str(count), str(at_once), rss]
    done = subprocess.run(
        command, cwd=bench.folder, env=bench.env(), capture_output=True, text=True, check=True
    )
    rate, cpu_s = done.stdout.split()
    return float(rate), float(cpu_s)


def bare_isolated(bench: Bench, count: int, worker_rss_mb: float) -> None:
    """The isolated limit: the bare loop 2 at once (as the tier runs) and 1 at a time, from a
    process as resident as the worker was."""
    rate, cpu_s = bare_fork(bench, count, 2, worker_rss_mb)
    bench.add("limit isolated", rate)
    bench.add("limit isolated cpu_s", cpu_s)
    bench.add("limit isolated one", bare_fork(bench, count, 1, worker_rss_mb)[0])
    bench.add("limit isolated rss_mb", worker_rss_mb)


def raw_pool(loops: int, jobs: int) -> float:
    """Seconds for ``multiprocessing.Pool(2).map`` of the jobs, creation to exit."""
    from kq_app import spin  # the same function the queues run

    started = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        pool.map(spin, [loops] * jobs)
    return time.perf_counter() - started


DISPATCH = """
import sys, time
import kq_app
count, batch = int(sys.argv[1]), 1000
kq_app.noop.dispatch()  # connect first: the clock times dispatching, not connecting
started = time.perf_counter()
for _ in range(count):
    kq_app.noop.dispatch()
single = count / (time.perf_counter() - started)
started = time.perf_counter()
for _ in range(count // batch):
    kq_app.noop.dispatch_many([((), {})] * batch)
print(single, (count // batch) * batch / (time.perf_counter() - started))
"""


def dispatch_rates(bench: Bench, count: int, root: Path = ROOT) -> tuple[float, float]:
    """``dispatch()`` and ``dispatch_many`` rates of the kqueue imported from ``root``."""
    redis.Redis(port=bench.server.port).flushdb()
    command = [sys.executable, "-c", DISPATCH, str(count)]
    done = subprocess.run(
        command, cwd=bench.folder, env=bench.env(root), capture_output=True, text=True, check=True
    )
    single, many = done.stdout.split()
    return float(single), float(many)


def calibrate(cpu_s: float) -> int:
    from kq_app import spin

    loops = 100_000
    while True:
        started = time.perf_counter()
        spin(loops)
        elapsed = time.perf_counter() - started
        if elapsed > 0.02:
            return max(1, int(loops * cpu_s / elapsed))
        loops *= 4


# --- one repeat -------------------------------------------------------------------------------


WORKLOADS = ("noop", "async", "sleep", "cpu", "isolated", "dispatch")


def repeat_once(
    bench: Bench, queues: list[Queue], sizes: dict[str, int], loops: int, turn: int
) -> None:
    """One repeat of every workload in ``sizes``; the queues' order rotates with ``turn``."""
    order = queues[turn % len(queues) :] + queues[: turn % len(queues)]
    if "noop" in sizes:
        bench.add("limit noop", bare_incr(bench, sizes["noop"]))
    if "async" in sizes:
        bench.add("limit async", bare_async_incr(bench, sizes["async"]))
    args = {"noop": None, "async": None, "sleep": SLEEP_S, "cpu": loops, "isolated": None}
    for workload in [w for w in WORKLOADS[:-1] if w in sizes]:
        if workload == "cpu":
            bench.add("limit cpu_s", raw_pool(loops, sizes["cpu"]))
        worker_rss_mb = math.nan
        for queue in order:
            if workload in queue.workers:
                run = run_queue(bench, queue, workload, sizes[workload], args[workload])
                worker_rss_mb = run.rss_mb if queue.kind == "ours" else worker_rss_mb
                bench.add(f"{queue.label} {workload}", run.rate)
                bench.add(f"{queue.label} {workload} first_s", run.first_s)
                bench.add(f"{queue.label} {workload} last_s", run.last_s)
                bench.add(f"{queue.label} {workload} first_cpu_s", run.first_cpu_s)
                bench.add(f"{queue.label} {workload} cpu_per_job_s", run.cpu_per_job_s)
        if workload == "isolated":
            bare_isolated(bench, sizes["isolated"], worker_rss_mb)
    if "dispatch" not in sizes:
        return
    bench.add("limit lpush", bare_lpush(bench, sizes["dispatch"]))
    for queue in [q for q in order if q.kind != "peer"]:
        single, many = dispatch_rates(bench, sizes["dispatch"], queue.root)
        key = "dispatch" if queue.kind == "ours" else queue.label
        bench.add(f"{key} single", single)
        bench.add(f"{key} many", many)


# --- the table ------------------------------------------------------------------------------


def _med(bench: Bench, key: str) -> float:
    return statistics.median(bench.figures[key])


def _range(bench: Bench, key: str, scale: float = 1.0, fmt: str = ",.0f") -> str:
    values = [v * scale for v in bench.figures[key]]
    return f"{min(values):{fmt}}-{max(values):{fmt}}"


def report(bench: Bench, queues: list[Queue], sizes: dict[str, int]) -> list[str]:
    """The table: each figure's median and range, and the ratios the issue asks for."""
    ours = queues[0]
    peers = [queue for queue in queues if queue.kind == "peer"]
    baselines = [queue for queue in queues if queue.kind == "baseline"]
    lines = [f"{'measure':<58}{'median':>12}{'range':>22}"]

    def row(label: str, key: str, scale: float = 1.0, fmt: str = ",.0f") -> None:
        if key in bench.figures:
            value = _med(bench, key) * scale
            lines.append(f"{label:<58}{value:>12{fmt}}{_range(bench, key, scale, fmt):>22}")

    def ratio(label: str, top: str, bottom: str) -> None:
        if top in bench.figures and bottom in bench.figures:
            lines.append(f"{label:<58}{_med(bench, top) / _med(bench, bottom):>12.2f}")

    row("limit: bare INCR loop, 1 thread (ops/s)", "limit noop")
    for queue in queues:
        row(f"{queue.label}: noop jobs/s from worker start", f"{queue.label} noop")
    ratio("kqueue / bare INCR loop", f"{ours.label} noop", "limit noop")
    _peer_ratio(bench, ours, peers, "noop", ratio)
    row("limit: bare redis.asyncio INCR loop (ops/s)", "limit async")
    for queue in (ours, *baselines):
        row(f"{queue.label}: async def noop jobs/s", f"{queue.label} async")
        name = "kqueue" if queue is ours else queue.label
        ratio(f"{name} async / bare async loop", f"{queue.label} async", "limit async")
    _derived(bench, queues, sizes)
    for queue in queues:
        row(f"{queue.label}: sleep, ideal / from start", f"{queue.label} sleep ratio", fmt=".2f")
        row(f"{queue.label}: sleep, start to first job (ms)", f"{queue.label} sleep first_s", 1000)
        row(
            f"{queue.label}: sleep, CPU to first job (ms)",
            f"{queue.label} sleep first_cpu_s",
            1000,
        )
    for queue in queues:
        row(
            f"{queue.label}: cpu, raw Pool(2).map time / ours",
            f"{queue.label} cpu ratio",
            fmt=".2f",
        )
        row(f"{queue.label}: cpu, start to first job (ms)", f"{queue.label} cpu first_s", 1000)
    row("limit: bare fork+INCR+_exit+waitpid, 2 at once (/s)", "limit isolated")
    row("limit: the same, 1 at a time (/s)", "limit isolated one")
    row("limit: bare fork loop, parent CPU per fork (ms)", "limit isolated cpu_s", 1000, ".2f")
    row("limit: bare fork loop's resident size (MB, kqueue's worker)", "limit isolated rss_mb")
    for queue in (ours, *baselines):
        row(f"{queue.label}: isolated no-op jobs/s from start", f"{queue.label} isolated")
        row(
            f"{queue.label}: isolated, worker CPU/job (ms)",
            f"{queue.label} isolated cpu_per_job_s",
            1000,
            ".2f",
        )
        name = "kqueue" if queue is ours else queue.label
        ratio(f"{name} isolated / bare fork loop", f"{queue.label} isolated", "limit isolated")
        ratio(
            f"{name} isolated / bare loop 1 at a time",
            f"{queue.label} isolated",
            "limit isolated one",
        )
    row("limit: bare LPUSH loop (ops/s)", "limit lpush")
    for queue in (ours, *baselines):
        name, key = ("kqueue", "dispatch") if queue is ours else (queue.label, queue.label)
        row(f"{name}: job.dispatch() one by one (jobs/s)", f"{key} single")
        row(f"{name}: dispatch_many, batches of 1,000 (jobs/s)", f"{key} many")
        ratio(f"{name} dispatch() / bare LPUSH", f"{key} single", "limit lpush")
        ratio(f"{name} dispatch_many / dispatch()", f"{key} many", f"{key} single")
    return lines


def _derived(bench: Bench, queues: list[Queue], sizes: dict[str, int]) -> None:
    """Per-repeat ratios: sleep ideal / measured; raw pool time / measured (same repeat)."""
    ideal_s = sizes.get("sleep", 0) * SLEEP_S / SLEEP_CONCURRENCY
    for queue in queues:
        last = bench.figures.get(f"{queue.label} sleep last_s")
        if last:
            bench.figures[f"{queue.label} sleep ratio"] = [ideal_s / s for s in last]
        last = bench.figures.get(f"{queue.label} cpu last_s")
        if last:
            pairs = zip(bench.figures["limit cpu_s"], last, strict=True)
            bench.figures[f"{queue.label} cpu ratio"] = [raw / ours_s for raw, ours_s in pairs]


def _peer_ratio(
    bench: Bench, ours: Queue, peers: list[Queue], workload: str, ratio: Callable
) -> None:
    peers = [q for q in peers if f"{q.label} {workload}" in bench.figures]
    if not peers:  # none ran it (``--only`` without it)
        return
    fastest = max(peers, key=lambda q: _med(bench, f"{q.label} {workload}"))
    label = f"kqueue / fastest peer ({fastest.label})"
    ratio(label, f"{ours.label} {workload}", f"{fastest.label} {workload}")


def _peers(python: str | None) -> list[Queue]:
    if not python:
        print("peers skipped: no --peers-python (an interpreter with dramatiq[redis] and huey)")
        return []
    found = []
    for queue, imports in zip(
        peer_queues(python), ("dramatiq, dramatiq.brokers.redis", "huey"), strict=True
    ):
        done = subprocess.run(
            [python, "-c", f"import {imports}, redis"], capture_output=True, text=True
        )
        if done.returncode == 0:
            found.append(queue)
        else:
            print(f"{queue.label} skipped: {python} cannot import it")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers-python", help="interpreter with dramatiq[redis], huey, redis")
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another kqueue source tree (an export of main, say) run beside this one",
    )
    parser.add_argument("--repeat", type=int, default=3, help="alternating repeats (medians shown)")
    parser.add_argument("--jobs", type=int, default=20_000, help="no-op jobs per run")
    parser.add_argument("--sleep-jobs", type=int, default=400)
    parser.add_argument("--cpu-jobs", type=int, default=200)
    parser.add_argument("--isolated-jobs", type=int, default=300)
    parser.add_argument(
        "--small", action="store_true", help="CI size: a few hundred jobs, 1 repeat"
    )
    parser.add_argument(
        "--only", help="comma-separated workloads (default: all): " + ",".join(WORKLOADS)
    )
    args = parser.parse_args(argv)
    sizes = {
        "noop": args.jobs,
        "async": args.jobs,
        "sleep": args.sleep_jobs,
        "cpu": args.cpu_jobs,
        "isolated": args.isolated_jobs,
        "dispatch": args.jobs,
    }
    if args.small:
        sizes = {
            "noop": 500,
            "async": 500,
            "sleep": 64,
            "cpu": 16,
            "isolated": 20,
            "dispatch": 2000,
        }
    if args.only:
        unknown = set(args.only.split(",")) - set(WORKLOADS)
        if unknown:
            parser.error(f"--only: unknown workload(s) {', '.join(sorted(unknown))}")
        sizes = {k: v for k, v in sizes.items() if k in args.only.split(",")}
    repeats = 1 if args.small else max(1, args.repeat)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _write_apps(folder, [ROOT] + ([args.baseline_tree] if args.baseline_tree else []))
        sys.path.insert(0, str(folder))
        with RedisServer(folder / "redis") as server:
            os.environ["BENCH_REDIS_URL"] = server.url
            bench = Bench(folder, server)
            baseline = [kqueue_queue(args.baseline_tree.resolve())] if args.baseline_tree else []
            queues = [kqueue_queue(), *baseline, *_peers(args.peers_python)]
            loops = calibrate(CPU_JOB_S if not args.small else 0.02)
            load_before = os.getloadavg()
            for turn in range(repeats):
                repeat_once(bench, queues, sizes, loops, turn)
            load_after = os.getloadavg()
    print(
        f"{repeats} repeat(s); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print("\n".join(report(bench, queues, sizes)))
    return 0


def _write_apps(folder: Path, trees: list[Path]) -> None:
    (folder / "kq_app.py").write_text(KQUEUE_APP)
    (folder / "dq_app.py").write_text(DRAMATIQ_APP)
    (folder / "hy_app.py").write_text(HUEY_APP)
    (folder / "kqueue.toml").write_text(KQUEUE_CONFIG)
    compileall.compile_dir(folder, quiet=1)
    for tree in trees:  # both packages a pip install puts in site-packages
        compileall.compile_dir(tree / "kqueue", quiet=1)
        compileall.compile_dir(tree / "sim", quiet=1)


if __name__ == "__main__":
    sys.exit(main())
