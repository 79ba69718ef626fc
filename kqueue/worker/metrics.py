"""Prometheus metrics for operators: ``kqueue run --metrics-port N``.

Per-job counters and histograms are updated as jobs finish. Everything about the worker's state
(tiers, pool processes, queue depth) is read at scrape time from the last status snapshot the
worker published, by a custom collector, so the worker keeps one source of truth for both
``kqueue pool`` and Prometheus. Each worker has its own registry: no global state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kqueue.errors import KQueueError

DURATION_BUCKETS_S = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


def _prometheus():
    try:
        import prometheus_client
    except ImportError:
        raise KQueueError(
            "--metrics-port needs prometheus_client; run pip install 'kqueue[metrics]'"
        ) from None
    return prometheus_client


class WorkerMetrics:
    """The metrics of one worker, served over HTTP by ``serve``.

    Args:
        snapshot: returns the worker's latest status dict (as published for ``kqueue pool``)
            and queue depths ``{queue: {state: count}}``.
    """

    def __init__(self, snapshot: Callable[[], tuple[dict[str, Any], dict[str, dict[str, int]]]]):
        prometheus = _prometheus()
        self.registry = prometheus.CollectorRegistry(auto_describe=True)
        self.jobs = prometheus.Counter(
            "kqueue_jobs",
            "Finished job attempts.",
            ["tier", "job_class", "status"],
            registry=self.registry,
        )
        self.duration = prometheus.Histogram(
            "kqueue_job_duration_seconds",
            "Wall time of job attempts.",
            ["tier", "job_class"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.wait = prometheus.Histogram(
            "kqueue_job_wait_seconds",
            "Time from dispatch to start.",
            ["tier"],
            buckets=DURATION_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_StatusCollector(snapshot, prometheus))
        self._server = None

    def observe(
        self, tier: str, job_class: str, status: str, duration_s: float, wait_s: float
    ) -> None:
        """Count one finished attempt."""
        self.jobs.labels(tier, job_class, status).inc()
        self.duration.labels(tier, job_class).observe(duration_s)
        self.wait.labels(tier).observe(wait_s)

    def serve(self, port: int, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread; returns the bound port."""
        server, _ = _prometheus().start_http_server(port, addr=addr, registry=self.registry)
        self._server = server
        return server.server_port

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def render(self) -> str:
        """The metrics in Prometheus text format (what a scrape returns)."""
        return _prometheus().generate_latest(self.registry).decode()


class _StatusCollector:
    """Turns the worker's status snapshot into gauges at scrape time."""

    def __init__(self, snapshot, prometheus):
        self.snapshot = snapshot
        from prometheus_client import core

        self.core = core

    def collect(self):
        status, depths = self.snapshot()
        gauge = self.core.GaugeMetricFamily
        depth = gauge(
            "kqueue_queue_depth", "Messages per queue and state.", labels=["queue", "state"]
        )
        for queue, states in sorted(depths.items()):
            for state, count in sorted(states.items()):
                depth.add_metric([queue, state], count)
        yield depth
        tier_gauges = {
            key: gauge(
                f"kqueue_tier_{key}", f"Tier {key} (from the worker's status).", labels=["tier"]
            )
            for key in ("running", "waiting", "capacity", "size", "busy")
        }
        tier_gauges.update(
            {
                key: self.core.CounterMetricFamily(
                    f"kqueue_tier_{key}",
                    f"Processes {key} since the worker started.",
                    labels=["tier"],
                )
                for key in ("spawns", "recycles")
            }
        )
        processes = gauge(
            "kqueue_process_memory_mb",
            "Resident memory of each child process.",
            labels=["tier", "pid", "state"],
        )
        for tier, info in sorted(status.get("tiers", {}).items()):
            for key, family in tier_gauges.items():
                if isinstance(info.get(key), int | float):
                    family.add_metric([tier], info[key])
            for process in info.get("processes", []):
                memory = process.get("memory_mb")
                if isinstance(memory, int | float):
                    processes.add_metric(
                        [tier, str(process.get("pid")), str(process.get("state", ""))], memory
                    )
        yield from tier_gauges.values()
        yield processes
