"""What the worker's 1 ms GIL switch interval buys and costs, side by side with CPython's 5 ms.

Two measures, alternating the two intervals in each round:

- the hand-over cost ``kqueue calibrate`` reports as ``gil_handoff_s``: the median gap between
  no-op inline jobs while one CPU-bound inline job computes beside them, less the gap with the
  GIL free (a real worker on a private SQLite file);
- the price: the wall time of two threads computing the same pure-Python work in one process.

Run::

    python experiments/gil_switch.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from kqueue.ops import calibrate
from kqueue.policy.config import Tier
from kqueue.worker.gil import WORKER_SWITCH_INTERVAL_S, worker_switch_interval

DEFAULT_INTERVAL_S = 0.005  # CPython's own
SPIN_ADDS = 3_000_000


def handoff_ms(app, workdir: Path, interval_s: float) -> float:
    """``gil_handoff_s`` as calibrate measures it, at ``interval_s``, in milliseconds."""
    with worker_switch_interval(interval_s):
        free_s = calibrate.measure_handoff_s(app, Tier.INLINE, 100, workdir)
        now = time.time()
        burn = calibrate.encode_message(
            "kqueue.ops.calibrate.burn_inline", (calibrate.GIL_BURN_S,), {}, now
        )
        noop = calibrate.encode_message("kqueue.ops.calibrate.noop_inline", (), {}, now)
        config = calibrate.Config(max_concurrent_inline=2, poll_interval_s=0.05)
        jobs = [burn] + [noop] * calibrate.GIL_NOOPS
        rows = calibrate._burst(app, jobs, config, workdir / f"gil-{interval_s}.csv")
    burning = next(r for r in rows if r["job_class"].endswith("burn_inline"))
    began, ended = float(burning["started_at"]), float(burning["finished_at"])
    beside = [
        r
        for r in rows
        if r["job_class"].endswith("noop_inline") and began < float(r["started_at"]) < ended
    ]
    return max(0.0, calibrate._median_gap_s(beside) - free_s) * 1000


def _spin(adds: int) -> None:
    total = 0
    for i in range(adds):
        total += i


def spin_s(interval_s: float) -> float:
    """Wall time of two threads adding ``SPIN_ADDS`` numbers each, at ``interval_s``."""
    with worker_switch_interval(interval_s):
        threads = [threading.Thread(target=_spin, args=(SPIN_ADDS,)) for _ in range(2)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of both intervals")
    args = parser.parse_args(argv)
    intervals = (DEFAULT_INTERVAL_S, WORKER_SWITCH_INTERVAL_S)
    handoffs = {interval: [] for interval in intervals}
    spins = {interval: [] for interval in intervals}
    with tempfile.TemporaryDirectory(prefix="kqueue-gil-") as folder:
        workdir = Path(folder)
        app = calibrate.calibration_app(f"sqlite:///{workdir / 'gil.db'}", None)
        for round_ in range(args.rounds):
            for interval in intervals:
                handoffs[interval].append(handoff_ms(app, workdir, interval))
                spins[interval].append(spin_s(interval))
                print(
                    f"round {round_ + 1}, {interval * 1000:.0f} ms switches: hand-over "
                    f"{handoffs[interval][-1]:.2f} ms, two spinning threads "
                    f"{spins[interval][-1]:.3f} s",
                    flush=True,
                )
        app.close()
    old, new = (statistics.median(handoffs[i]) for i in intervals)
    old_spin, new_spin = (statistics.median(spins[i]) for i in intervals)
    print(f"\nmedians of {args.rounds} rounds      5 ms      1 ms   ratio 1/5")
    print(f"GIL hand-over (ms)       {old:8.2f}  {new:8.2f}   {new / old if old else 0:.2f}")
    print(f"two spinning threads (s) {old_spin:8.3f}  {new_spin:8.3f}   {new_spin / old_spin:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
