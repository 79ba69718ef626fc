"""The tuner: a search over worker configs for the cheapest one that meets the SLOs on a trace.

``slo`` (targets and margins), ``space`` (bounds, splits, Erlang sizing), ``evaluate`` (parallel
evaluation, the selection rule), ``search`` (the search: ``tune``) and ``report`` (Markdown, PNGs).
"""
