"""The simulator: a SimPy model of the kqueue runtime that replays traces (issue 5).

Layout: ``host`` (the host profile), ``workload`` (synthetic traces, rate and duration helpers),
``model`` (the worker's SimPy processes) with ``tiers`` and ``cpu`` (processor sharing),
``replay`` (run a trace -> ``SimResult``), ``report`` / ``memory`` / ``text`` (metrics),
``theory`` (Erlang C, Pollaczek-Khinchine), ``cli`` (``simulate``, ``tune``, ``trace synth``).
The tuner: ``slo`` (targets), ``tune_space`` (bounds, splits, Erlang sizing), ``tune_eval``
(parallel evaluation, selection rule), ``tune`` (the search), ``tune_report`` (Markdown, PNGs).

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
    "simulate": "sim.replay",
    "prepare": "sim.replay",
    "TraceJobs": "sim.replay",
    "SimResult": "sim.report",
    "TierStats": "sim.report",
    "tune": "sim.tune",
    "TuneResult": "sim.tune",
    "Problem": "sim.tune_eval",
    "Slo": "sim.slo",
    "parse_slo": "sim.slo",
    "DEFAULT_SLOS": "sim.slo",
    "HostProfile": "sim.host",
    "JobClass": "sim.workload",
    "PROTOTYPE_MIX": "sim.workload",
    "synth": "sim.workload",
    "rescale_to_rate": "sim.workload",
    "speed_up": "sim.workload",
    "fit_to_duration": "sim.workload",
    "parse_rate": "kqueue.policy.units",
    "parse_duration": "kqueue.policy.units",
}


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    if name not in _HOME:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name]), name)
