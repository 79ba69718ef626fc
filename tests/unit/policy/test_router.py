"""Router: explicit tier wins, else the estimate against the thresholds (<= is the lower tier)."""

from __future__ import annotations

import pytest

from kqueue.policy.config import Config, Tier
from kqueue.policy.router import route

AUTO, INLINE, POOL, ISOLATED = Tier.AUTO, Tier.INLINE, Tier.POOL, Tier.ISOLATED

# declared, estimate_s, inline threshold, pooled threshold, force_inline -> tier
ROUTES = [
    (AUTO, 0.0, 1.0, 30.0, False, INLINE),
    (AUTO, 0.5, 1.0, 30.0, False, INLINE),
    (AUTO, 1.0, 1.0, 30.0, False, INLINE),  # exactly the inline threshold
    (AUTO, 1.000001, 1.0, 30.0, False, POOL),
    (AUTO, 5.0, 1.0, 30.0, False, POOL),
    (AUTO, 30.0, 1.0, 30.0, False, POOL),  # exactly the pooled threshold
    (AUTO, 30.000001, 1.0, 30.0, False, ISOLATED),
    (AUTO, 3600.0, 1.0, 30.0, False, ISOLATED),
    (AUTO, 2.0, 2.0, 2.0, False, INLINE),  # equal thresholds: no pool band
    (AUTO, 2.5, 2.0, 2.0, False, ISOLATED),
    (AUTO, 0.0, 0.0, 0.0, False, INLINE),
    (AUTO, 0.1, 0.0, 10.0, False, POOL),  # inline threshold 0: only instant jobs inline
    (INLINE, 3600.0, 1.0, 30.0, False, INLINE),  # explicit tier beats the estimate
    (POOL, 0.1, 1.0, 30.0, False, POOL),
    (ISOLATED, 0.1, 1.0, 30.0, False, ISOLATED),
    (AUTO, 3600.0, 1.0, 30.0, True, INLINE),  # --inline beats the estimate
    (ISOLATED, 3600.0, 1.0, 30.0, True, INLINE),  # and the explicit tier
    (POOL, 5.0, 1.0, 30.0, True, INLINE),
]


@pytest.mark.parametrize(("declared", "estimate", "inline", "pooled", "force", "expected"), ROUTES)
def test_route(declared, estimate, inline, pooled, force, expected):
    config = Config(inline_max_duration_s=inline, pooled_max_duration_s=pooled)
    assert route(declared, estimate, config, force_inline=force) is expected


@pytest.mark.parametrize(
    ("declared", "estimate", "expected"),
    [("auto", 0.5, INLINE), ("auto", 50.0, ISOLATED), ("pool", 0.5, POOL), (None, 5.0, POOL)],
)
def test_route_accepts_tier_names_and_unset(declared, estimate, expected):
    # A decorator or a file may hand over the tier as its name, or leave it unset.
    assert route(declared, estimate, Config()) is expected


def test_route_rejects_an_unknown_tier():
    with pytest.raises(ValueError, match="fast"):
        route("fast", 1.0, Config())
