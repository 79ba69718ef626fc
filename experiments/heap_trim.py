"""What giving freed job memory back costs: a job that follows a trim faults its memory in again.

Scenario: a pool process trims its heap (``kqueue.tiers.heap``, glibc's ``malloc_trim``) once it
has been idle ``kqueue.policy.trim.POOL_IDLE_S`` after a job that grew it. The next job that needs
that memory gets fresh pages from the kernel, each zero-filled at its first touch, where without
the trim it would have reused the pages the process still held. For each job size, a fresh forked
process (its own heap) runs the soak's job body (``kqueue.ops.synthetic.touch_memory``: allocate
the block, write every page, free it) twice to warm up (the first block is mapped and raises
glibc's mmap threshold, so later ones come from the heap and stay), then ``--rounds`` times each,
alternating: the job with the memory kept, and ``malloc_trim(0)`` followed by the same job. The
table gives the medians of the job's time both ways, their difference (what the first job after
an idle second pays), the trim's own time (spent while idle, on no job's path) and the resident
memory the process holds between jobs with and without the trim.

Run::

    python experiments/heap_trim.py [--rounds N] [--sizes-mb 4 16 30] [--small]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kqueue.ops.calibrate import forked_result  # noqa: E402
from kqueue.ops.synthetic import touch_memory  # noqa: E402
from kqueue.tiers import heap  # noqa: E402
from kqueue.tiers.procs import own_memory_mb  # noqa: E402

SIZES_MB = (4.0, 16.0, 30.0)


def _job_s(size_mb: float) -> float:
    """The soak's job body for ``size_mb`` MB, timed (seconds)."""
    began = time.perf_counter()
    block = touch_memory(size_mb)
    del block
    return time.perf_counter() - began


def _measure(sender, size_mb: float, rounds: int) -> None:
    """In a fresh process: the job kept vs after a trim, ``rounds`` each, alternating."""
    for _ in range(2):
        _job_s(size_mb)
    kept_s, trimmed_s, trim_s, held_mb, trimmed_mb = [], [], [], [], []
    for _ in range(rounds):
        kept_s.append(_job_s(size_mb))
        held_mb.append(own_memory_mb()[1])
        began = time.perf_counter()
        heap.trim()
        trim_s.append(time.perf_counter() - began)
        trimmed_mb.append(own_memory_mb()[1])
        trimmed_s.append(_job_s(size_mb))
    sender.send(
        {name: statistics.median(values) for name, values in
         (("kept_s", kept_s), ("trimmed_s", trimmed_s), ("trim_s", trim_s),
          ("held_mb", held_mb), ("trimmed_mb", trimmed_mb))}
    )  # fmt: skip


def measure(size_mb: float, rounds: int) -> dict[str, float]:
    """The medians for one job size, measured in a process forked for it."""
    return forked_result(_measure, size_mb, rounds)


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 1 if a trim gave nothing back on glibc (the mechanism is broken)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=list(SIZES_MB))
    parser.add_argument("--small", action="store_true", help="CI: 3 rounds of 4 MB")
    args = parser.parse_args(argv)
    if args.small:
        args.rounds, args.sizes_mb = 3, [4.0]
    if not heap.available():
        print("malloc_trim is glibc's; this C library keeps freed memory: nothing to measure")
        return 0
    print(f"job = allocate, touch every page, free; medians of {args.rounds} rounds each")
    print("| job MB | job, memory kept, ms | job after a trim, ms | extra, ms | ratio | "
          "trim itself, ms | held between jobs, MB | after a trim, MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    broken = False
    for size_mb in args.sizes_mb:
        f = measure(size_mb, args.rounds)
        extra_ms = 1e3 * (f["trimmed_s"] - f["kept_s"])
        ratio = f["trimmed_s"] / f["kept_s"] if f["kept_s"] else float("nan")
        print(f"| {size_mb:g} | {1e3 * f['kept_s']:.1f} | {1e3 * f['trimmed_s']:.1f} | "
              f"{extra_ms:+.1f} | {ratio:.2f} | {1e3 * f['trim_s']:.2f} | "
              f"{f['held_mb']:.1f} | {f['trimmed_mb']:.1f} |")  # fmt: skip
        broken |= f["held_mb"] - f["trimmed_mb"] < size_mb / 2
    if broken:
        print("a trim gave back less than half a kept block")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
