"""The tuner's budget as a guarantee: the recommended config carries ``memory_budget_mb``.

The search (``sim.tune.search``) finds the least-memory config whose simulated peak fits the
budget; the config it writes also sets ``memory_budget_mb`` to that budget, so the runtime keeps
it when the real load is worse than the trace (``kqueue.policy.admission``), and the twin, which
runs the same admission, tells what that costs in waits (``budget_waits``). Every check of a host
count (every share of every seed) runs the config as written, admission on, so the numbers of
``simulate --hosts N`` on the written file are the ones the tuner judged. The prediction before
a class has history is the trace's 90th percentile of job memory, not the job limit (the default),
so a fresh worker does not admit its first jobs as if each used its whole limit.
"""

from __future__ import annotations

import math

import numpy as np

from kqueue.policy import Config


def with_budget(config: Config, budget_mb: float, memory_mb) -> Config:
    """``config`` with ``memory_budget_mb`` set (its job limit capped by it); unchanged for
    ``inf``.

    Args:
        config: the recommended config.
        budget_mb: the tuner's budget (MB; ``inf``: none).
        memory_mb: the trace's per-job memory (MB), for ``default_job_memory_mb``.
    """
    if math.isinf(budget_mb) or config.memory_budget_mb == budget_mb:
        return config  # none, or already kept (the tuner checks host counts with it)
    values = np.asarray(memory_mb, float)
    values = values[np.isfinite(values)]
    changes = {
        "memory_budget_mb": float(budget_mb),
        "max_memory_mb": min(config.max_memory_mb, float(budget_mb)),
    }
    if len(values):
        changes["default_job_memory_mb"] = max(1.0, float(np.quantile(values, 0.9)))
    return config.replace(**changes)
