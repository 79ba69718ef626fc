"""The tuner: a search over worker configs for the cheapest one that meets the SLOs on a trace.

``slo`` (targets and margins), ``space`` (bounds, splits, Erlang sizing), ``evaluate`` (parallel
evaluation, the selection rule), ``search`` (the entry point: ``tune``) over ``bounds``,
``candidates``, ``config_search`` (one trace) and ``host_search`` (the host count), and
``report`` (Markdown, PNGs).
"""
