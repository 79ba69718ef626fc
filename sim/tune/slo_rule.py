"""The SLO default rule in words: light to import, for ``--help`` and the report."""

#: How named SLOs and the defaults combine (``sim.tune.slo.parse_slos`` applies it).
DEFAULT_RULE = (
    "the defaults (inline 1 s, pool 10 s, isolated 60 s p95 waits) always bind; an --slo adds an "
    "objective or replaces the default of the same tier.metric; --no-default-slos keeps only "
    "the named ones"
)
