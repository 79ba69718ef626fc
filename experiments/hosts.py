"""Throughput on 1, 2 and 3 hosts over a network, beside the simulator's multi-host prediction.

Scenario: a Redis host and three worker hosts, each a Linux network namespace on one bridge
(``kqueue.ops.netns``; needs root). For k = 1, 2, 3 a ``kqueue run`` worker is started on each
of the first k hosts (their settings in ``CONFIG``, the same for all) and ``--jobs`` jobs of the
prototype mix arrive faster than one host can serve them (``--rate-per-s``), durations scaled by
``--time-scale`` and CPU further by ``--cpu-scale`` so that a host's slots, not this machine's two
cores, bound it (as on real separate hosts). Throughput is jobs / (last finish - first
submission), from the workers' own trace CSVs (``--trace-out``), per minute.

The simulator's prediction is its multi-host split (``sim.tune.search.share``: arrivals spread
uniformly at random over k workers, each simulated on its own; the fleet's throughput is all
jobs over the longest share's makespan) on a host profile calibrated in the same run against
the lab's Redis (``kqueue.ops.calibrate``: CPU share, lease round trip, process start and
hand-off costs), in two forms: ``calib.`` (the CPU share ``calibrate`` probed, once, before the
runs) and ``got`` (the share of the cores each host's worker tree actually used while it served,
from its processes' CPU times: the CPU it got, which on this shared machine moves with other
sessions' load, and which a probe in the experiment's own session does not see, since the
scheduler's autogroup gives every session, so every ``kqueue run``, a share of its own).
Printed: real and both predictions per k, and real / prediction.

    sudo python experiments/hosts.py [--jobs 600] [--repeat 1]
    python experiments/hosts.py --jobs 120          # CI
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import psutil
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_mix import prototype_rows  # noqa: E402
from soak_trees import pool_pids  # noqa: E402

from kqueue.job import App  # noqa: E402
from kqueue.ops import netns  # noqa: E402
from kqueue.ops.attempts import dispatch_paced, finished_count, tally, write_app  # noqa: E402
from kqueue.ops.calibrate import calibrate  # noqa: E402
from kqueue.policy import Config, HostProfile, read_trace  # noqa: E402
from sim.model.replay import prepare, simulate  # noqa: E402
from sim.tune.search import share  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HOSTS = ("A", "B", "C")
#: The workers' settings, also the simulator's. The duration bounds route each class of the
#: scaled mix to the tier the attempts app pins it to (fast inline, medium pool, heavy isolated).
CONFIG = {
    "pool_size": 2,
    "pool_max_size": 4,
    "max_concurrent_isolated": 2,
    "inline_max_duration_s": 0.05,
    "pooled_max_duration_s": 0.8,
}


def rtt_s(lab: netns.Lab, host: str, pings: int = 50) -> float:
    """Median Redis PING round trip from inside ``host``'s namespace, seconds."""
    code = (
        "import redis, statistics, time\n"
        f"c = redis.Redis.from_url({lab.redis_url!r}); c.ping(); times = []\n"
        f"for _ in range({pings}):\n"
        "    t = time.perf_counter(); c.ping(); times.append(time.perf_counter() - t)\n"
        "print(statistics.median(times))\n"
    )
    command = [netns.tool("ip"), "netns", "exec", lab.namespace(host), sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return float(done.stdout.strip())


def start_workers(lab, hosts, folder: Path, attempts: Path, run: str) -> list:
    """One worker per host, each writing its trace to ``<run>-<host>.csv``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(folder)]))
    env["KQUEUE_ATTEMPTS_DIR"] = str(attempts)
    workers = []
    for host in hosts:
        command = [sys.executable, "-m", "kqueue", "run", "--app", "attempts_app:app"]
        command += ["--backend", lab.redis_url, "--config", str(folder / "kqueue.toml")]
        command += ["--trace-out", str(folder / f"{run}-{host}.csv")]
        log = folder / f"{run}-{host}.log"
        workers.append(lab.start(host, command, log=log, env=dict(env, KQUEUE_HOST_LABEL=host),
                                 cwd=folder))  # fmt: skip
    return workers


def wait_started(app: App, k: int, timeout_s: float = 60.0) -> None:
    """Wait until ``k`` workers publish a status that lists their whole pool: each has imported
    the app and forked its pool processes, so the CPU counted from here is serving only.

    Raises:
        RuntimeError: fewer than ``k`` had started after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while sum(len(p) >= CONFIG["pool_size"] for p in pool_pids(app.backend).values()) < k:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {k} worker(s) started within {timeout_s:.0f} s")
        time.sleep(0.1)


def stop(workers) -> None:
    """SIGTERM the workers and wait for them."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def throughput_per_min(trace: pd.DataFrame) -> float:
    """Jobs per minute: finished jobs / (last finish - first submission)."""
    span_s = float(trace["finished_at"].max() - trace["submitted_at"].min())
    return 60.0 * len(trace) / span_s


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds used so far by the processes rooted at ``pids`` (and their reaped children)."""
    total = 0.0
    for pid in pids:
        try:
            root = psutil.Process(pid)
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for proc in family:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def real_run(lab, k: int, rows, folder: Path, run: str, drain_s: float) -> tuple[float, float]:
    """Serve ``rows`` on the first ``k`` hosts: their throughput per minute, and the share of
    this machine's cores each host's worker tree got on average while they served.

    Raises:
        RuntimeError: a job was lost or run twice (no faults here, so neither may happen).
    """
    attempts = folder / f"{run}-attempts"
    attempts.mkdir()
    client = redis.Redis.from_url(lab.redis_url)
    client.flushdb()
    client.close()
    workers = start_workers(lab, HOSTS[:k], folder, attempts, run)
    app = App(lab.redis_url)
    try:
        wait_started(app, k)
        pids = [w.pid for w in workers]
        cpu_before_s, began = tree_cpu_s(pids), time.monotonic()
        dispatch_paced(app, rows, tick_s=0.05)
        deadline = time.monotonic() + drain_s
        while finished_count(attempts) < len(rows) and time.monotonic() < deadline:
            time.sleep(0.2)
        used_s = tree_cpu_s(pids) - cpu_before_s
        got_share = used_s / ((time.monotonic() - began) * k * (os.cpu_count() or 1))
    finally:
        app.close()
        stop(workers)
    counts = tally(range(len(rows)), attempts)
    if counts.lost or counts.duplicated:
        raise RuntimeError(f"{k} host(s): {counts.line()}")
    traces = [read_trace(path) for path in sorted(folder.glob(f"{run}-*.csv"))]
    return throughput_per_min(pd.concat(traces, ignore_index=True)), got_share


def predicted_per_min(rows, k: int, config: Config, host: HostProfile, seed: int) -> float:
    """The simulator's fleet throughput: k shares of the arrivals, each on its own worker."""
    frame = pd.DataFrame(
        {
            "job_id": [f"j{r.no}" for r in rows],
            "queue": "default",
            "job_class": [r.tier for r in rows],
            "submitted_at": [r.arrival_s for r in rows],
            "duration_s": [r.duration_s for r in rows],
            "cpu_s": [r.cpu_s for r in rows],
            "memory_mb": [r.memory_mb for r in rows],
        }
    )
    prepared = prepare(frame)
    results = [simulate(share(prepared, k, seed, i), config, host) for i in range(k)]
    done = sum(r.finished for r in results)
    return 60.0 * done / max(r.makespan_s for r in results)


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table (or why this host cannot build the lab)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--rate-per-s", type=float, default=120.0, help="offered, above capacity")
    parser.add_argument("--time-scale", type=float, default=0.03)
    parser.add_argument("--cpu-scale", type=float, default=0.2, help="on top of --time-scale")
    parser.add_argument("--repeat", type=int, default=1, help="runs per host count (medians)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate-jobs", type=int, default=40, help="no-op jobs per tier")
    args = parser.parse_args(argv)
    reason = netns.available()
    if reason:
        print(f"skipped: {reason}")
        return 0
    rows = [
        dataclasses.replace(r, cpu_s=r.cpu_s * args.cpu_scale)
        for r in prototype_rows(args.jobs, args.rate_per_s, time_scale=args.time_scale,
                                memory_scale=0.05, seed=args.seed)
    ]  # fmt: skip
    config = Config.from_mapping(CONFIG, source="experiments/hosts.py CONFIG")
    with tempfile.TemporaryDirectory() as scratch, netns.Lab(HOSTS, Path(scratch)) as lab:
        folder = Path(scratch)
        write_app(folder)
        (folder / "kqueue.toml").write_text("".join(f"{k} = {v}\n" for k, v in CONFIG.items()))
        fetch_s = rtt_s(lab, "A")
        own = calibrate(lab.redis_url, jobs_per_tier=args.calibrate_jobs)
        real: dict[int, list[tuple[float, float]]] = {k: [] for k in (1, 2, 3)}
        for repeat in range(args.repeat):
            for k in real:
                run = f"r{repeat}k{k}"
                real[k].append(real_run(lab, k, rows, folder, run, 60 + args.jobs / 5))
    report(args, rows, real, config, own, fetch_s)
    return 0


def report(args, rows, real, config: Config, own: HostProfile, fetch_s: float) -> None:
    """Print real and predicted throughput per host count, and their ratios."""
    print(
        f"{args.jobs} jobs of the prototype mix (x{args.time_scale:g} time, CPU x"
        f"{args.time_scale * args.cpu_scale:g}) offered at {args.rate_per_s:g}/s; "
        f"Redis PING over veth {fetch_s * 1000:.2f} ms"
    )
    print(
        f"calibrated (kqueue.ops.calibrate, against the lab's Redis): CPU share "
        f"{own.cpu_share:.2f} of {own.cores} cores, fetch {own.fetch_s * 1000:.2f} ms, spawn "
        f"{own.spawn_s * 1000:.0f} ms, isolated hand-off {own.isolated_dispatch_s * 1000:.0f} ms"
    )
    head = f"{'hosts':>5}{'real/min':>10}{'sim calib.':>12}{'CPU got':>9}{'sim got':>9}"
    print(head + f"{'real/calib.':>13}{'real/got':>10}")
    for k, values in real.items():
        measured = statistics.median(v[0] for v in values)
        got_share = statistics.median(v[1] for v in values)
        got = dataclasses.replace(own, cpu_share=min(1.0, max(got_share, 0.01)))
        sim_calibrated = predicted_per_min(rows, k, config, own, args.seed)
        sim_got = predicted_per_min(rows, k, config, got, args.seed)
        print(
            f"{k:>5}{measured:>10,.0f}{sim_calibrated:>12,.0f}{got_share:>9.2f}{sim_got:>9,.0f}"
            f"{measured / sim_calibrated:>13.2f}{measured / sim_got:>10.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
