"""Which tier runs a job: the explicit tier wins, else the estimate against the two thresholds."""

from __future__ import annotations

from kqueue.policy.config import Config, Tier


def route(
    declared: Tier | str | None, estimate_s: float, config: Config, *, force_inline: bool = False
) -> Tier:
    """Choose the tier for one job (pure).

    Args:
        declared: the job's resolved ``tier`` setting (a Tier or its name; ``None`` means auto);
            anything but ``Tier.AUTO`` wins.
        estimate_s: the job's expected duration in seconds (see ``kqueue.policy.estimator``).
        config: supplies ``inline_max_duration_s`` and ``pooled_max_duration_s``.
        force_inline: the worker's ``--inline`` opt-out of concurrency; beats everything.

    Returns:
        ``INLINE`` when ``estimate_s <= inline_max_duration_s``, ``POOL`` when it is
        ``<= pooled_max_duration_s``, else ``ISOLATED``.

    Raises:
        ValueError: ``declared`` is not a tier name.
    """
    if force_inline:
        return Tier.INLINE
    if declared is not None and declared is not Tier.AUTO:  # the common case skips Tier()
        tier = Tier(declared)
        if tier is not Tier.AUTO:
            return tier
    if estimate_s <= config.inline_max_duration_s:
        return Tier.INLINE
    if estimate_s <= config.pooled_max_duration_s:
        return Tier.POOL
    return Tier.ISOLATED
