"""Giving the memory a finished job freed back to the OS (glibc's ``malloc_trim``).

glibc keeps freed memory in its heap: its dynamic mmap threshold rises to the largest mapped
block given back (up to 32 MB), so after a few jobs a pool process serves even big blocks from
the heap, and the heap keeps up to twice that threshold of free space. A pool process then
holds the high-water mark of its jobs' memory between jobs, for as long as it lives (see
``docs/DECISIONS.md``, issue 20). ``malloc_trim(0)`` returns every free page of the heap, top
and middle, to the OS.

Where it runs, off the jobs' critical path:

- a pool process (``kqueue.tiers.child.serve``), after a job that left its resident memory at
  least ``TRIM_AFTER_GROWTH_MB`` above what it held after its last trim, once no request has
  come for ``POOL_IDLE_S``: a busy process never trims, and a job queued in its pipe starts at
  once;
- the worker (``kqueue.tiers.inline.InlineRunner.maintain``), at most every
  ``WORKER_TRIM_INTERVAL_S``, when inline jobs ended since its last trim.

What it costs: the next job that needs the memory faults it in again (measured in
``experiments/heap_trim.py``). On a C library other than glibc every call here is a no-op.
This module also holds ``freeze_for_fork``, the worker's other step to keep its forks' private
memory small.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import platform
import time
from collections.abc import Callable

#: A pool process trims after a job that left it holding this much more than after its last trim.
TRIM_AFTER_GROWTH_MB = 1.0
#: ... once it has waited this long for its next request, seconds.
POOL_IDLE_S = 1.0
#: The worker trims at most this often, when inline jobs ran since its last trim, seconds.
WORKER_TRIM_INTERVAL_S = 5.0


@functools.cache
def libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on another C library (musl, macOS, Windows)."""
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return trim


def available() -> bool:
    """True when this process can give freed heap memory back (glibc)."""
    return libc_malloc_trim() is not None


def trim() -> bool:
    """Return every free page of the heap to the OS; True if glibc released any."""
    malloc_trim = libc_malloc_trim()
    return bool(malloc_trim(0)) if malloc_trim is not None else False


def freeze_for_fork() -> None:
    """Collect garbage once, then move every object the worker has to the permanent generation.

    Called by ``kqueue run`` after it imported the app and before it forks any child: what is
    garbage now is not copied into every child, and the collector of the worker (and of each
    child, which freezes what it inherits in ``child.prepare``) no longer writes to these
    objects' headers, so their pages stay shared copy-on-write instead of becoming each
    process's own.
    """
    gc.collect()
    gc.freeze()


class PoolHeap:
    """A pool process's bookkeeping for ``trim``: whether its heap grew since the last one.

    Args:
        resident_mb: the process's resident memory now (after it started), MB.
        growth_mb: the growth that makes a trim due, MB.
    """

    def __init__(self, resident_mb: float, growth_mb: float = TRIM_AFTER_GROWTH_MB):
        self.floor_mb, self.growth_mb = resident_mb, growth_mb
        self.due = False
        #: Trims done, for tests and status.
        self.trims = 0

    def after_job(self, resident_mb: float) -> None:
        """A job ended leaving the process at ``resident_mb`` MB: is a trim due?"""
        self.due = available() and resident_mb - self.floor_mb >= self.growth_mb

    def trim(self, resident_mb: Callable[[], float]) -> None:
        """Trim now; what ``resident_mb()`` reads after it is the new floor."""
        trim()
        self.floor_mb, self.due = resident_mb(), False
        self.trims += 1


class PeriodicTrim:
    """The worker's trims: at most every ``interval_s``, and only after jobs ran (``note_job``).

    Args:
        interval_s: the least time between two trims, seconds.
    """

    def __init__(self, interval_s: float = WORKER_TRIM_INTERVAL_S):
        self.interval_s = interval_s
        self._jobs_since = False
        self._last_s = time.monotonic()
        #: Trims done, for tests and status.
        self.trims = 0

    def note_job(self) -> None:
        """An inline job ended (cheap: called from the job's own thread)."""
        self._jobs_since = True

    def maybe(self, now_s: float) -> bool:
        """Trim if jobs ran since the last trim and ``interval_s`` passed (monotonic ``now_s``)."""
        if not self._jobs_since or now_s - self._last_s < self.interval_s or not available():
            return False
        self._jobs_since, self._last_s = False, now_s
        trim()
        self.trims += 1
        return True
