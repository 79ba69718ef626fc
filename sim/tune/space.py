"""The tuner's search space and its cheap bounds: pure functions of a trace's per-class numbers.

A trace is summarised per job class (``profile``): its arrival rate, the estimate the runtime
would make of it (the ``estimate_quantile`` of its durations), its mean duration, CPU and memory.
Routing depends only on where the thresholds fall among the classes' estimates, so a threshold
pair is a *band split*: classes sorted by estimate, the first ``i`` inline, the next up to ``j``
pooled, the rest isolated; each threshold sits at the geometric middle of the gap it cuts, so a
contended class (its measured durations stretched) does not cross it at the first slowdown.

Bounds (no simulation): the host's cores must exceed the offered CPU (else no config is stable
on one host), inline CPU must stay under one core (the GIL), and the mean memory of a split
(Little's law) must fit the budget. Pool and isolated capacities start from Erlang C: the least
``c`` with ``P(wait > target) <= 1 - q`` in M/M/c, with durations stretched by the expected
processor sharing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kqueue.policy import Config, HostProfile
from kqueue.policy.fork import standing_mb
from sim.model.jobs import TraceJobs
from sim.tune.slo import Slo

#: Stability needs utilisation below 1; bounds use this ceiling for the host's cores.
MAX_CPU_UTILISATION = 0.95
#: The worker's GIL runs all inline jobs' CPU work: at most one core.
GIL_CORES = 1.0
#: Longest class estimate the tuner will route inline (the design's "fast jobs, <= 1 s"), unless
#: the base config already allows longer: a long job inline holds the worker's thread pool, cannot
#: be timed out when it is synchronous, and takes the worker down with it if it crashes.
INLINE_SAFE_MAX_S = 1.0
#: The top threshold (everything pooled or inline) sits this far above the largest estimate.
TOP_THRESHOLD_FACTOR = 10.0


@dataclass(frozen=True)
class ClassProfile:
    """One job class of a trace: rates in jobs/s, times in s, memory in MB."""

    name: str
    jobs: int
    rate_per_s: float
    estimate_s: float
    mean_duration_s: float
    mean_cpu_s: float
    mean_memory_mb: float
    high_memory_mb: float


@dataclass(frozen=True)
class TraceProfile:
    """A trace's classes sorted by estimate, its span, and its offered CPU in cores."""

    classes: tuple[ClassProfile, ...]
    jobs: int
    span_s: float
    cpu_load_cores: float
    #: The ``estimate_quantile`` of all durations: the tuner's ``default_estimate_s``.
    overall_estimate_s: float


@dataclass(frozen=True)
class Band:
    """The jobs of one tier under a split: offered slot load (Erlangs), CPU (cores), memory."""

    rate_per_s: float
    slot_load: float
    cpu_load: float
    mean_service_s: float
    mean_memory_mb: float
    high_memory_mb: float
    longest_estimate_s: float
    #: Job memory in use on average (Little's law per class: rate x service x memory), MB. Not
    #: ``slot_load x mean_memory_mb``: that weights memory by arrivals, and the long jobs are
    #: the big ones.
    memory_in_use_mb: float = 0.0


@dataclass(frozen=True)
class Split:
    """A threshold pair and the three bands it makes."""

    inline_max_duration_s: float
    pooled_max_duration_s: float
    inline: Band
    pool: Band
    isolated: Band


def profile(prepared: TraceJobs, config: Config) -> TraceProfile:
    """Per-class numbers of a prepared trace (CPU capped at the duration, as the model does)."""
    jobs = prepared.jobs
    duration = np.asarray(jobs.duration_s, float)
    cpu = np.minimum(np.asarray(jobs.cpu_s, float), duration)
    memory = np.asarray(jobs.memory_mb, float)
    names = np.asarray(jobs.job_class, dtype=object)
    submitted = np.asarray(jobs.submitted_s, float)
    span_s = max(float(submitted[-1] - submitted[0]), 1e-9)
    q = config.estimate_quantile
    classes = []
    for name in sorted(set(jobs.job_class)):
        mask = names == name
        d = duration[mask]
        classes.append(
            ClassProfile(
                name=str(name),
                jobs=int(mask.sum()),
                rate_per_s=mask.sum() / span_s,
                estimate_s=float(np.quantile(d, q)),
                mean_duration_s=float(d.mean()),
                mean_cpu_s=float(cpu[mask].mean()),
                mean_memory_mb=float(memory[mask].mean()),
                high_memory_mb=float(np.quantile(memory[mask], 0.99)),
            )
        )
    classes.sort(key=lambda c: (c.estimate_s, c.name))
    return TraceProfile(
        classes=tuple(classes),
        jobs=len(duration),
        span_s=span_s,
        cpu_load_cores=float(cpu.sum() / span_s),
        overall_estimate_s=float(np.quantile(duration, q)),
    )


