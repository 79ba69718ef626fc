"""Workloads: a synthetic trace generator and the helpers that reshape a recorded trace.

``synth`` draws Poisson arrivals and, per job, a class from a mix (the prototype's 70% fast /
25% medium / 5% heavy by default) and its duration, CPU time and memory from that class's
distributions, with a seeded ``numpy.random.Generator`` (never the global one).
``rescale_to_rate`` / ``speed_up`` stretch a trace's arrival times ("what if we had 1000
jobs/min"), ``fit_to_duration`` cuts or repeats a trace to a horizon. ``parse_rate`` and
``parse_duration`` read the CLI's ``1000/min`` and ``1h``.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from kqueue.errors import ConfigError


@dataclass(frozen=True)
class JobClass:
    """One kind of job in a synthetic mix. Durations and memory are lognormal.

    ``sigma`` is the standard deviation of the log (0 = every job the same); the median is
    ``exp(mu)``. CPU time is ``cpu_fraction`` of the duration.
    """

    name: str
    #: Fraction of all jobs (the mix's shares are normalised to sum to 1).
    share: float
    duration_median_s: float
    duration_sigma: float = 0.5
    cpu_fraction: float = 0.5
    memory_median_mb: float = 50.0
    memory_sigma: float = 0.3


#: The prototype's mix: 70% fast (inline), 25% medium (pool), 5% heavy (isolated).
PROTOTYPE_MIX: tuple[JobClass, ...] = (
    JobClass("fast", 0.70, duration_median_s=0.1, duration_sigma=0.8, cpu_fraction=0.2,
             memory_median_mb=10.0, memory_sigma=0.5),
    JobClass("medium", 0.25, duration_median_s=4.0, duration_sigma=0.5, cpu_fraction=0.6,
             memory_median_mb=150.0, memory_sigma=0.4),
    JobClass("heavy", 0.05, duration_median_s=45.0, duration_sigma=0.3, cpu_fraction=0.7,
             memory_median_mb=400.0, memory_sigma=0.3),
)  # fmt: skip


def synth(
    jobs: int,
    rate_per_s: float,
    *,
    mix: Sequence[JobClass] = PROTOTYPE_MIX,
    seed: int = 0,
    queue: str = "default",
) -> pd.DataFrame:
    """Draw a synthetic trace: Poisson arrivals at ``rate_per_s``, classes and sizes from ``mix``.

    Args:
        jobs: number of rows.
        rate_per_s: mean arrivals per second.
        mix: the job classes and their shares.
        seed: seeds a private ``numpy.random.Generator``; same seed, same trace.
        queue: the ``queue`` column's value.

    Returns:
        A DataFrame with ``job_id, queue, job_class, submitted_at, duration_s, cpu_s, memory_mb``.

    Raises:
        ValueError: ``jobs < 1``, ``rate_per_s <= 0`` or an empty mix.
    """
    if jobs < 1 or rate_per_s <= 0 or not mix:
        raise ValueError("synth needs jobs >= 1, rate_per_s > 0 and at least one job class")
    rng = np.random.default_rng(seed)
    shares = np.array([c.share for c in mix], float)
    kind = rng.choice(len(mix), size=jobs, p=shares / shares.sum())
    submitted = np.cumsum(rng.exponential(1.0 / rate_per_s, size=jobs))
    submitted -= submitted[0]

    def lognormal(medians: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
        return medians[kind] * np.exp(sigmas[kind] * rng.standard_normal(jobs))

    column = {f.name: np.array([getattr(c, f.name) for c in mix]) for f in fields(JobClass)}
    duration = lognormal(column["duration_median_s"], column["duration_sigma"])
    memory = lognormal(column["memory_median_mb"], column["memory_sigma"])
    return pd.DataFrame(
        {
            "job_id": np.char.add("j", np.arange(jobs).astype(str)),
            "queue": queue,
            "job_class": column["name"][kind],
            "submitted_at": submitted,
            "duration_s": duration,
            "cpu_s": duration * column["cpu_fraction"][kind],
            "memory_mb": memory,
        }
    )


def load_mix(path: str | Path) -> tuple[JobClass, ...]:
    """Read job classes from a TOML file of ``[[classes]]`` tables (``JobClass`` field names).

    Raises:
        ConfigError: unreadable file, no classes, an unknown key (naming it and the valid
            keys) or a bad value.
    """
    try:
        with Path(path).open("rb") as file:
            tables = tomllib.load(file).get("classes", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the job classes: {exc}") from None
    valid = [f.name for f in fields(JobClass)]
    if not tables:
        raise ConfigError(f"{path}: no [[classes]] tables; each needs {', '.join(valid[:3])}")
    mix = []
    for number, table in enumerate(tables, start=1):
        unknown = [key for key in table if key not in valid]
        if unknown:
            raise ConfigError(
                f"{path}: class {number}: unknown key {unknown[0]!r}; "
                f"valid keys are: {', '.join(valid)}"
            )
        try:
            mix.append(JobClass(**table))
        except TypeError as exc:
            raise ConfigError(f"{path}: class {number}: {exc}") from None
    return tuple(mix)


def arrival_rate_per_s(trace: pd.DataFrame) -> float:
    """The trace's mean arrival rate: (rows - 1) / (last - first ``submitted_at``)."""
    submitted = trace["submitted_at"].to_numpy(float)
    span = float(submitted.max() - submitted.min())
    return (len(submitted) - 1) / span if span > 0 else float("inf")


def speed_up(trace: pd.DataFrame, factor: float) -> pd.DataFrame:
    """Compress arrival times by ``factor`` (2 = twice the rate) around the first arrival."""
    if not factor > 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    trace = trace.copy()
    origin = trace["submitted_at"].min()
    trace["submitted_at"] = origin + (trace["submitted_at"] - origin) / factor
    return trace


def rescale_to_rate(trace: pd.DataFrame, rate_per_s: float) -> pd.DataFrame:
    """Stretch or compress arrival times so the trace's mean rate is ``rate_per_s``.

    Durations, CPU and memory are unchanged: "what if these jobs came 1000 a minute".
    """
    current = arrival_rate_per_s(trace)
    if current == float("inf"):
        raise ValueError("cannot rescale a trace whose jobs all arrive at one instant")
    return speed_up(trace, rate_per_s / current)


def fit_to_duration(trace: pd.DataFrame, duration_s: float) -> pd.DataFrame:
    """Keep the arrivals of the first ``duration_s`` seconds, repeating the trace if it is shorter.

    A repeat starts one mean inter-arrival gap after the previous copy's last arrival; its
    ``job_id`` values get a ``~k`` suffix so they stay unique.
    """
    submitted = trace["submitted_at"].to_numpy(float)
    origin, span = float(submitted.min()), float(submitted.max() - submitted.min())
    period = span + (span / (len(submitted) - 1) if len(submitted) > 1 and span > 0 else 1.0)
    copies = []
    for k in range(int(duration_s // period) + 1):
        copy = trace.copy()
        copy["submitted_at"] = submitted + k * period
        if k and "job_id" in copy.columns:
            copy["job_id"] = copy["job_id"].astype(str) + f"~{k}"
        copies.append(copy)
    joined = pd.concat(copies, ignore_index=True) if len(copies) > 1 else copies[0]
    keep = joined["submitted_at"].to_numpy(float) - origin < duration_s
    return joined.loc[keep].reset_index(drop=True)
