"""The raw result of one run (``Outcome``) and the simulated trace it writes back.

``Outcome.from_model`` collects a finished ``Model``'s per-job lists and its tiers' counters as
numpy arrays; ``report.summarize`` computes the metrics from it, and ``simulated_trace`` turns it
into the runtime's trace rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kqueue.policy import COLUMNS, Config, HostProfile, Status
from sim.engine.memory import Steps
from sim.model.jobs import INLINE, ISOLATED, POOL, TIER_NAMES, TraceJobs
from sim.model.worker import Model


@dataclass(frozen=True)
class Outcome:
    """The raw result of one run: per-job arrays (replay order) and the tiers' counters."""

    prepared: TraceJobs
    config: Config
    host: HostProfile
    #: The worker's tree before any job or pool process, MB (``kqueue.policy.fork.standing_mb``).
    standing_mb: float
    submitted_s: np.ndarray
    started_s: np.ndarray
    finished_s: np.ndarray
    slot_s: np.ndarray
    tier: np.ndarray
    estimated_s: np.ndarray
    process: np.ndarray
    memory_mb: np.ndarray
    inline_steps: Steps
    pool_steps: Steps
    #: Per tier code: what jobs faulting memory in take off the curve (``sim.model.fault_in``).
    fault_in_steps: tuple[Steps, ...]
    pool_alive_process_s: float
    pool_spawns: int
    pool_recycles: int
    pool_peak_size: int
    isolated_spawns: int
    #: Per job: the worker's inline memory its isolated process was forked with (0 otherwise).
    isolated_inherited_mb: np.ndarray
    cpu_busy_core_s: float
    wall_s: float
    #: Attempts a limit killed, by tier name then status (``timeout`` / ``memory``), and the
    #: jobs dead-lettered after their last attempt was killed, likewise.
    kills: dict = dataclasses.field(default_factory=dict)
    dead: dict = dataclasses.field(default_factory=dict)
    #: Per job: True when it was dead-lettered (its last attempt killed by a limit).
    dead_mask: np.ndarray | None = None
    #: Per job: the priority it was ordered by (recorded, else its class's).
    priority: np.ndarray | None = None
    #: This process's CPU seconds over the same span as ``wall_s`` (the model's build and run).
    cpu_s: float = dataclasses.field(default=0.0, compare=False)

    @classmethod
    def from_model(
        cls, model: Model, prepared: TraceJobs, config, host, wall_s: float, cpu_s: float = 0.0
    ) -> Outcome:
        """Collect the arrays and counters of a finished ``Model`` run."""
        inline, pool = model.tiers[INLINE], model.tiers[POOL]
        return cls(
            prepared=prepared,
            config=config,
            host=host,
            standing_mb=model.standing_mb,
            submitted_s=np.asarray(model.jobs.submitted_s, float),
            started_s=np.asarray(model.started_s, float),
            finished_s=np.asarray(model.finished_s, float),
            slot_s=np.asarray(model.slot_s, float),
            tier=np.asarray(model.tier, np.int8),
            estimated_s=np.asarray(model.estimated_s, float),
            process=np.asarray(model.process, np.int64),
            memory_mb=np.asarray(model.memory_mb, float),
            inline_steps=inline.memory.steps(),
            pool_steps=pool.memory.steps(),
            fault_in_steps=tuple(log.steps() for log in model.fault_in.logs),
            pool_alive_process_s=pool.alive_process_s,
            pool_spawns=pool.spawns,
            pool_recycles=pool.recycles,
            pool_peak_size=pool.peak_size,
            isolated_spawns=model.tiers[ISOLATED].spawns,
            isolated_inherited_mb=_per_job(model.tiers[ISOLATED].inherited_mb, len(model.tier)),
            cpu_busy_core_s=model.cpu.busy_core_s,
            wall_s=wall_s,
            kills=_by_tier(model.kills.items()),
            dead=_by_tier(((model.tier[j], s), 1) for j, s in model.dead.items()),
            dead_mask=_per_job(dict.fromkeys(model.dead, 1.0), len(model.tier)) > 0,
            priority=np.asarray(model.priority, np.int64),
            cpu_s=cpu_s,
        )


def _by_tier(counts) -> dict[str, dict[str, int]]:
    """``{tier name: {status: count}}`` from ``((tier code, Status), count)`` pairs."""
    out: dict[str, dict[str, int]] = {}
    for (code, status), count in counts:
        tier = out.setdefault(TIER_NAMES[code], {})
        tier[str(status)] = tier.get(str(status), 0) + count
    return out


def _per_job(values: dict[int, float], jobs: int) -> np.ndarray:
    array = np.zeros(jobs)
    if values:
        array[list(values)] = list(values.values())
    return array


def simulated_trace(o: Outcome) -> pd.DataFrame:
    """The runtime's trace columns for every finished job (times on the input trace's clock)."""
    rows, origin = o.prepared.rows, o.prepared.origin_s
    tier = pd.Series(np.array(TIER_NAMES + ("none",), dtype=object)[o.tier])
    worker = "sim:" + tier
    labelled = (o.tier != INLINE) & (o.process >= 0)
    worker[labelled] = worker[labelled] + "-" + pd.Series(o.process).astype(str)[labelled]
    frame = pd.DataFrame(
        {
            "job_id": rows["job_id"].where(rows["job_id"].notna(), rows.index.astype(str)),
            "queue": rows["queue"].where(rows["queue"].notna(), "default"),
            "job_class": rows["job_class"],
            "tier": tier,
            "submitted_at": rows["submitted_at"],
            "started_at": o.started_s + origin,
            "finished_at": o.finished_s + origin,
            "wait_s": o.started_s - o.submitted_s,
            "duration_s": o.finished_s - o.started_s,
            "cpu_s": np.asarray(o.prepared.jobs.cpu_s, float),
            "memory_mb": o.memory_mb,
            "status": rows["status"].where(rows["status"].notna(), Status.OK.value),
            "attempt": rows["attempt"].fillna(1).astype(int),
            "worker": worker,
            "estimated_s": o.estimated_s,
            "due_at": o.submitted_s + origin,
            "priority": o.priority if o.priority is not None else 0,
        }
    )
    return frame.loc[np.isfinite(o.finished_s), list(COLUMNS)].reset_index(drop=True)
