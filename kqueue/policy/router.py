"""Which tier runs a job: the explicit tier wins, else the estimate against the two thresholds.

``route_by_load`` may then move a pool job to a free isolated slot while the pool's wait is long.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class TierLoad:
    """What load-aware routing looks at."""

    #: Expected wait for a pool process: jobs ahead of this one times their mean estimate over
    #: the pool's size, seconds.
    pool_wait_s: float
    #: Isolated slots free now.
    isolated_free: int
    #: Time to start a fresh isolated process, seconds (the host profile's spawn time).
    spawn_s: float


def pool_wait_s(ahead: int, mean_estimate_s: float, pool_size: int) -> float:
    """Expected wait for a pool process with ``ahead`` jobs in front, seconds (inf: no pool)."""
    if ahead <= 0:
        return 0.0
    if pool_size <= 0:
        return float("inf")
    return ahead * mean_estimate_s / pool_size


def route_by_load(
    tier: Tier, load: TierLoad, config: Config, *, spilling: bool
) -> tuple[Tier, bool]:
    """Move a pool job to an idle isolated slot while the pool is overloaded (pure).

    Hysteresis: spilling starts once ``load.pool_wait_s`` passes ``load_route_enter_wait_s``
    and stops once it falls below ``load_route_exit_wait_s``; while it lasts a pool job goes
    isolated when a slot is free and starting a process costs less than the pool's wait. Off
    unless ``config.load_routing``. Memory is admission's business afterwards.

    Args:
        tier: the tier ``route`` chose.
        load: the tiers' load now.
        spilling: whether spilling was on after the previous job.

    Returns:
        The tier for this job and whether spilling is on now.
    """
    if not config.load_routing:
        return tier, False
    if spilling:
        spilling = load.pool_wait_s >= config.load_route_exit_wait_s
    else:
        spilling = load.pool_wait_s > config.load_route_enter_wait_s
    if (
        spilling
        and tier is Tier.POOL
        and load.isolated_free > 0
        and load.spawn_s < load.pool_wait_s
    ):
        return Tier.ISOLATED, spilling
    return tier, spilling
