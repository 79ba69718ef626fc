"""The tuner's candidate configs: the first ones from the bounds, and the steps from a config.

``candidates`` ranks the splits (thresholds) that pass the bounds by a rough memory guess and gives
the best few Erlang-C-sized capacities (``sim.tune.space``); ``neighbours`` and ``up_moves`` are
the configs one capacity step away, which the refinement and the fixes of a failing share try.
"""

from __future__ import annotations

import math

from kqueue.policy import Config
from sim.tune.bounds import inline_cap
from sim.tune.evaluate import Problem
from sim.tune.space import (
    Split,
    TraceProfile,
    cpu_stretch,
    make_split,
    memory_floor_mb,
    memory_guess_mb,
    servers_for,
    splits,
    wait_target,
    with_pool_tier,
)

#: Splits (threshold pairs) that get simulated, best memory guess first.
SPLITS_SIMULATED = 6

#: Capacity multipliers tried on each split's Erlang-C sizes (pool and isolated).
CAPACITY_FACTORS = (1.0, 1.3)

#: Inline slots are cheap (no process): at least the base config's, or this much above Erlang C.
INLINE_HEADROOM = 1.5

#: Largest concurrency the sizing considers.
MAX_SLOTS = 100_000


def candidates(trace: TraceProfile, problem: Problem) -> list[Config]:
    """The first candidates, in a fixed order: the best splits by memory guess, each with
    Erlang-C-sized capacities scaled by ``CAPACITY_FACTORS`` (and the base config's split)."""
    host = problem.host
    stretch = cpu_stretch(trace, host)
    stretch = stretch if math.isfinite(stretch) else 1.0
    pooled = with_pool_tier(problem.base)
    found = [s for s in splits(trace, host, stretch, inline_cap(problem))
             if memory_floor_mb(s, host, pooled) <= problem.memory_budget_mb]  # fmt: skip
    sized = [(s, *_sizes(s, problem)) for s in found]
    sized.sort(key=lambda item: memory_guess_mb(item[0], host, pooled, item[1], item[2]))
    base = problem.base
    chosen = sized[:SPLITS_SIMULATED]
    mine = make_split(trace, host, stretch, base.inline_max_duration_s, base.pooled_max_duration_s)
    if all(s != mine for s, *_ in chosen):
        chosen.append((mine, *_sizes(mine, problem)))
    configs = []
    for split, pool, isolated, inline in chosen:
        for factor in CAPACITY_FACTORS:
            configs.append(_config(split, trace, problem, math.ceil(pool * factor),
                                   math.ceil(isolated * factor), inline))  # fmt: skip
    return list(dict.fromkeys(configs))


def _sizes(split: Split, problem: Problem) -> tuple[int, int, int]:
    """Erlang-C sizes (pool, isolated, inline) for a split's bands and the SLOs."""
    sizes = []
    for tier, band in (("pool", split.pool), ("isolated", split.isolated),
                       ("inline", split.inline)):  # fmt: skip
        target_s, quantile = wait_target(problem.slos, tier, band)
        sizes.append(servers_for(band, target_s, quantile, MAX_SLOTS) if band.rate_per_s else 0)
    inline = math.ceil(sizes[2] * INLINE_HEADROOM)
    sizes[2] = max(inline, problem.base.max_concurrent_inline)
    return sizes[0], sizes[1], sizes[2]


def _config(split: Split, trace: TraceProfile, problem: Problem, pool: int, isolated: int,
            inline: int) -> Config:  # fmt: skip
    """A candidate: the split's thresholds and these capacities on top of the base config.

    An empty pool band gets ``pool_size = 0`` and ``pool_max_size = 1`` (a process only if a
    job of a class with no history lands there); isolated keeps at least one slot for the same
    reason. ``default_estimate_s`` becomes the trace's overall estimate, so a class with no
    history yet is routed like the trace's typical job.
    """
    return problem.base.replace(
        inline_max_duration_s=split.inline_max_duration_s,
        pooled_max_duration_s=split.pooled_max_duration_s,
        default_estimate_s=float(f"{trace.overall_estimate_s:.3g}"),
        pool_size=pool,
        pool_max_size=max(pool, 1),
        max_concurrent_isolated=max(isolated, 1),
        max_concurrent_inline=inline,
    )


def neighbours(
    config: Config, feasible: bool, trace: TraceProfile, problem: Problem
) -> list[Config]:
    """Configs one step away: smaller capacities and pool recycling (to save memory); while
    ``config`` is not feasible, larger capacities too (an SLO or stability may be what fails)."""
    pool, isolated, inline = (config.pool_max_size, config.max_concurrent_isolated,
                              config.max_concurrent_inline)  # fmt: skip
    has_pool = config.pool_size > 0
    down: list[dict] = []
    if has_pool:
        down += [{"pool_size": pool - s, "pool_max_size": pool - s}
                 for s in sorted({1, max(1, pool // 8)}) if pool - s >= 1]  # fmt: skip
    down += [{"max_concurrent_isolated": isolated - s}
             for s in sorted({1, max(1, isolated // 8)}) if isolated - s >= 1]  # fmt: skip
    down += [{"max_concurrent_inline": max(1, inline // 2)}] if inline > 1 else []
    recycle = _recycle_mb(config, trace, problem)
    down += [{"max_worker_memory_mb": recycle}] if recycle is not None else []
    if feasible:
        return [config.replace(**move) for move in down]
    up: list[dict] = []
    if has_pool:
        grown = pool + max(1, pool // 4)
        up.append({"pool_size": grown, "pool_max_size": grown})
    up.append({"max_concurrent_isolated": isolated + max(1, isolated // 4)})
    up.append({"max_concurrent_inline": inline * 2})
    moves = up + down
    return [config.replace(**move) for move in moves]


def _recycle_mb(config: Config, trace: TraceProfile, problem: Problem) -> float | None:
    """A recycling limit that drops a pool process after an unusually large job, or ``None``.

    Pool processes keep the high-water mark of their jobs; when the pool band's largest jobs
    are much bigger than its average, recycling above twice the average memory frees it.
    """
    host = problem.host
    stretch = cpu_stretch(trace, host)
    split = make_split(trace, host, stretch if math.isfinite(stretch) else 1.0,
                       config.inline_max_duration_s, config.pooled_max_duration_s)  # fmt: skip
    band = split.pool
    if not band.rate_per_s or band.high_memory_mb < 2 * band.mean_memory_mb:
        return None
    limit = float(math.ceil(host.pool_process_mb + 2 * band.mean_memory_mb))
    return limit if limit < config.max_worker_memory_mb else None


def up_moves(config: Config) -> list[Config]:
    """Configs with more capacity only: for a share that fails where host 1's passed."""
    pool, isolated, inline = (config.pool_max_size, config.max_concurrent_isolated,
                              config.max_concurrent_inline)  # fmt: skip
    grow = {"max_concurrent_isolated": isolated + max(1, isolated // 4),
            "max_concurrent_inline": inline * 2}  # fmt: skip
    if config.pool_size > 0:
        bigger = pool + max(1, pool // 4)
        grow |= {"pool_size": bigger, "pool_max_size": bigger}
    moves = [config.replace(**{k: v}) for k, v in grow.items() if not k.startswith("pool_")]
    if config.pool_size > 0:
        moves.append(config.replace(pool_size=grow["pool_size"], pool_max_size=grow["pool_size"]))
    moves.append(config.replace(**grow))
    return list(dict.fromkeys(moves))
