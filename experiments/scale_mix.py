"""The prototype's mix, scaled to fit this machine, as rows for ``kqueue.ops.attempts``.

Shared by ``soak.py``, ``hosts.py`` and the network-namespace test. Each class of
``sim.model.workload.PROTOTYPE_MIX`` keeps the tier the prototype ran it on (fast inline,
medium pool, heavy isolated); durations and CPU times are multiplied by ``time_scale`` and memory
by ``memory_scale`` so a busy 2-core host can hold the arrival rate.
"""

from __future__ import annotations

from kqueue.ops.attempts import Row
from sim.model.workload import PROTOTYPE_MIX, synth

TIER_BY_CLASS = {"fast": "inline", "medium": "pool", "heavy": "isolated"}


def prototype_rows(
    jobs: int, rate_per_s: float, *, time_scale: float, memory_scale: float, seed: int = 0
) -> list[Row]:
    """``jobs`` rows of the prototype mix arriving at ``rate_per_s`` (Poisson), scaled."""
    frame = synth(jobs, rate_per_s, mix=PROTOTYPE_MIX, seed=seed)
    return [
        Row(
            no=no,
            arrival_s=float(row.submitted_at),
            tier=TIER_BY_CLASS[row.job_class],
            duration_s=float(row.duration_s) * time_scale,
            cpu_s=float(row.cpu_s) * time_scale,
            memory_mb=float(row.memory_mb) * memory_scale,
        )
        for no, row in enumerate(frame.itertuples(index=False))
    ]
