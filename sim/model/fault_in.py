"""A job's first phase: faulting its fresh memory in, before its off-CPU time and the rest.

A job that needs memory its process does not hold yet (``fresh_mb``, which each tier works out
at the job's start) makes it resident by writing to it, which costs CPU
(``HostProfile.fault_cpu_s_per_mb`` a MB): the runtime's synthetic job touches its block first,
then waits out its I/O, then computes the rest (``kqueue.ops.synthetic``), and a real job
allocates as it goes. So the model runs a job with fresh memory in three phases: that fault-in
CPU, its off-CPU time, then the rest of its CPU. Its resident memory grows over the first phase,
roughly linearly; the tiers count the job's whole memory from its start (the budget reserves
it all from then on, as the runtime's does), so ``FaultIn`` keeps, per tier, the difference to
the curve: half the fresh memory less while the fault-in runs (the same area as a linear ramp).
"""

from __future__ import annotations

from dataclasses import dataclass

from sim.engine.memory import MemoryLog


@dataclass(frozen=True)
class Rest:
    """What a job does after its fault-in: off-CPU seconds, then CPU seconds."""

    off_s: float
    cpu_s: float


class FaultIn:
    """The fault-in phases of running jobs and what they take off the memory curve, per tier.

    Args:
        tiers: how many tiers (one ``MemoryLog`` each, indexed by tier code).
    """

    def __init__(self, tiers: int):
        #: Per tier code: the memory not yet resident while jobs fault theirs in (steps <= 0).
        self.logs = tuple(MemoryLog() for _ in range(tiers))
        self._pending: dict[int, tuple[int, float, Rest]] = {}

    def begin(self, job: int, tier: int, at_s: float, fresh_mb: float, rest: Rest) -> None:
        """``job`` (of ``tier``) starts faulting ``fresh_mb`` in at ``at_s``; ``rest`` follows."""
        self.logs[tier].add(at_s, -fresh_mb / 2)
        self._pending[job] = (tier, fresh_mb, rest)

    def end(self, job: int, now_s: float) -> Rest | None:
        """The CPU phase of ``job`` that just ended: its ``Rest`` if it was the fault-in (its
        memory is now all resident), None if it was the job's last phase."""
        pending = self._pending.pop(job, None)
        if pending is None:
            return None
        tier, fresh_mb, rest = pending
        self.logs[tier].add(now_s, fresh_mb / 2)
        return rest
