"""The worker: the loop and its parts.

``loop`` (the ``Worker``: lease, dispatch, settle, maintain, idle), ``held`` (the types of a job the
worker holds and of a run's counts), ``intake`` (how leased jobs get in: how many, which tier, what
goes back), ``recorder`` (what a finished job leaves: history, trace, metrics, status), ``rates``,
``metrics`` (Prometheus) and ``allocator`` (the malloc arena limit ``kqueue run`` sets).
"""

from kqueue.worker.held import Pending, WorkerSummary
from kqueue.worker.loop import DRAIN_SIGNAL, Worker

__all__ = ["DRAIN_SIGNAL", "Pending", "Worker", "WorkerSummary"]
