"""What one malloc arena saves: the I/O mix replayed with glibc's default arenas and with one.

Scenario: the I/O mix of ``experiments/sim_vs_real.py`` (2 MB and 5 MB jobs, most inline, a pool
that grows from 6 to 12 processes mid-run) is replayed for real on a private Redis, alternating
between a worker with glibc's default arenas (``MALLOC_ARENA_MAX`` set to glibc's own default,
eight per core, which ``kqueue.worker.allocator`` leaves alone) and the default ``kqueue run``
worker (one arena). Each round runs both; the table gives the medians and the ratio one / default of
peak PSS, throughput and p95 waits.

Run::

    python experiments/malloc_arenas.py [--rounds N] [--small]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from experiments.sim_vs_real import WORKLOADS, measure, metrics
from kqueue.testing import RedisServer
from kqueue.worker.allocator import ARENA_MAX_ENV

#: glibc's default arena limit on 64-bit: eight per core this process may run on.
GLIBC_DEFAULT_ARENAS = 8 * len(os.sched_getaffinity(0))
SHOWN = ("peak_memory_mb", "throughput_per_min", "inline_p95_wait_s", "pool_p95_wait_s")


def run(rounds: int, small: bool) -> dict[str, dict[str, list[float]]]:
    """Replay the I/O mix ``rounds`` times per setting, alternating; the metrics per setting."""
    workload = next(w for w in WORKLOADS if w.name == "io")
    frame, config = workload.trace(small, seed=1), workload.config(small)
    settings = {"default": str(GLIBC_DEFAULT_ARENAS), "one": None}
    results: dict[str, dict[str, list[float]]] = {name: {} for name in settings}
    saved = os.environ.get(ARENA_MAX_ENV)
    with (
        tempfile.TemporaryDirectory(prefix="malloc-arenas-") as folder,
        RedisServer(Path(folder) / "redis") as redis,
    ):
        database = 1
        try:
            for round_ in range(rounds):
                for name, arenas in settings.items():
                    if arenas is None:
                        os.environ.pop(ARENA_MAX_ENV, None)
                    else:
                        os.environ[ARENA_MAX_ENV] = arenas  # the worker process inherits it
                    url = f"redis://127.0.0.1:{redis.port}/{database}"
                    database += 1
                    numbers = metrics(measure(workload, frame, config, url, Path(folder)))
                    for key in SHOWN:
                        results[name].setdefault(key, []).append(numbers.get(key, float("nan")))
                    print(
                        f"round {round_ + 1} {name}: peak {numbers['peak_memory_mb']:.0f} MB, "
                        f"{numbers['throughput_per_min']:.0f} jobs/min",
                        flush=True,
                    )
        finally:
            if saved is None:
                os.environ.pop(ARENA_MAX_ENV, None)
            else:
                os.environ[ARENA_MAX_ENV] = saved
    return results


def render(results: dict[str, dict[str, list[float]]]) -> str:
    """Median (min-max) per setting and the ratio of the medians, one row per metric."""
    lines = ["| metric | default arenas | one arena | one / default |", "|---|---|---|---|"]
    for key in SHOWN:
        cells = []
        for name in ("default", "one"):
            values = results[name][key]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})")
        ratio = statistics.median(results["one"][key]) / statistics.median(results["default"][key])
        lines.append(f"| {key} | {cells[0]} | {cells[1]} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", action="store_true", help="short trace (CI)")
    args = parser.parse_args(argv)
    print(render(run(args.rounds, args.small)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
