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
jobs over the longest share's makespan), in two host profiles: ``own CPU`` (each host has this
machine's cores to itself, at the CPU share measured now, which is what the tuner assumes of
separate hosts) and ``shared CPU`` (the k namespaces share one machine, so each gets 1/k of it:
what this lab really is). Both use the Redis round trip measured from a host over its veth as
``fetch_s``. Printed: real and both predictions per k, and real / prediction.

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
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scale_mix import prototype_rows  # noqa: E402

from kqueue.job import App  # noqa: E402
from kqueue.ops import netns  # noqa: E402
from kqueue.ops.attempts import dispatch_paced, finished_count, tally, write_app  # noqa: E402
from kqueue.ops.calibrate import measure_cpu_share  # noqa: E402
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


def real_run(lab, k: int, rows, folder: Path, run: str, drain_s: float) -> float:
    """Serve ``rows`` on the first ``k`` hosts; their throughput per minute.

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
        time.sleep(3.0)  # the workers import and start their pools
        dispatch_paced(app, rows, tick_s=0.05)
        deadline = time.monotonic() + drain_s
        while finished_count(attempts) < len(rows) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        app.close()
        stop(workers)
    counts = tally(range(len(rows)), attempts)
    if counts.lost or counts.duplicated:
        raise RuntimeError(f"{k} host(s): {counts.line()}")
    traces = [read_trace(path) for path in sorted(folder.glob(f"{run}-*.csv"))]
    return throughput_per_min(pd.concat(traces, ignore_index=True))


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
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch, netns.Lab(HOSTS, Path(scratch)) as lab:
        folder = Path(scratch)
        write_app(folder)
        (folder / "kqueue.toml").write_text("".join(f"{k} = {v}\n" for k, v in CONFIG.items()))
        fetch_s = rtt_s(lab, "A")
        cpu_share = measure_cpu_share(cores)
        real: dict[int, list[float]] = {k: [] for k in (1, 2, 3)}
        for repeat in range(args.repeat):
            for k in real:
                run = f"r{repeat}k{k}"
                real[k].append(real_run(lab, k, rows, folder, run, 60 + args.jobs / 5))
    own = HostProfile(cores=cores, cpu_share=cpu_share, fetch_s=fetch_s)
    report(args, rows, real, config, own, fetch_s)
    return 0


def report(args, rows, real, config: Config, own: HostProfile, fetch_s: float) -> None:
    """Print real and predicted throughput per host count, and their ratios."""
    print(
        f"{args.jobs} jobs of the prototype mix (x{args.time_scale:g} time, CPU x"
        f"{args.time_scale * args.cpu_scale:g}) offered at {args.rate_per_s:g}/s; "
        f"Redis RTT over veth {fetch_s * 1000:.2f} ms; CPU share now {own.cpu_share:.2f} "
        f"of {own.cores} cores"
    )
    head = f"{'hosts':>5}{'real/min':>10}{'sim own CPU':>13}{'sim shared':>12}"
    print(head + f"{'real/own':>10}{'real/shared':>13}")
    for k, values in real.items():
        measured = statistics.median(values)
        shared = dataclasses.replace(own, cpu_share=own.cpu_share / k)
        sim_own = predicted_per_min(rows, k, config, own, args.seed)
        sim_shared = predicted_per_min(rows, k, config, shared, args.seed)
        print(
            f"{k:>5}{measured:>10,.0f}{sim_own:>13,.0f}{sim_shared:>12,.0f}"
            f"{measured / sim_own:>10.2f}{measured / sim_shared:>13.2f}"
        )


if __name__ == "__main__":
    sys.exit(main())
