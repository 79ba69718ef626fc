"""The simulator: a SimPy model of the kqueue runtime that replays traces (issue 5).

Layout, one folder per role, imports running down: ``engine/`` (the discrete-event machinery:
``clock``, ``cpu``, ``gil``, ``memory``), ``model/`` (the twin of the worker: ``jobs``, ``tiers``,
``worker``, ``outcome``, ``report``, ``replay``, ``workload``, ``theory``), ``tune/`` (the tuner:
``slo``, ``space``, ``evaluate``, ``search``, ``report``); at the top, the entry points: ``cli``
(``simulate``, ``tune``, ``trace synth``) and ``progress`` (its progress line).

The names below are imported on first use, so ``import sim.cli`` stays light for ``--help``.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    # run a simulation
    "simulate",
    "prepare",
    "TraceJobs",
    "SimResult",
    "TierStats",
    # tune a config
    "tune",
    "TuneResult",
    "Problem",
    "Slo",
    "parse_slo",
    "DEFAULT_SLOS",
    # inputs
    "HostProfile",
    "JobClass",
    "PROTOTYPE_MIX",
    "synth",
    "rescale_to_rate",
    "speed_up",
    "fit_to_duration",
    "parse_rate",
    "parse_duration",
]

_HOME = {
    "simulate": "sim.model.replay",
    "prepare": "sim.model.replay",
    "TraceJobs": "sim.model.jobs",
    "SimResult": "sim.model.report",
    "TierStats": "sim.model.report",
    "tune": "sim.tune.search",
    "TuneResult": "sim.tune.search",
    "Problem": "sim.tune.evaluate",
    "Slo": "sim.tune.slo",
    "parse_slo": "sim.tune.slo",
    "DEFAULT_SLOS": "sim.tune.slo",
    "HostProfile": "kqueue.policy.host",
    "JobClass": "sim.model.workload",
    "PROTOTYPE_MIX": "sim.model.workload",
    "synth": "sim.model.workload",
    "rescale_to_rate": "sim.model.workload",
    "speed_up": "sim.model.workload",
    "fit_to_duration": "sim.model.workload",
    "parse_rate": "kqueue.policy.units",
    "parse_duration": "kqueue.policy.units",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
