"""The twin of one kqueue worker, and what runs it on a trace and reports on it.

``worker`` (``Model``: fetch, estimate, route with ``kqueue.policy``) with ``tiers`` (inline,
pool, isolated), ``workload`` (synthetic traces, rate and duration helpers), ``replay``
(``prepare`` and ``simulate``: a trace -> ``SimResult``), ``report`` and ``text`` (metrics, the
terminal table) and ``theory`` (Erlang C, Pollaczek-Khinchine: what the model is checked against).
"""
