"""The jobs a run replays and the tier codes it stores per job: the data the model, the replay and
the report all read, below each of them.

``Jobs`` is the trace as parallel lists (what the model indexes on its hot path), ``TraceJobs``
that plus what the report needs to write the simulated trace back (``replay.prepare`` builds it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kqueue.policy import Tier

if TYPE_CHECKING:
    import pandas as pd

#: The tiers a job can run on, in the order of their codes. The simulator stores a job's tier as
#: its index here (``Model.tier``, an int8 array in ``Outcome.tier``; -1 = not dispatched) rather
#: than the ``Tier`` enum: the hot path indexes ``Model.tiers`` with it and the report compares
#: whole numpy arrays of it. ``TIER_CODE`` turns the router's ``Tier`` into its code.
TIERS: tuple[Tier, ...] = (Tier.INLINE, Tier.POOL, Tier.ISOLATED)
TIER_CODE: dict[Tier, int] = {tier: code for code, tier in enumerate(TIERS)}
INLINE, POOL, ISOLATED = TIER_CODE[Tier.INLINE], TIER_CODE[Tier.POOL], TIER_CODE[Tier.ISOLATED]
#: The tiers' names in code order (``Tier`` values), as reports and SLOs key them.
TIER_NAMES: tuple[str, ...] = tuple(tier.value for tier in TIERS)


@dataclass(frozen=True)
class Jobs:
    """The jobs to replay, as parallel lists sorted by ``submitted_s`` (seconds, MB)."""

    submitted_s: list[float]
    duration_s: list[float]
    cpu_s: list[float]
    memory_mb: list[float]
    job_class: list[str]
    #: Per job, the priority its trace row records (NaN: not recorded, so its class's
    #: ``[jobs]`` priority applies); empty when the trace has none at all.
    priority: Sequence[float] = ()

    def __len__(self) -> int:
        return len(self.submitted_s)


@dataclass(frozen=True)
class TraceJobs:
    """A trace made ready to replay: jobs sorted by submission, times relative to ``origin_s``."""

    #: The jobs, time 0 = ``origin_s``.
    jobs: Jobs
    #: The trace's first ``submitted_at`` (added back to times in the simulated trace).
    origin_s: float
    #: The validated rows in replay order (their ``job_id``, ``queue``, ... are passed through).
    rows: pd.DataFrame
    #: How many rows had no ``cpu_s`` / no ``memory_mb`` and got ``replay``'s defaults.
    default_cpu_rows: int
    default_memory_rows: int
    #: Per class, the part of the fleet's jobs of that class this replay holds when it is one
    #: host's share of a split (``sim.tune.split``): a ``rate_limit`` or ``concurrency_limit``
    #: is shared by every worker on the backend, so one host gets that part of it
    #: (``sim.model.rules.host_part``). Empty: the replay is the whole fleet.
    fleet_part: Mapping[str, float] = field(default_factory=dict)
