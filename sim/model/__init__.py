"""The twin of one kqueue worker, and what runs it on a trace and reports on it.

Imports run down this list: ``jobs`` (the jobs to replay, ``TraceJobs``, the tier codes derived
from ``kqueue.policy.Tier``), ``tiers`` (inline, pool, isolated), ``worker`` (``Model``: fetch,
estimate and route with ``kqueue.policy``, then run on the tiers), ``outcome`` (a finished run's
arrays, the simulated trace), ``report`` (metrics, ``SimResult``, the terminal table), ``replay``
(``prepare`` and ``simulate``: a trace -> ``SimResult``); beside them ``workload`` (synthetic
traces, rate and duration helpers) and ``theory`` (Erlang C, Pollaczek-Khinchine: what the model
is checked against).
"""
