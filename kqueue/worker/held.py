"""The types of what a worker holds, and the one rule for a backend call that may fail.

``Pending`` is a leased job on its way through the worker (intake makes it, the loop runs and
settles it, the recorder records it); ``WorkerSummary`` is what one run did, composed at the end
from the counts each part keeps for itself. ``best_effort`` is the one place that says why a
failed backend call is safe to skip: a job this worker leased comes back when its lease expires.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kqueue.api.codec import Message
from kqueue.backends.base import Lease
from kqueue.errors import BackendUnavailable
from kqueue.policy.config import Tier
from kqueue.tiers.base import Invocation

log = logging.getLogger("kqueue.worker")

T = TypeVar("T")


@dataclass(eq=False)  # identity: a running job's key in the loop's running table
class Pending:
    """A leased job on its way through this worker."""

    lease: Lease
    invocation: Invocation
    tier: Tier
    estimate_s: float
    submitted_at: float
    #: The decoded message (its due time and its own ``result_ttl_s``).
    message: Message | None = None

    @property
    def due_at(self) -> float:
        """When the job was due: its ``due_at``, else when it was submitted (epoch s)."""
        due_at = self.message.due_at if self.message is not None else math.nan
        return self.submitted_at if math.isnan(due_at) else due_at

    @property
    def result_ttl_s(self) -> float:
        """How long its result is kept: the dispatch's own TTL, else the job's setting, s."""
        own = self.message.result_ttl_s if self.message is not None else None
        return self.invocation.settings.result_ttl_s if own is None else own


@dataclass(frozen=True)
class WorkerSummary:
    """What one run of the worker did."""

    worker_id: str
    done: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    released: int = 0
    #: Inline sync jobs still running at exit (threads cannot be stopped).
    abandoned: int = 0


def best_effort(what: str, call: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """Make a backend call that may be skipped when the backend is down; None if it was.

    What it could not do is safe: every job this worker leased comes back to the queue when its
    lease expires (a release or a dead letter that did not happen just happens later, there).

    Args:
        what: what the call does, for the warning (``"release 3 job(s)"``).
        call: the backend method.
    """
    try:
        return call(*args, **kwargs)
    except BackendUnavailable as exc:
        log.warning("could not %s (%s); leased jobs come back when their leases expire", what, exc)
        return None
