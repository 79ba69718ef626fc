"""Settling finished attempts: ack with their records, retry by the job's rule, or dead-letter.

The loop hands each finished job here. An ``ok`` or ``cancelled`` attempt is acked, with its
finished record (result, tier, worker, times) when its ``result_ttl_s`` keeps one; the acks wait
for the loop's next lease, which sends them in the same round trip. The bookkeeping of each
attempt (history, trace row, metrics) waits until then too (``record_settled``): a caller
waiting on ``result()`` is answered one lease earlier. A failed attempt is retried
after the delay ``kqueue.policy.retry`` gives (its rule also runs in the simulator), or
dead-lettered when the rule says it cannot succeed or its attempts are used up.
"""

from __future__ import annotations

import logging
import random
import time

from kqueue.api.codec import RecordWriter
from kqueue.api.handle import CANCEL_RECORD_TTL_S
from kqueue.backends.base import Backend, Lease
from kqueue.policy.retry import retry_after_s
from kqueue.policy.status import JobState, Status
from kqueue.tiers.base import Outcome
from kqueue.worker.held import Pending
from kqueue.worker.recorder import Recorder

log = logging.getLogger("kqueue.worker")

#: While the local queues are full (no lease to ride with), acks wait at most this long, seconds,
#: or until this many pile up: a busy worker acks in batches, an idle one at once.
ACK_MAX_DELAY_S = 0.005
ACK_BATCH = 64


class Settler:
    """Acks, retries and dead letters of one worker's finished jobs.

    Args:
        backend: where acks, retries and dead letters go.
        recorder: records each settled attempt (history, trace, metrics).
        worker_id: the worker's id (in records; seeds the retry jitter).
    """

    def __init__(self, backend: Backend, recorder: Recorder, worker_id: str):
        self.backend, self.recorder, self.worker_id = backend, recorder, worker_id
        #: Jobs given back uncounted (interrupted at shutdown) and dead-lettered, so far.
        self.released = self.dead_lettered = 0
        self._acks: list[Lease] = []
        #: When the oldest pending ack was queued (monotonic s).
        self._first_ack_at = 0.0
        #: Finished records to send with the acks: job id -> (record, TTL s).
        self._records: dict[str, tuple[bytes, float]] = {}
        self._writer = RecordWriter(worker_id)
        #: Draws retry jitter (seeded per worker: no global random state).
        self._rng = random.Random(worker_id)
        #: Settled attempts not yet recorded (``record_settled`` runs after the acks go out).
        self._unrecorded: list[tuple[Pending, Outcome]] = []

    def pending_acks(self) -> tuple[list[Lease], dict[str, tuple[bytes, float]]]:
        """The acks and records waiting to be sent (kept until ``acked``)."""
        return self._acks, self._records

    def acked(self) -> None:
        """The pending acks were sent."""
        self._acks, self._records = [], {}

    def ack_wait_s(self) -> float | None:
        """How long the pending acks may still wait for a lease to ride with, or None."""
        if not self._acks:
            return None
        return max(0.0, ACK_MAX_DELAY_S - (time.monotonic() - self._first_ack_at))

    def flush(self, *, batching: bool = False) -> None:
        """Send the pending acks now (nothing was leased, or shutdown). With ``batching`` (the
        local queues are full, so no lease comes soon) they wait until ``ACK_BATCH`` pile up
        or the oldest is ``ACK_MAX_DELAY_S`` old.

        Raises:
            BackendUnavailable: they stay pending for the next try.
        """
        if batching and len(self._acks) < ACK_BATCH and self.ack_wait_s():
            return
        if self._acks:
            self.backend.ack(self._acks, self._records)
            self.acked()

    def settle(self, pending: Pending, outcome: Outcome) -> None:
        """Settle one finished attempt by its outcome; ``record_settled`` records it."""
        lease = pending.lease
        if outcome.interrupted:
            self.released += self.backend.release([lease])
            return
        if outcome.status in (Status.OK, Status.CANCELLED):
            self._finish(pending, outcome)
        else:
            self._retry_or_bury(pending, outcome)
        self._unrecorded.append((pending, outcome))

    def record_settled(self) -> None:
        """Record the attempts settled since the last call (history, trace, metrics)."""
        unrecorded, self._unrecorded = self._unrecorded, []
        for pending, outcome in unrecorded:
            self.recorder.record(pending, outcome)

    def _finish(self, pending: Pending, outcome: Outcome) -> None:
        """Ack a job that returned or was cancelled; its record goes with the ack."""
        if not self._acks:
            self._first_ack_at = time.monotonic()
        self._acks.append(pending.lease)
        cancelled = outcome.status is Status.CANCELLED
        ttl_s = pending.result_ttl_s or (CANCEL_RECORD_TTL_S if cancelled else 0.0)
        if ttl_s > 0:
            state = JobState.CANCELLED if cancelled else JobState.DONE
            self._records[pending.lease.job_id] = (self._record(pending, outcome, state), ttl_s)

    def _record(self, pending: Pending, outcome: Outcome, state: JobState) -> bytes:
        times = (pending.submitted_at, pending.due_at, outcome.started_at, outcome.finished_at)
        return self._writer.record(
            state.value,
            pending.invocation.job.name,
            pending.tier.value,
            pending.lease.attempt,
            times,
            outcome.result,
        )

    def _retry_or_bury(self, pending: Pending, outcome: Outcome) -> None:
        """Retry a failed attempt by the job's retry rule, else dead-letter it."""
        lease, invocation = pending.lease, pending.invocation
        policy = invocation.job.retry_policy(invocation.settings)
        delay_s = retry_after_s(policy, lease.attempt, outcome.failure, self._rng)
        name, status = invocation.job.name, outcome.status.value
        if delay_s is not None:
            log.warning(
                "job %s (%s) attempt %d %s; retry in %.1f s",
                *(lease.job_id, name, lease.attempt, status, delay_s),
            )
            self.backend.retry(lease, delay_s, outcome.error)
            return
        why = "on its last attempt" if outcome.failure.retryable else "and cannot succeed"
        log.error(
            "job %s (%s) %s %s (%d); dead-lettered", lease.job_id, name, status, why, lease.attempt
        )
        self.backend.dead(lease, f"{status} after {lease.attempt} attempt(s): {outcome.error}")
        self.dead_lettered += 1
