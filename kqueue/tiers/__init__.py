"""The three tiers, chosen by ``Tier``: inline (in the worker), pool (reused processes), isolated.

Layout: ``base`` (Invocation, Outcome, TierRunner), ``inline``, ``pool`` (supervised reused
processes), ``isolated`` (a process per job); their helpers ``process`` (the parent's handle on
a forked child), ``child`` (the code that runs in it) and ``procs`` (kill a tree, read memory).
"""

from __future__ import annotations

from kqueue.policy.config import Config, Tier
from kqueue.tiers.base import Invocation, Outcome, TierRunner
from kqueue.tiers.inline import InlineRunner
from kqueue.tiers.isolated import IsolatedRunner
from kqueue.tiers.pool import PoolRunner

RUNNERS: dict[Tier, type[TierRunner]] = {
    Tier.INLINE: InlineRunner,
    Tier.POOL: PoolRunner,
    Tier.ISOLATED: IsolatedRunner,
}


def build_runners(app, config: Config, *, force_inline: bool = False) -> dict[Tier, TierRunner]:
    """One runner per tier; with ``force_inline`` only the inline tier exists."""
    tiers = (Tier.INLINE,) if force_inline else (Tier.INLINE, Tier.POOL, Tier.ISOLATED)
    return {tier: RUNNERS[tier](app, config) for tier in tiers}


__all__ = [
    "InlineRunner",
    "Invocation",
    "IsolatedRunner",
    "Outcome",
    "PoolRunner",
    "RUNNERS",
    "TierRunner",
    "build_runners",
]
