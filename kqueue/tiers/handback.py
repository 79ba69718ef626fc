"""How finished pool jobs get back to the worker without a wake-up per job.

Two steps, each batching what would otherwise cost one event-loop round per job:

- ``PipeReads``: while a pool process has short jobs queued in its pipe, the loop does not watch
  that pipe; its results wait there and are read, all at once, on a timer. The process never
  waits for them (its next requests are already in its pipe), and the worker is not woken for
  every job, which on a busy 2-core machine slowed the jobs themselves (the worker's wake-up and
  the context switch compete with the pool processes for the cores).
- ``Deliveries``: finished jobs' outcomes go to the worker at once when the pool is short of
  jobs, else within ``DELIVERY_DELAY_S``, so the worker settles, acks and refills several per
  round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from kqueue.tiers.process import ChildProcess

#: Longest a finished job waits to be handed back to the worker while the pool is not short of
#: jobs (its ack and its record wait with it), seconds.
DELIVERY_DELAY_S = 0.1
#: Longest the results of a process with queued short jobs wait unread in its pipe, seconds.
READ_INTERVAL_S = 0.25
#: Shortest interval between two reads of paused pipes, seconds.
MIN_READ_INTERVAL_S = 0.005


class PipeReads:
    """Reads the pipes of paused processes on one timer, every ``interval_s()`` seconds.

    Args:
        interval_s: called when the timer is set; the seconds until the next read, clamped to
            ``MIN_READ_INTERVAL_S``..``READ_INTERVAL_S``. The caller makes it shorter than the
            work queued in a pipe, so a process never runs dry between two reads.
    """

    def __init__(self, interval_s: Callable[[], float]):
        self._interval_s = interval_s
        self._paused: dict[int, ChildProcess] = {}
        self._timer: asyncio.TimerHandle | None = None
        #: Reads of paused pipes so far (each one a single wake-up for every paused process).
        self.rounds = 0

    def watch(self, process: ChildProcess, *, each_result: bool) -> None:
        """Read ``process``'s results as they arrive (``each_result``) or on the timer."""
        if each_result or not process.alive:
            self._paused.pop(process.pid, None)
            process.resume_reading()
            return
        process.pause_reading()
        self._paused[process.pid] = process
        self._arm()

    def forget(self, process: ChildProcess) -> None:
        """``process`` exited (its exit reader drained its pipe): stop reading it."""
        self._paused.pop(process.pid, None)

    def _read(self) -> None:
        self._timer = None
        self.rounds += 1
        for process in list(self._paused.values()):
            process.drain()  # its results may resume its reader, or keep it paused
        if self._paused:
            self._arm()

    def _arm(self) -> None:
        if self._timer is None:
            interval_s = min(READ_INTERVAL_S, max(MIN_READ_INTERVAL_S, self._interval_s()))
            self._timer = asyncio.get_running_loop().call_later(interval_s, self._read)

    def close(self) -> None:
        """Stop the timer and read every pipe as results arrive again (shutdown)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for process in list(self._paused.values()):
            self.watch(process, each_result=True)


class Deliveries:
    """Finished jobs on their way to the worker: at once, or together within a short delay."""

    def __init__(self):
        self._finished: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, job: Any, *, now: bool) -> None:
        """Queue ``job`` (with ``cancelled``, ``outcome``, ``on_done``); ``now``: deliver all."""
        self._finished.append(job)
        if now:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(DELIVERY_DELAY_S, self.flush)

    def flush(self) -> None:
        """Hand every finished job's outcome to its ``on_done``, in the order they finished."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        finished, self._finished = self._finished, []
        for job in finished:
            if not job.cancelled:
                job.on_done(job.outcome)