def cpu_stretch(trace: TraceProfile, host: HostProfile) -> float:
    """Expected slowdown of CPU work from processor sharing (M/M/c response over service)."""
    if host.cores == 0:
        return 1.0
    load = trace.cpu_load_cores
    if load >= host.cores:
        return math.inf
    wait = erlang_c_series(load, host.cores)[-1] / (host.cores - load)
    return 1.0 + wait


def erlang_c_series(load: float, up_to: int) -> list[float]:
    """Erlang C ``C(c, load)`` for ``c = 1 .. up_to`` (1.0 where ``c <= load``), in O(up_to)."""
    return list(erlang_c_values(load, up_to))


def erlang_c_values(load: float, up_to: int) -> Iterator[float]:
    """``erlang_c_series`` one value at a time, so a search for the least ``c`` stops there
    (the tuner sizes every band of hundreds of splits; the whole series to ``MAX_SLOTS`` for
    each was most of its own CPU time on a 31-class trace).

    Uses the Erlang B recursion ``B(c) = a B(c-1) / (c + a B(c-1))`` and
    ``C = c B / (c - a (1 - B))``, which stays stable for large ``c``.
    """
    b = 1.0
    for c in range(1, up_to + 1):
        b = load * b / (c + load * b)
        yield 1.0 if c <= load else c * b / (c - load * (1 - b))


def servers_for(band: Band, wait_target_s: float, quantile: float, limit: int) -> int:
    """Least ``c`` (at most ``limit``) with M/M/c ``P(wait > target) <= 1 - quantile``."""
    if band.rate_per_s == 0:
        return 1
    a, s = band.slot_load, band.mean_service_s
    for c, erlang in enumerate(erlang_c_values(a, limit), start=1):
        if c > a and erlang * math.exp(-(c - a) * wait_target_s / s) <= 1 - quantile:
            return c
    return limit


def splits(
    trace: TraceProfile, host: HostProfile, stretch: float, inline_cap_s: float = INLINE_SAFE_MAX_S
) -> list[Split]:
    """Every distinct band split of the classes whose inline classes are estimated at most
    ``inline_cap_s`` and whose inline CPU fits under the GIL."""
    estimates = [c.estimate_s for c in trace.classes]
    cuts = [threshold_between(estimates, m) for m in range(len(estimates) + 1)]
    seen, found = set(), []
    for i in range(len(cuts)):
        for j in range(i, len(cuts)):
            key = (cuts[i], cuts[j])
            if key in seen:
                continue
            seen.add(key)
            split = make_split(trace, host, stretch, cuts[i], cuts[j])
            if split.inline.longest_estimate_s > inline_cap_s:
                continue
            if split.inline.cpu_load < GIL_CORES * MAX_CPU_UTILISATION:
                found.append(split)
    return found


def threshold_between(estimates: list[float], m: int) -> float:
    """A threshold with the first ``m`` estimates at or below it and the rest above it."""
    if m == 0:
        return 0.0
    if m == len(estimates):
        return _nice(estimates[-1] * TOP_THRESHOLD_FACTOR, estimates[-1], math.inf)
    low, high = estimates[m - 1], estimates[m]
    if low == high:
        return low
    middle = math.sqrt(low * high) if low > 0 else high / 2
    return _nice(middle, low, high)


def _nice(value: float, low: float, high: float) -> float:
    """``value`` rounded to two significant digits when that keeps it within ``[low, high)``."""
    if value <= 0:
        return value
    rounded = float(f"{value:.2g}")
    return rounded if low <= rounded < high else value


