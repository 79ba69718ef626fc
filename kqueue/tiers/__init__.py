"""The three tiers, chosen by ``Tier``: inline (in the worker), pool (reused processes), isolated.

Layout: ``base`` (Invocation, Outcome, TierRunner), ``inline``, ``pool``, ``isolated``.
"""

from __future__ import annotations

import logging

from kqueue.policy.config import Config, Tier
from kqueue.tiers.base import Invocation, Outcome, TierRunner
from kqueue.tiers.inline import InlineRunner

log = logging.getLogger("kqueue.tiers")


class _InlineStandIn(InlineRunner):
    """Runs jobs routed to a tier that this build does not have yet, inline, with a warning."""

    def __init__(self, app, config: Config, tier: Tier):
        super().__init__(app, config)
        self.tier = tier
        self._warned = False

    async def run(self, invocation: Invocation) -> Outcome:
        if not self._warned:
            log.warning(
                "the %s tier is not available yet: running its jobs inline", self.tier.value
            )
            self._warned = True
        return await super().run(invocation)


def build_runners(app, config: Config, *, force_inline: bool = False) -> dict[Tier, TierRunner]:
    """One runner per tier; with ``force_inline`` only the inline tier exists."""
    runners: dict[Tier, TierRunner] = {Tier.INLINE: InlineRunner(app, config)}
    if force_inline:
        return runners
    runners[Tier.POOL] = _InlineStandIn(app, config, Tier.POOL)
    runners[Tier.ISOLATED] = _InlineStandIn(app, config, Tier.ISOLATED)
    return runners


__all__ = ["Invocation", "Outcome", "TierRunner", "build_runners"]
