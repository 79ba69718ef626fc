"""Queueing theory the simulator is checked against, and the scenarios that check it.

With every host constant zero (``HostProfile.ideal()``) and every job routed to a fixed pool of
``c`` processes, the model is a textbook FIFO queue with ``c`` servers:

- M/M/c (Poisson arrivals, exponential service): Erlang C gives the probability that a job waits
  and its mean wait.
- M/D/1 (Poisson arrivals, constant service): Pollaczek-Khinchine gives the mean wait
  ``rho * S / (2 * (1 - rho))``; a job waits with probability ``rho``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from kqueue.policy import Config


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arriving job waits in M/M/c (Erlang C).

    Args:
        servers: ``c``, the number of servers.
        offered_load: ``a = lambda / mu`` in Erlangs; must be below ``servers``.

    Raises:
        ValueError: ``offered_load >= servers`` (the queue is unstable).
    """
    if not 0 <= offered_load < servers:
        raise ValueError(f"Erlang C needs 0 <= load < c, got load {offered_load}, c={servers}")
    term, below = 1.0, 1.0  # a**k / k! for k = 0, and the running sum over k < c
    for k in range(1, servers):
        term *= offered_load / k
        below += term
    top = term * offered_load / servers * servers / (servers - offered_load)
    return top / (below + top)


def mmc_mean_wait_s(servers: int, arrival_rate_per_s: float, mean_service_s: float) -> float:
    """Mean wait in queue of M/M/c: ``C(c, a) / (c * mu - lambda)``."""
    load = arrival_rate_per_s * mean_service_s
    return erlang_c(servers, load) * mean_service_s / (servers - load)


def md1_mean_wait_s(arrival_rate_per_s: float, service_s: float) -> float:
    """Mean wait in queue of M/D/1 (Pollaczek-Khinchine): ``rho * S / (2 * (1 - rho))``."""
    rho = arrival_rate_per_s * service_s
    if not 0 <= rho < 1:
        raise ValueError(f"M/D/1 needs utilisation below 1, got {rho}")
    return rho * service_s / (2 * (1 - rho))


def poisson_trace(
    jobs: int,
    arrival_rate_per_s: float,
    mean_service_s: float,
    *,
    deterministic: bool = False,
    exact_means: bool = True,
    seed: int = 0,
) -> pd.DataFrame:
    """A trace of Poisson arrivals with exponential (or constant) durations and no CPU work.

    ``cpu_s`` is 0 so processor sharing plays no part; ``memory_mb`` is 0. With ``exact_means``
    the drawn gaps and durations are scaled so their sample means are exactly ``1 / rate`` and
    ``mean_service_s`` (moment matching): the realised load is then exactly the one asked for,
    which removes the largest part of the sampling noise of the mean wait near saturation.
    """
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / arrival_rate_per_s, size=jobs)
    if deterministic:
        duration = np.full(jobs, float(mean_service_s))
    else:
        duration = rng.exponential(mean_service_s, size=jobs)
    if exact_means:
        gaps *= 1.0 / arrival_rate_per_s / gaps.mean()
        duration *= mean_service_s / duration.mean()
    submitted = np.cumsum(gaps)
    return pd.DataFrame(
        {
            "submitted_at": submitted,
            "job_class": "job",
            "duration_s": duration,
            "cpu_s": 0.0,
            "memory_mb": 0.0,
        }
    )


def pool_only_config(servers: int) -> Config:
    """A config that routes every job to a fixed pool of ``servers`` processes, never recycled."""
    return Config(
        inline_max_duration_s=0.0,
        pooled_max_duration_s=math.inf,
        pool_size=servers,
        pool_max_size=servers,
        max_jobs_per_worker=2**62,
        max_worker_memory_mb=math.inf,
    )
