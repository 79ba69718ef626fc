"""The worker: lease jobs, route each to a tier, run it, ack, retry or dead-letter, record it.

The loop is a list of named steps (Horizon's supervisor): fetch, dispatch, settle, maintain, idle.
Fetching is bounded by the free slots of the tiers, and a tier's local queue never holds more jobs
than the tier can run at once: extra jobs go back to the broker instead of being hoarded, so a full
tier never stops the others. Leases of waiting and running jobs are extended while they live.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from kqueue.backends.base import Lease
from kqueue.errors import BackendUnavailable, PayloadError
from kqueue.job import App, decode_message
from kqueue.policy.config import Config, Tier, resolve_job, retry_delay_s
from kqueue.policy.estimator import DurationHistory
from kqueue.policy.router import route
from kqueue.policy.trace import Status, TraceRow, TraceWriter
from kqueue.rates import RateWindow
from kqueue.tiers import build_runners
from kqueue.tiers.base import Invocation, Outcome

log = logging.getLogger("kqueue.worker")

STATUS_INTERVAL_S = 2.0
#: Waits after a failed backend call: first, doubling up to the cap (seconds).
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
STATUS_TTL_S = 10.0
RELEASE_DELAY_S = 1.0


@dataclass
class Pending:
    """A leased job on its way through this worker."""

    lease: Lease
    invocation: Invocation
    tier: Tier
    estimate_s: float
    submitted_at: float


@dataclass
class WorkerSummary:
    """What one run of the worker did."""

    worker_id: str
    done: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    dead_lettered: int = 0
    released: int = 0
    #: Inline sync jobs still running at exit (threads cannot be stopped).
    abandoned: int = 0


class Worker:
    """One worker process: leases from its queues and runs jobs on the tiers."""

    def __init__(
        self,
        app: App,
        config: Config,
        *,
        queues: tuple[str, ...] = ("default",),
        force_inline: bool = False,
        max_jobs: int | None = None,
        burst: bool = False,
        trace_out: str | None = None,
        history: DurationHistory | None = None,
    ):
        self.app, self.config, self.queues = app, config, queues
        self.backend = app.backend
        self.force_inline, self.max_jobs, self.burst = force_inline, max_jobs, burst
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.history = history or DurationHistory.from_config(config)
        self.runners = build_runners(app, config, force_inline=force_inline)
        self.summary = WorkerSummary(self.worker_id)
        self._trace = TraceWriter(trace_out) if trace_out else None
        self._waiting: dict[Tier, deque[Pending]] = {tier: deque() for tier in self.runners}
        self._running: dict[asyncio.Task, Pending] = {}
        self._finished: list[tuple[Pending, Outcome]] = []
        self._acks: list[Lease] = []
        self._rows: list[TraceRow] = []
        self._accepted = 0
        self._stopping = False
        self._force = False
        self._wake: asyncio.Event | None = None
        self._last_extend = self._last_status = 0.0
        self._backoff_s = 0.0
        self._rates = RateWindow()

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> WorkerSummary:
        """Run until stopped (signal, ``request_stop``), ``max_jobs`` done, or burst drained."""
        self._wake = asyncio.Event()
        self._install_signal_handlers()
        for runner in self.runners.values():
            await runner.start()
        log.info(
            "worker %s started on %s (tiers: %s)",
            self.worker_id,
            ",".join(self.queues),
            ", ".join(t.value for t in self.runners),
        )
        try:
            while True:
                try:
                    fetched = self._fetch()
                    self._dispatch()
                    self._settle()
                    self._maintain()
                    if self._done(fetched):
                        break
                    self._recovered()
                except BackendUnavailable as exc:  # lost connection or restarting server
                    await self._back_off(exc)
                    continue
                except Exception:  # one bad round must not kill the worker
                    log.exception("worker loop error; carrying on")
                    fetched = 0
                    await asyncio.sleep(self.config.poll_interval_s)
                await self._idle(fetched)
        finally:
            await self._shutdown()
        return self.summary

    def request_stop(self) -> None:
        """Stop fetching and shut down gracefully; a second request skips the grace period."""
        self._force = self._stopping
        self._stopping = True
        if self._wake is not None:
            self._wake.set()

    async def _back_off(self, exc: BackendUnavailable) -> None:
        """Wait a bounded, doubling time before the next round; running jobs carry on."""
        self._backoff_s = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, self._backoff_s * 2))
        log.warning("backend unavailable: %s; retrying in %.1f s", exc, self._backoff_s)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):  # a stop request ends the wait early
            await asyncio.wait_for(self._wake.wait(), self._backoff_s)

    def _recovered(self) -> None:
        if self._backoff_s:
            log.info("backend reachable again; carrying on")
            self._backoff_s = 0.0

    def _fetch(self) -> int:
        room = self._room()
        fetched = 0
        for queue in self.queues:
            if fetched >= room:
                break
            leases = self.backend.lease(
                queue, self.worker_id, room - fetched, self.config.visibility_timeout_s
            )
            overflow = [lease for lease in leases if not self._accept(lease)]
            if overflow:
                self._give_back(overflow)
            fetched += len(leases)
        return fetched

    def _give_back(self, leases: list[Lease]) -> None:
        """Release leases this worker will not run now (their lease expires if this fails)."""
        try:
            self.summary.released += self.backend.release(leases, delay_s=RELEASE_DELAY_S)
        except BackendUnavailable as exc:
            log.warning(
                "could not release %d job(s), they come back on expiry: %s", len(leases), exc
            )

    def _room(self) -> int:
        if self._stopping:
            return 0
        free = sum(runner.free() for runner in self.runners.values())
        room = min(free - self._waiting_count(), self.config.fetch_batch_size)
        if self.max_jobs is not None:
            room = min(room, self.max_jobs - self._accepted)
        return max(0, room)

    def _accept(self, lease: Lease) -> bool:
        """Queue a leased job for its tier; False when the tier is full (give it back)."""
        pending = self._prepare(lease)
        if pending is None:
            return True
        waiting = self._waiting[pending.tier]
        if len(waiting) >= max(1, self.runners[pending.tier].capacity()):
            return False  # do not hoard a full tier
        self._accepted += 1
        waiting.append(pending)
        return True

    def _prepare(self, lease: Lease) -> Pending | None:
        try:
            message = decode_message(lease.body)
        except PayloadError as exc:
            return self._dead_on_arrival(lease, f"undecodable payload: {exc}")
        job = self.app.jobs.get(message.name)
        if job is None:
            known = ", ".join(sorted(self.app.jobs)[:20]) or "none"
            return self._dead_on_arrival(
                lease, f"unknown job name {message.name!r}; this worker's app registers: {known}"
            )
        settings = resolve_job(self.config, job.name, job.options)
        estimate = self.history.estimate(
            job.name, settings.estimated_duration_s, self.config.default_estimate_s
        )
        tier = route(
            settings.tier, estimate.duration_s, self.config, force_inline=self.force_inline
        )
        invocation = Invocation(
            lease.job_id, job, message.args, message.kwargs, settings, lease.attempt
        )
        return Pending(lease, invocation, tier, estimate.duration_s, message.submitted_at)

    def _dead_on_arrival(self, lease: Lease, reason: str) -> None:
        log.error("job %s dead-lettered: %s", lease.job_id, reason)
        try:
            self.backend.dead(lease, reason)
        except BackendUnavailable as exc:  # it comes back on expiry and lands here again
            log.warning("could not dead-letter job %s: %s", lease.job_id, exc)
            return None
        self.summary.dead_lettered += 1
        return None

    def _dispatch(self) -> None:
        for tier, waiting in self._waiting.items():
            runner = self.runners[tier]
            while waiting and runner.free() > 0:
                pending = waiting.popleft()
                task = asyncio.ensure_future(runner.run(pending.invocation))
                self._running[task] = pending
                task.add_done_callback(self._on_done)

    def _on_done(self, task: asyncio.Task) -> None:
        pending = self._running.pop(task)
        if task.cancelled():
            now = time.time()
            outcome = Outcome(Status.KILLED, now, now, error="cancelled", interrupted=True)
        elif task.exception() is not None:
            now = time.time()
            outcome = Outcome(Status.FAILED, now, now, error=f"runtime error: {task.exception()!r}")
        else:
            outcome = task.result()
        self._finished.append((pending, outcome))
        if self._wake is not None:
            self._wake.set()

    def _settle(self) -> None:
        """Ack, retry or dead-letter finished jobs; on a backend error the rest wait a round."""
        try:
            while self._finished:
                self._settle_one(*self._finished[0])
                self._finished.pop(0)
        finally:
            self._flush_acks()
            self._flush_rows()

    def _flush_acks(self) -> None:
        if self._acks:
            self.backend.ack(self._acks)  # kept until it succeeds: acks retry after reconnect
            self._acks = []

    def _flush_rows(self) -> None:
        if self._rows:
            if self._trace is not None:
                self._trace.write_many(self._rows)
            self._rows = []

    def _settle_one(self, pending: Pending, outcome: Outcome) -> None:
        lease, settings = pending.lease, pending.invocation.settings
        if outcome.interrupted:
            self.summary.released += self.backend.release([lease])
            return
        if outcome.status is Status.OK:
            self._acks.append(lease)
        elif lease.attempt < settings.max_attempts:
            delay_s = retry_delay_s(self.config, lease.attempt)
            log.warning(
                "job %s (%s) attempt %d %s; retry in %.1f s",
                lease.job_id,
                pending.invocation.job.name,
                lease.attempt,
                outcome.status.value,
                delay_s,
            )
            self.backend.retry(lease, delay_s, outcome.error)
        else:
            log.error(
                "job %s (%s) %s on its last attempt (%d); dead-lettered",
                lease.job_id,
                pending.invocation.job.name,
                outcome.status.value,
                lease.attempt,
            )
            self.backend.dead(
                lease, f"{outcome.status.value} after {lease.attempt} attempt(s): {outcome.error}"
            )
            self.summary.dead_lettered += 1
        self._record(pending, outcome)

    def _record(self, pending: Pending, outcome: Outcome) -> None:
        name = pending.invocation.job.name
        if outcome.status in (Status.OK, Status.TIMEOUT):
            self.history.record(name, outcome.duration_s)
        self.summary.done += 1
        self._rates.add(pending.tier.value, outcome.finished_at)
        self.summary.by_status[outcome.status.value] = (
            self.summary.by_status.get(outcome.status.value, 0) + 1
        )
        self._rows.append(
            TraceRow(
                job_id=pending.lease.job_id,
                queue=pending.lease.queue,
                job_class=name,
                tier=pending.tier.value,
                submitted_at=pending.submitted_at,
                started_at=outcome.started_at,
                finished_at=outcome.finished_at,
                wait_s=max(0.0, outcome.started_at - pending.submitted_at),
                duration_s=outcome.duration_s,
                cpu_s=outcome.cpu_s,
                memory_mb=outcome.memory_mb,
                status=outcome.status.value,
                attempt=pending.lease.attempt,
                worker=self.worker_id,
                estimated_s=pending.estimate_s,
            )
        )

    def _maintain(self) -> None:
        now = time.time()
        for tier, runner in self.runners.items():
            runner.maintain(len(self._waiting[tier]), time.monotonic())
        if now - self._last_extend >= self.config.visibility_timeout_s / 3:
            self._extend_leases()
            self._last_extend = now
        if now - self._last_status >= STATUS_INTERVAL_S:
            self._publish_status()
            self._last_status = now

    def _extend_leases(self) -> None:
        pendings = [p for q in self._waiting.values() for p in q] + list(self._running.values())
        if not pendings:
            return
        held = {
            lease.job_id: lease
            for lease in self.backend.extend(
                [p.lease for p in pendings], self.config.visibility_timeout_s
            )
        }
        for pending in pendings:
            renewed = held.get(pending.lease.job_id)
            if renewed is None:
                log.warning(
                    "lost the lease of job %s; another worker may run it too", pending.lease.job_id
                )
            else:
                pending.lease = renewed

    def _publish_status(self) -> None:
        status = {
            "worker": self.worker_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "queues": list(self.queues),
            "published_at": time.time(),
            "done": self.summary.done,
            "per_minute": self._rates.per_minute(time.time()),
            "tiers": {
                tier.value: {**runner.status(), "waiting": len(self._waiting[tier])}
                for tier, runner in self.runners.items()
            },
        }
        self.backend.publish_status(self.worker_id, json.dumps(status).encode(), STATUS_TTL_S)

    def _done(self, fetched: int) -> bool:
        busy = self._running or self._waiting_count() or self._finished
        if busy:
            return False
        if self._stopping:
            return True
        if self.max_jobs is not None and self._accepted >= self.max_jobs:
            return True
        return self.burst and fetched == 0 and self._queues_empty()

    def _queues_empty(self) -> bool:
        counts = self.backend.counts()
        return all(
            sum(v for k, v in counts.get(q, {}).items() if k != "dead") == 0 for q in self.queues
        )

    async def _idle(self, fetched: int) -> None:
        if fetched and self._room() > 0:
            await asyncio.sleep(0)  # more may be waiting: fetch again at once
            return
        self._wake.clear()
        if self._finished or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.config.poll_interval_s)

    def _waiting_count(self) -> int:
        return sum(len(q) for q in self._waiting.values())

    # --- shutdown -------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        waiting = [p.lease for q in self._waiting.values() for p in q]
        for q in self._waiting.values():
            q.clear()
        if waiting:
            self.summary.released += self.backend.release(waiting)
        if self._running:
            grace_s = 0.0 if self._force else self.config.shutdown_grace_s
            log.info("waiting up to %.1f s for %d running job(s)", grace_s, len(self._running))
            await asyncio.wait(list(self._running), timeout=grace_s)
        for runner in self.runners.values():
            await runner.stop(0.0)
        await asyncio.sleep(0)
        self._abandon_unfinished()
        self._settle()
        self.backend.remove_status(self.worker_id)
        if self._trace is not None:
            self._trace.close()
        log.info(
            "worker %s stopped: %d done, %s",
            self.worker_id,
            self.summary.done,
            self.summary.by_status,
        )

    def _abandon_unfinished(self) -> None:
        """Release jobs still running after the tiers stopped (inline sync threads)."""
        for task, pending in list(self._running.items()):
            task.remove_done_callback(self._on_done)
            task.cancel()
            self.summary.released += self.backend.release([pending.lease])
            self.summary.abandoned += 1
        self._running.clear()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # not possible off the main thread (tests): those stop with request_stop()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self.request_stop)
