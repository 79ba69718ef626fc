"""What a worker records and reports, apart from settling jobs (ack, retry, dead-letter).

The worker hands each settled job to ``Recorder.record``, which feeds the estimator's history
(shared with the other workers through the backend at most every ``DURATIONS_FLUSH_S``), the trace
CSV, the fleet trace in the backend (``trace_shipper``, off the loop), the Prometheus metrics, the
per-minute rates and the run's summary counts. ``publish_status`` writes the status document
``kqueue pool``, ``kqueue stats`` and the metrics' gauges read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import socket
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from kqueue.policy.config import Config, JobOptions
from kqueue.policy.estimator import LEARNS_FROM, DurationHistory
from kqueue.policy.trace import TraceRow, TraceWriter
from kqueue.tiers.base import Outcome
from kqueue.tiers.procs import rss_mb
from kqueue.worker.held import best_effort
from kqueue.worker.rates import RateWindow
from kqueue.worker.trace_shipper import TraceShipper

if TYPE_CHECKING:
    from kqueue.backends.base import Backend
    from kqueue.worker.held import Pending

log = logging.getLogger("kqueue.worker")

#: How long a published status stays visible without a newer one, seconds.
STATUS_TTL_S = 10.0
#: Least time between two writes of the estimator's history to the backend, seconds.
DURATIONS_FLUSH_S = 1.0
#: A queue's depths when the backend has no messages for it.
_NO_DEPTHS = ("ready", "scheduled", "leased", "dead")


class Recorder:
    """Records finished jobs and publishes the worker's status.

    Args:
        backend: where durations and the status document go.
        config: the worker's settings (``history_window``).
        history: the estimator's history, fed with the durations of finished jobs.
        worker_id: the worker's id, in its trace rows and its status.
        trace_out: CSV path to append a trace row per finished attempt to, or None.
        metrics_port: port to serve Prometheus metrics on from ``start``, or None.
        declared: each registered job's decorator options, published with the settings so
            that the dashboard's twin routes them as this worker does.
    """

    def __init__(
        self,
        backend: Backend,
        config: Config,
        history: DurationHistory,
        worker_id: str,
        *,
        trace_out: str | None = None,
        metrics_port: int | None = None,
        declared: Mapping[str, JobOptions] | None = None,
    ):
        self.backend, self.config = backend, config
        self.history, self.worker_id = history, worker_id
        #: Attempts recorded so far, in all and by status.
        self.done = 0
        self.by_status: dict[str, int] = {}
        self.metrics_port = metrics_port
        self._trace = TraceWriter(trace_out) if trace_out else None
        #: Appends rows to the fleet trace (``trace_keep_rows`` > 0), from ``start`` on.
        self._shipper: TraceShipper | None = None
        self._metrics = None
        #: The last published status and queue depths, read by the metrics at scrape time.
        self._snapshot: tuple[dict, dict] = ({}, {})
        #: Trace rows of settled attempts not yet written, as values in ``COLUMNS`` order.
        self._rows: list[tuple] = []
        self._durations: dict[str, list[float]] = {}
        self._last_durations_flush = time.monotonic()
        self._rates = RateWindow()
        self._config_toml = twin_config(config, declared or {}).to_toml()

    def start(self) -> None:
        """Serve the metrics (with ``metrics_port``) and load the shared estimator history."""
        self._start_metrics()
        self._load_history()
        if self.config.trace_keep_rows > 0:
            self._shipper = TraceShipper(self.backend, self.config.trace_keep_rows)

    def _start_metrics(self) -> None:
        if self.metrics_port is None:
            return
        from kqueue.worker.metrics import WorkerMetrics

        self._metrics = WorkerMetrics(lambda: self._snapshot)
        port = self._metrics.serve(self.metrics_port)
        log.info("metrics on http://127.0.0.1:%d/metrics", port)

    def _load_history(self) -> None:
        """Seed the estimator with the durations every worker on this backend recorded.

        The history is advice: with the backend down at start, the worker starts without it
        (and its loop backs off until the backend is back) rather than exiting.
        """
        history = best_effort(
            "load the estimator's history (starting without)",
            self.backend.load_durations,
            self.config.history_window,
        )
        for job_class, durations in (history or {}).items():
            for duration_s in durations:
                self.history.record(job_class, duration_s)

    def record(self, pending: Pending, outcome: Outcome) -> None:
        """Record one settled attempt: history, counts, rates, trace row and metrics."""
        name = pending.invocation.job.name
        if outcome.status in LEARNS_FROM:
            self.history.record(name, outcome.duration_s)
            recent = self._durations.setdefault(name, [])
            recent.append(outcome.duration_s)
            if len(recent) > 2 * self.config.history_window:  # only the newest are kept
                del recent[: -self.config.history_window]
        self.done += 1
        self._rates.add(pending.tier.value, outcome.finished_at)
        self.by_status[outcome.status.value] = self.by_status.get(outcome.status.value, 0) + 1
        if self._trace is not None or self._shipper is not None:
            self._rows.append(self._row(pending, outcome))
        if self._metrics is not None:
            wait_s = max(0.0, outcome.started_at - pending.due_at)
            self._metrics.observe(
                pending.tier.value, name, outcome.status.value, outcome.duration_s, wait_s
            )

    def _row(self, pending: Pending, outcome: Outcome) -> tuple:
        """The attempt's trace row as its values in ``COLUMNS`` order: a tuple costs a quarter
        of a frozen ``TraceRow`` (the file writer builds those; the fleet trace needs none)."""
        lease = pending.lease
        return (
            lease.job_id, lease.queue, pending.invocation.job.name, pending.tier.value,
            pending.submitted_at, outcome.started_at, outcome.finished_at,
            max(0.0, outcome.started_at - pending.due_at), outcome.duration_s, outcome.cpu_s,
            outcome.memory_mb, outcome.status.value, lease.attempt, self.worker_id,
            pending.estimate_s, pending.due_at, lease.priority,
        )  # fmt: skip

    def flush(self) -> None:
        """Share new durations (when ``DURATIONS_FLUSH_S`` has passed), then write trace rows.

        Raises:
            BackendUnavailable: the durations could not be sent; they and the rows wait a round.
        """
        self.flush_durations()
        self._flush_rows()

    def flush_durations(self, *, now: bool = False) -> None:
        """Share the estimator's new durations, at most every ``DURATIONS_FLUSH_S`` unless ``now``.

        Raises:
            BackendUnavailable: the durations stay buffered for the next flush.
        """
        if not self._durations:
            return
        if not now and time.monotonic() - self._last_durations_flush < DURATIONS_FLUSH_S:
            return
        self.backend.record_durations(self._durations, self.config.history_window)
        self._durations = {}
        self._last_durations_flush = time.monotonic()

    def _flush_rows(self) -> None:
        if self._rows:
            if self._trace is not None:
                self._trace.write_many(TraceRow(*values) for values in self._rows)
            if self._shipper is not None:
                self._shipper.put(self._rows)
            self._rows = []

    def publish_status(self, queues: tuple[str, ...], tiers: dict[str, dict[str, Any]]) -> None:
        """Publish the worker's status for ``STATUS_TTL_S``; with metrics, keep it for scrapes.

        Args:
            queues: the queues the worker serves.
            tiers: each tier's status (``runner.status()`` plus its ``waiting`` count).

        Raises:
            BackendUnavailable: the status was not published.
        """
        status = {
            "worker": self.worker_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queues": list(queues),
            "published_at": time.time(),
            "done": self.done,
            "per_minute": self._rates.per_minute(time.time()),
            "tiers": tiers,
            # for the dashboard: this process's memory, and the settings the twin should run
            "memory_mb": _rounded_mb(rss_mb(os.getpid())),
            "config_toml": self._config_toml,
        }
        self.backend.publish_status(self.worker_id, json.dumps(status).encode(), STATUS_TTL_S)
        if self._metrics is not None:
            counts = self.backend.counts()
            depths = {q: counts.get(q, dict.fromkeys(_NO_DEPTHS, 0)) for q in {*queues, *counts}}
            self._snapshot = (status, depths)

    def close(self) -> None:
        """Ship the last trace rows, close the trace file and stop serving metrics."""
        self._flush_rows()
        if self._shipper is not None:
            self._shipper.close()
        if self._trace is not None:
            self._trace.close()
        if self._metrics is not None:
            self._metrics.close()


def _rounded_mb(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 1)


def twin_config(config: Config, declared: Mapping[str, JobOptions]) -> Config:
    """``config`` with each job's declared options over its ``[jobs."<name>"]`` table.

    The twin knows a job only by name, so what its decorator says (``tier="inline"``) has to
    travel as a per-job table; precedence is kept, since a declared option wins anyway.
    """
    jobs = dict(config.jobs)
    for name, options in declared.items():
        given = {k: v for k, v in dataclasses.asdict(options).items() if v is not None}
        if given:
            jobs[name] = dataclasses.replace(config.job_options(name), **given)
    return dataclasses.replace(config, jobs=MappingProxyType(jobs))
