"""The memory model: total resident memory of the worker and its processes over time.

Total = the worker process (``HostProfile.worker_mb``, with the pool's zygote's ``zygote_mb``
when it has one: ``kqueue.policy.fork.standing_mb``) + inline jobs' memory (while they run, and
what the worker's heap keeps of them: ``sim.model.tiers.InlineTier``) + each pool process
(``pool_process_mb`` plus the high-water mark of the jobs it has run, until it exits) + each
isolated process (``isolated_process_mb`` from its spawn, plus its job's memory from the job's
start, all released at exit). Every change is a ``(time_s, delta_mb)`` step (a tier that keeps
state records them in a ``MemoryLog`` as it runs); the curve is their running sum. At equal
times releases come before allocations, so a process recycled and replaced at one instant does
not count twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Most points kept in the memory time series (each the maximum over its time bucket).
SERIES_POINTS = 2000


@dataclass(frozen=True)
class Steps:
    """Memory changes: times (s) and signed amounts (MB)."""

    t_s: np.ndarray
    delta_mb: np.ndarray

    @staticmethod
    def join(*parts: Steps) -> Steps:
        """All the changes of several parts."""
        return Steps(
            np.concatenate([p.t_s for p in parts]), np.concatenate([p.delta_mb for p in parts])
        )


class MemoryLog:
    """Memory changes as a tier makes them: ``add(at_s, delta_mb)``, then ``steps()``."""

    __slots__ = ("t_s", "delta_mb", "level_mb")

    def __init__(self) -> None:
        self.t_s: list[float] = []
        self.delta_mb: list[float] = []
        #: The sum of the changes so far (what the tier holds, counting those about to apply).
        self.level_mb = 0.0

    def add(self, at_s: float, delta_mb: float) -> None:
        """``delta_mb`` MB more (or less) from ``at_s`` on; a zero change is not kept."""
        if delta_mb:
            self.t_s.append(at_s)
            self.delta_mb.append(delta_mb)
            self.level_mb += delta_mb

    def steps(self) -> Steps:
        """The changes so far."""
        return Steps(np.asarray(self.t_s, float), np.asarray(self.delta_mb, float))


@dataclass(frozen=True)
class Curve:
    """A step function of memory: ``level_mb[i]`` holds from ``t_s[i]`` to ``t_s[i + 1]``."""

    t_s: np.ndarray
    level_mb: np.ndarray
    base_mb: float

    def peak(self) -> tuple[float, float]:
        """(peak MB, first time it was reached in s); the base at time 0 if nothing changed."""
        if len(self.level_mb) == 0 or self.level_mb.max() <= self.base_mb:
            return float(self.base_mb), 0.0
        at = int(np.argmax(self.level_mb))
        return float(self.level_mb[at]), float(self.t_s[at])

    def series(self, points: int = SERIES_POINTS) -> pd.DataFrame:
        """The curve as at most ``points`` rows (``time_s``, ``memory_mb``), each a bucket max."""
        t, level = self.t_s, self.level_mb
        if len(t) <= points:
            return pd.DataFrame({"time_s": t, "memory_mb": level})
        edges = np.linspace(t[0], t[-1], points + 1)[:-1]
        first = np.searchsorted(t, edges, side="left")
        carried = np.where(first > 0, level[np.maximum(first - 1, 0)], self.base_mb)
        ends = np.append(first[1:], len(t))
        empty = first >= ends
        within = np.maximum.reduceat(level, np.minimum(first, len(t) - 1))
        bucket_max = np.where(empty, carried, np.maximum(carried, within))
        return pd.DataFrame({"time_s": edges, "memory_mb": bucket_max})


def curve(steps: Steps, base_mb: float = 0.0) -> Curve:
    """Sum the steps in time order (releases first at equal times) on top of ``base_mb``."""
    order = np.lexsort((steps.delta_mb, steps.t_s))
    return Curve(steps.t_s[order], base_mb + np.cumsum(steps.delta_mb[order]), base_mb)


def job_steps(started_s: np.ndarray, finished_s: np.ndarray, memory_mb: np.ndarray) -> Steps:
    """Each job holds its memory from its start to its end."""
    return Steps(np.concatenate([started_s, finished_s]), np.concatenate([memory_mb, -memory_mb]))


def process_steps(spawned_s: np.ndarray, exited_s: np.ndarray, process_mb: float) -> Steps:
    """Each process holds ``process_mb`` from its spawn to its exit."""
    held = np.full(len(spawned_s), float(process_mb))
    return job_steps(spawned_s, exited_s, held)