def make_split(
    trace: TraceProfile, host: HostProfile, stretch: float, inline_s: float, pooled_s: float
) -> Split:
    """The bands that thresholds ``inline_s`` / ``pooled_s`` make of the classes."""
    groups: tuple[list, list, list] = ([], [], [])
    for c in trace.classes:
        groups[0 if c.estimate_s <= inline_s else 1 if c.estimate_s <= pooled_s else 2].append(c)
    overheads = (
        host.inline_dispatch_s,
        host.pool_dispatch_s,
        host.spawn_s + host.isolated_dispatch_s,
    )
    inline, pool, isolated = (
        _band(group, overhead, stretch if k else 1.0)
        for k, (group, overhead) in enumerate(zip(groups, overheads, strict=True))
    )
    return Split(inline_s, pooled_s, inline, pool, isolated)


def _band(group: list[ClassProfile], overhead_s: float, stretch: float) -> Band:
    rate = sum(c.rate_per_s for c in group)
    if rate == 0:
        return Band(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    stretch = min(stretch, 10.0)
    service = [
        overhead_s + c.mean_duration_s - c.mean_cpu_s + c.mean_cpu_s * stretch for c in group
    ]
    slot_load = sum(c.rate_per_s * s for c, s in zip(group, service, strict=True))
    return Band(
        rate_per_s=rate,
        slot_load=slot_load,
        cpu_load=sum(c.rate_per_s * c.mean_cpu_s for c in group),
        mean_service_s=slot_load / rate,
        mean_memory_mb=sum(c.rate_per_s * c.mean_memory_mb for c in group) / rate,
        high_memory_mb=max(c.high_memory_mb for c in group),
        longest_estimate_s=max(c.estimate_s for c in group),
        memory_in_use_mb=sum(
            c.rate_per_s * s * c.mean_memory_mb for c, s in zip(group, service, strict=True)
        ),
    )


def with_pool_tier(base: Config) -> Config:
    """``base`` as every tuner candidate runs it: with a pool tier (``candidates._config`` gives
    each ``pool_max_size >= 1``), so its standing memory is the one such a worker has."""
    return base if base.pool_max_size > 0 else base.replace(pool_max_size=1)


def memory_floor_mb(split: Split, host: HostProfile, config: Config, pool_size: int = 0) -> float:
    """A lower bound on peak memory: the mean memory in use (Little's law), warm pool included,
    on top of the memory a worker with ``config`` holds before any job (its zygote counted by
    the runtime's rule, ``kqueue.policy.fork.standing_mb``)."""
    pool_processes = max(pool_size, split.pool.slot_load)
    return (
        standing_mb(host, config)
        + split.inline.memory_in_use_mb
        + pool_processes * host.pool_process_mb
        + split.pool.memory_in_use_mb
        + split.isolated.slot_load * host.isolated_process_mb
        + split.isolated.memory_in_use_mb
    )


def memory_guess_mb(
    split: Split, host: HostProfile, config: Config, pool: int, isolated: int
) -> float:
    """A rough peak for ranking splits: full pool at its high-water mark, isolated at its limit,
    on top of ``config``'s standing memory (see ``memory_floor_mb``)."""
    busy_isolated = min(isolated, split.isolated.slot_load * 1.5 + 1) if isolated else 0
    return (
        standing_mb(host, config)
        + split.inline.slot_load * split.inline.mean_memory_mb
        + (
            pool * (host.pool_process_mb + split.pool.high_memory_mb)
            if split.pool.rate_per_s
            else 0
        )
        + busy_isolated * (host.isolated_process_mb + _per_busy_slot_mb(split.isolated))
    )


def _per_busy_slot_mb(band: Band) -> float:
    """The job memory of one busy slot of ``band`` on average (load-weighted), MB."""
    return band.memory_in_use_mb / band.slot_load if band.slot_load else 0.0


def wait_target(slos: tuple[Slo, ...], tier: str, band: Band) -> tuple[float, float]:
    """(wait target s, quantile) for sizing ``tier``: its tightest wait or latency SLO.

    A latency SLO becomes a wait target by subtracting the band's longest estimate. With no SLO
    on the tier, size for a p95 wait of one mean service time.
    """
    best = (band.mean_service_s, 0.95)
    for slo in slos:
        if slo.tier not in (tier, "all") or not slo.upper or slo.metric == "max_wait":
            continue
        quantile = 0.5 if slo.metric == "mean_wait" else float(slo.metric[1:3]) / 100
        target = slo.target
        if "latency" in slo.metric:
            target = max(0.0, target - band.longest_estimate_s)
        if target < best[0] or (target == best[0] and quantile > best[1]):
            best = (target, quantile)
    return best
