"""Service-level objectives for the tuner: ``tier.metric=value`` and how far a run is from them.

``inline.p95_wait=1s`` means "95% of the inline jobs wait at most 1 s"; ``all.throughput=1000/min``
means "at least 1000 jobs a minute finish overall". Which jobs are "the inline jobs" is fixed
before the search, by the *base* config's routing of each job class (``job_groups``): the fast
jobs stay the fast jobs whatever thresholds a candidate uses. Judging a candidate by the tier it
routes jobs to would let the search game the SLOs (route the fast jobs to the isolated tier and
they are held to the isolated tier's minute).

The *margin* of an SLO in a run is the room left relative to the target: ``(target - value) /
target`` for upper bounds (waits, latencies), ``(value - target) / target`` for lower bounds
(throughput), capped at 1. Negative means missed. An SLO on a group with no jobs checked
nothing: its margin is ``None`` ("no jobs (not checked)"), never a met target.

The default rule (``parse_slos``): the defaults (``DEFAULT_SLOS``) always bind; an ``--slo`` adds
an objective or replaces the default of the same ``tier.metric``; ``--no-default-slos`` keeps
only the named ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from kqueue.errors import ConfigError
from kqueue.policy import Config, JobOptions, resolve_job, route
from kqueue.policy.units import parse_duration, parse_rate
from sim.model.jobs import TIER_CODE, TIER_NAMES
from sim.model.report import SimResult, throughput_per_min
from sim.tune.slo_rule import DEFAULT_RULE  # noqa: F401 (stated here and in --help)

#: Tiers an SLO may name; ``all`` is every job together.
TIERS = (*TIER_NAMES, "all")
#: The group of jobs held by a fixed shared limit: in no tier's SLO, nor in ``all``'s.
LIMITED = -1
#: Metric name -> (``TierStats`` field, kind). ``upper`` metrics are durations, at most the
#: target; ``lower`` ones are rates, at least the target.
METRICS = {
    "mean_wait": ("mean_wait_s", "upper"),
    "p50_wait": ("p50_wait_s", "upper"),
    "p95_wait": ("p95_wait_s", "upper"),
    "p99_wait": ("p99_wait_s", "upper"),
    "max_wait": ("max_wait_s", "upper"),
    "p50_latency": ("p50_latency_s", "upper"),
    "p95_latency": ("p95_latency_s", "upper"),
    "p99_latency": ("p99_latency_s", "upper"),
    "throughput": ("throughput_per_min", "lower"),
}
#: Margins are capped here, so a target met with a value of 0 does not dominate.
MAX_MARGIN = 1.0


@dataclass(frozen=True)
class Slo:
    """One objective: ``metric`` of ``tier`` at most (or, for throughput, at least) ``target``.

    ``target`` is in seconds for waits and latencies, in jobs per minute for throughput.
    """

    tier: str
    metric: str
    target: float

    @property
    def name(self) -> str:
        """``tier.metric``, as the operator wrote it."""
        return f"{self.tier}.{self.metric}"

    @property
    def upper(self) -> bool:
        """True when the value must stay at or below the target."""
        return METRICS[self.metric][1] == "upper"

    def describe(self) -> str:
        """``pool.p95_wait <= 10 s`` or ``all.throughput >= 1000/min``."""
        if self.upper:
            return f"{self.name} <= {self.target:g} s"
        return f"{self.name} >= {self.target:g}/min"

    def value(self, stats: dict[str, dict[str, float | None]]) -> float | None:
        """This metric of ``group_stats`` (``None`` when the group ran no job)."""
        return stats[self.tier][METRICS[self.metric][0]]

    def margin(self, value: float | None) -> float | None:
        """Room left relative to the target (negative = missed), at most ``MAX_MARGIN``;
        ``None`` when the group ran no job (nothing was checked)."""
        if value is None:
            return None
        if self.target == 0:
            return MAX_MARGIN if value <= 0 else -1.0
        room = (self.target - value) if self.upper else (value - self.target)
        return min(MAX_MARGIN, room / self.target)


#: Stated in every report when the operator gives no ``--slo``: a fast job should start within
#: a second, a pooled one within ten, an isolated (long) one within a minute.
DEFAULT_SLOS: tuple[Slo, ...] = (
    Slo("inline", "p95_wait", 1.0),
    Slo("pool", "p95_wait", 10.0),
    Slo("isolated", "p95_wait", 60.0),
)


def parse_slo(text: str) -> Slo:
    """Read ``tier.metric=value``, e.g. ``pool.p95_wait=10s`` or ``all.throughput=1000/min``.

    Raises:
        ConfigError: not of that form, an unknown tier or metric (listing the valid ones), or
            a value that is not a duration (waits, latencies) or a rate (throughput).
    """
    name, sep, value = text.partition("=")
    tier, dot, metric = name.strip().partition(".")
    if not sep or not dot:
        raise ConfigError(f"--slo {text!r}: expected tier.metric=value, e.g. pool.p95_wait=10s")
    if tier not in TIERS:
        raise ConfigError(f"--slo {text!r}: unknown tier {tier!r}; valid tiers: {', '.join(TIERS)}")
    if metric not in METRICS:
        raise ConfigError(
            f"--slo {text!r}: unknown metric {metric!r}; valid metrics: {', '.join(METRICS)}"
        )
    try:
        if METRICS[metric][1] == "upper":
            target = 0.0 if value.strip() in ("0", "0s") else parse_duration(value)
        else:
            target = round(parse_rate(value) * 60.0, 9)
    except ValueError as exc:
        raise ConfigError(f"--slo {text!r}: {exc}") from None
    return Slo(tier, metric, target)


def parse_slos(texts: Iterable[str] | None, *, defaults: bool = True) -> tuple[Slo, ...]:
    """Parse every ``--slo`` over the defaults (unless ``defaults`` is false): a named
    ``tier.metric`` replaces its default, the other defaults still bind; a repeated name: the
    last wins."""
    given = {slo.name: slo for slo in (DEFAULT_SLOS if defaults else ())}
    given.update({slo.name: slo for slo in map(parse_slo, texts or ())})
    return tuple(given.values())


def empty_groups(slos: Iterable[Slo], groups: np.ndarray) -> list[str]:
    """The SLO groups (tier names) that some SLO names but that hold no job."""
    codes = [code for code in np.unique(groups) if code >= 0]
    present = {TIER_NAMES[code] for code in codes} | {"all"} if codes else set()
    return sorted({slo.tier for slo in slos} - present)


def limited_classes(base: Config) -> frozenset[str]:
    """The classes ``base`` gives a shared limit (left out of the tier SLO groups)."""
    return frozenset(
        name
        for name, options in base.jobs.items()
        if options.rate_limit is not None or options.concurrency_limit is not None
    )


def job_groups(job_class: list[str], duration_s: list[float], base: Config) -> np.ndarray:
    """Each job's SLO group (a tier code, ``jobs.TIERS``): where ``base`` routes its class.

    A class's estimate is the ``estimate_quantile`` of its durations, what the runtime's history
    settles on; a class's explicit tier or estimate in ``base``'s job tables wins, as in routing.
    A class with a fixed shared limit (``rate_limit``, ``concurrency_limit``) is in no group
    (``LIMITED``): its waits are its limit's whatever the plan (``sim.tune.fleet_limits``).
    """
    names = np.asarray(job_class, dtype=object)
    duration = np.asarray(duration_s, float)
    groups = np.zeros(len(names), np.int8)
    limited = limited_classes(base)
    for name in sorted(set(job_class)):
        mask = names == name
        if name in limited:
            groups[mask] = LIMITED
            continue
        settings = resolve_job(base, name, JobOptions())
        estimate = settings.estimated_duration_s
        if estimate is None:
            estimate = float(np.quantile(duration[mask], base.estimate_quantile))
        groups[mask] = TIER_CODE[route(settings.tier, estimate, base)]
    return groups


def group_stats(result: SimResult, groups: np.ndarray) -> dict[str, dict[str, float | None]]:
    """Every SLO metric (``TierStats`` field names) of each group of jobs and of ``all``."""
    o = result.outcome
    stats = {}
    for code, name in enumerate((*TIER_NAMES, "all")):
        mask = groups == code if name != "all" else groups != LIMITED
        done = mask & np.isfinite(o.finished_s)
        wait = o.started_s[done] - o.submitted_s[done]
        latency = o.finished_s[done] - o.submitted_s[done]
        found: dict[str, float | None] = {"throughput_per_min": throughput_per_min(o, mask)}
        for label, values in (("wait", wait), ("latency", latency)):
            points = np.percentile(values, [50, 95, 99]) if len(values) else [None] * 3
            for q, point in zip((50, 95, 99), points, strict=True):
                found[f"p{q}_{label}_s"] = None if point is None else float(point)
        found["mean_wait_s"] = float(wait.mean()) if len(wait) else None
        found["max_wait_s"] = float(wait.max()) if len(wait) else None
        if not mask.any():
            found = dict.fromkeys(found)
        stats[name] = found
    return stats


def margins(result: SimResult, slos: Iterable[Slo], groups: np.ndarray) -> dict[str, float | None]:
    """Each SLO's margin in ``result``, by name (``groups`` from ``job_groups``; ``None`` for
    an SLO whose group ran no job)."""
    stats = group_stats(result, groups)
    return {slo.name: slo.margin(slo.value(stats)) for slo in slos}
