"""Giving the memory a finished job freed back to the OS (glibc's ``malloc_trim``).

glibc keeps freed memory in its heap: its dynamic mmap threshold rises to the largest mapped
block given back (up to 32 MB), so after a few jobs a pool process serves even big blocks from
the heap, and the heap keeps up to twice that threshold of free space. A pool process then
holds the high-water mark of its jobs' memory between jobs, for as long as it lives (see
``docs/DECISIONS.md``, issue 20). ``malloc_trim(0)`` returns every free page of the heap, top
and middle, to the OS.

When, off the jobs' critical path, is ``kqueue.policy.trim``'s rule (the simulator runs it too):
a pool process (``kqueue.tiers.child.serve``) after a job that grew it, once it has waited
``POOL_IDLE_S`` for its next request, so a job queued in its pipe mostly starts at once, or
between two jobs when it has not trimmed for ``POOL_BUSY_TRIM_S`` (a process never idle that
long would otherwise hold its jobs' high-water mark for its whole life); the worker
(``kqueue.tiers.inline.InlineRunner.maintain``) at most every ``WORKER_TRIM_INTERVAL_S``, when
inline jobs ended since its last trim.

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

from kqueue.policy.trim import pool_busy_trim_due, pool_trim_due, worker_trim_due


@functools.cache
def libc_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None on another C library (musl, macOS, Windows).

    Resolved once; the pool resolves it before it forks, so its children inherit it.
    """
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

    The collection is of the two young generations: the app's import leaves its garbage there,
    and a full one walks every object the worker has. After importing the benchmark's app the
    young one found the same 6 objects as a full one (a full one after it found none) in 3.6 ms
    of CPU against 21-27 ms, niced beside other work: about 5 % of a worker's CPU to its first
    job. Cyclic garbage old enough to have reached the oldest generation stays, frozen.
    """
    gc.collect(1)
    gc.freeze()


class PoolHeap:
    """A pool process's bookkeeping for ``trim``: whether its heap grew since the last one.

    Args:
        resident_mb: the process's resident memory now (after it started), MB.
    """

    def __init__(self, resident_mb: float):
        self.floor_mb = resident_mb
        self.due = False
        #: When it last trimmed (or started), ``time.monotonic()`` seconds.
        self.last_trim_s = time.monotonic()
        #: Trims done, for tests and status.
        self.trims = 0

    def after_job(self, resident_mb: float) -> None:
        """A job ended leaving the process at ``resident_mb`` MB: is a trim due?"""
        self.due = available() and pool_trim_due(self.floor_mb, resident_mb)

    def overdue(self, now_s: float) -> bool:
        """True when a due trim should not wait for an idle moment (``now_s``: monotonic)."""
        return self.due and pool_busy_trim_due(self.last_trim_s, now_s)

    def trim(self, resident_mb: Callable[[], float]) -> None:
        """Trim now; what ``resident_mb()`` reads after it is the new floor."""
        trim()
        self.floor_mb, self.due = resident_mb(), False
        self.last_trim_s = time.monotonic()
        self.trims += 1


class PeriodicTrim:
    """The worker's trims: at most every ``WORKER_TRIM_INTERVAL_S``, after jobs (``note_job``)."""

    def __init__(self) -> None:
        self._jobs_since = False
        self._last_s = time.monotonic()
        #: Trims done, for tests and status.
        self.trims = 0

    def note_job(self) -> None:
        """An inline job ended (cheap: called from the job's own thread)."""
        self._jobs_since = True

    def maybe(self, now_s: float) -> bool:
        """Trim if ``kqueue.policy.trim.worker_trim_due`` (``now_s``: ``time.monotonic()``)."""
        if not worker_trim_due(self._jobs_since, self._last_s, now_s) or not available():
            return False
        self._jobs_since, self._last_s = False, now_s
        trim()
        self.trims += 1
        return True
