"""The worker process's GIL switch interval: short, so the loop does not queue behind a job.

CPython lets a thread that computes keep the GIL until a waiting thread has waited one switch
interval (5 ms by default), and the worker's loop takes the GIL several times for every job it
hands over (the wake, the lease's reply, the hand-over, the job thread's start, the outcome's
return). Behind one CPU-bound inline job each of those steps can wait a whole interval: what a
no-op inline job's hand-over gained beside one (``kqueue calibrate``'s ``gil_handoff_s``) was
6.5-7.2 ms at 5 ms and 1.8-2.3 ms at 1 ms, and a computing thread still runs about a thousand
times longer than a switch costs. ``kqueue run`` and
``kqueue calibrate`` (which measures what ``kqueue run`` does) set it; a job may set its own.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

#: The worker's switch interval, seconds (CPython's default is 0.005).
WORKER_SWITCH_INTERVAL_S = 0.001


def shorten_switch_interval(interval_s: float = WORKER_SWITCH_INTERVAL_S) -> float:
    """Set this process's switch interval (its forks inherit it); returns the one before."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(interval_s)
    return before


@contextlib.contextmanager
def worker_switch_interval(interval_s: float = WORKER_SWITCH_INTERVAL_S) -> Iterator[None]:
    """The worker's switch interval for a block (a worker run inside another process)."""
    before = shorten_switch_interval(interval_s)
    try:
        yield
    finally:
        sys.setswitchinterval(before)
