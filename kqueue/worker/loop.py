"""The worker: lease jobs, route each to a tier, run it, ack, retry or dead-letter, record it.

The loop is a list of named steps (Horizon's supervisor): fetch, dispatch, settle, maintain, idle.
Fetching is bounded by the free slots of the tiers, and a tier's local queue never holds more jobs
than the tier can run at once: extra jobs go back to the broker instead of being hoarded, so a full
tier never stops the others (``intake``). Leases of waiting and running jobs are extended while
they live. Finished jobs are settled here and recorded by ``recorder`` (history, trace, metrics,
status).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Mapping
from typing import Any

from kqueue.errors import BackendUnavailable
from kqueue.job import App
from kqueue.policy.config import Config
from kqueue.policy.estimator import DurationHistory
from kqueue.policy.ordering import QueueOrder
from kqueue.policy.schedule import Schedule
from kqueue.policy.status import Status
from kqueue.tiers import build_runners
from kqueue.tiers.base import Outcome
from kqueue.worker.backlog import PoolBacklog
from kqueue.worker.budget import MemoryBudget, add_budget_status, connect_pool
from kqueue.worker.held import Pending, WorkerSummary, best_effort
from kqueue.worker.intake import Intake, extend_leases
from kqueue.worker.periodic import Periodic
from kqueue.worker.recorder import Recorder
from kqueue.worker.settle import Settler
from kqueue.worker.wake import Wake, first_of

log = logging.getLogger("kqueue.worker")

STATUS_INTERVAL_S = 2.0
#: How often the worker asks which of its jobs were cancelled, seconds (a cancelled running job
#: stops within about this plus one loop round).
CANCEL_POLL_S = 0.2
#: Waits after a failed backend call: first, doubling up to the cap (seconds).
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
#: After the tiers stop, how long their runs get to return ``interrupted`` outcomes, seconds.
STOPPED_RUNS_WAIT_S = 1.0
#: Sent to a running worker, makes it finish what is queued and exit (as ``--burst``).
DRAIN_SIGNAL = signal.SIGUSR1
#: Sent to a running worker, makes it stop as for SIGTERM and mark the stop as a reload
#: (``kqueue run`` then starts the new code and config in a fresh process: ``ops.reload``).
RELOAD_SIGNAL = signal.SIGHUP


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
        metrics_port: int | None = None,
        queue_order: QueueOrder | None = None,
        schedules: Mapping[str, Schedule] | None = None,
    ):
        self.app, self.config, self.queues = app, config, queues
        #: The order to try the queues in, per fetch round (``kqueue.policy.ordering``).
        self._turns = (queue_order or QueueOrder()).turns(queues)
        self._turn = 0
        #: The last fetch got less than it asked for: the backend had no more (no fetch at once).
        self._drained = False
        self.backend = app.backend
        self.force_inline, self.max_jobs, self.burst = force_inline, max_jobs, burst
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.history = history or DurationHistory.from_config(config)
        self.runners = build_runners(app, config, force_inline=force_inline)
        self.metrics_port = metrics_port
        #: Fires the periodic schedules while this worker holds the leader lease.
        self.periodic = Periodic(
            app,
            app.schedules if schedules is None else schedules,
            self.worker_id,
            config.leader_lease_s,
        )
        #: Records finished jobs (history, trace, metrics) and publishes the status.
        self.recorder = Recorder(
            self.backend,
            config,
            self.history,
            self.worker_id,
            trace_out=trace_out,
            metrics_port=metrics_port,
            declared={name: job.declared for name, job in app.jobs.items()},
        )
        #: Leases jobs into its ``waiting`` queues, one per tier.
        self.intake = Intake(app, config, self.runners, self.history, force_inline=force_inline)
        #: Keeps the memory budget, the per-class memory history and the quarantine.
        self.budget = MemoryBudget(config, self.runners)
        self.intake.budget = self.budget
        self._backlog = PoolBacklog(self.backend, self.queues, self.intake.routes_to_pool)
        connect_pool(self.runners, self.budget, self._backlog)
        #: What the loop itself settled: retries' dead letters, releases, abandoned threads.
        self._released = self._abandoned = 0
        #: Running jobs and their runners' handles (``cancel()`` at shutdown).
        self._running: dict[Pending, Any] = {}
        self._finished: list[tuple[Pending, Outcome]] = []
        #: Acks, retries and dead letters of finished jobs (acks go with the next lease).
        self.settler = Settler(self.backend, self.recorder, self.worker_id)
        #: Jobs this worker was told to cancel (each is aborted once).
        self._aborted: set[str] = set()
        self._last_cancel_poll = 0.0
        self._stopping = False
        self._force = False
        #: The stop was asked by ``request_reload`` (SIGHUP): the caller starts the new code.
        self.reload_requested = False
        self._wake: Wake | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_extend = self._last_status = 0.0
        self._backoff_s = 0.0

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> WorkerSummary:
        """Run until stopped (signal, ``request_stop``), ``max_jobs`` done, or burst drained."""
        self._wake = Wake()
        self._loop = asyncio.get_running_loop()
        self._install_signal_handlers()
        self.budget.check(self.intake.all_settings())
        for runner in self.runners.values():  # the zygote and first pool fork before any thread
            await runner.start()
        self.recorder.start()  # the metrics server's and the trace shipper's threads
        log.info(
            "worker %s started on %s (tiers: %s)",
            self.worker_id,
            ",".join(self.queues),
            ", ".join(t.value for t in self.runners),
        )
        try:
            while True:
                try:
                    self._settle()
                    # queued jobs take the slots that just freed before the lease round trip
                    # (the twin starts a tier's next job as one ends)
                    self._dispatch()
                    fetched = await self._fetch()  # sends the settled acks with the lease
                    self._dispatch()
                    self._record()  # after the acks: results are not kept waiting on it
                    self._maintain()
                    if self._done(fetched):
                        break
                    self._recovered()
                except BackendUnavailable as exc:  # lost connection or restarting server
                    self.settler.record_settled()  # bookkeeping needs no backend
                    if self._stopping:  # a stop must not wait for the backend to come back
                        break  # _shutdown does what it can; the rest comes back on expiry
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

    @property
    def summary(self) -> WorkerSummary:
        """What this run did so far, from the counts of the loop, the intake and the recorder."""
        return WorkerSummary(
            self.worker_id,
            done=self.recorder.done,
            by_status=dict(self.recorder.by_status),
            dead_lettered=self.settler.dead_lettered + self.intake.dead_lettered,
            released=self._released + self.settler.released + self.intake.released,
            abandoned=self._abandoned,
        )

    def request_stop(self) -> None:
        """Stop fetching and shut down gracefully; a second request skips the grace period.
        A stop asked during a reload's grace period ends the reload: the worker exits.

        Safe to call from any thread.
        """
        self._on_loop(self._stop_for_good)

    def _stop_for_good(self) -> None:
        self.reload_requested = False
        self._stop_now()

    def drain(self) -> None:
        """Exit once the queues are empty, as with ``--burst``. Safe to call from any thread."""
        self._on_loop(self._drain_now)

    def request_reload(self) -> None:
        """Stop as ``request_stop`` does (finish running jobs, hand waiting ones back) and mark
        the stop as a reload. A repeated request does not cut the grace period short.

        Safe to call from any thread.
        """
        self._on_loop(self._reload_now)

    def _reload_now(self) -> None:
        if not self._stopping:
            log.info("worker %s reloading: finishing running jobs first", self.worker_id)
            self.reload_requested = True
            self._stop_now()

    def _stop_now(self) -> None:
        self._force = self._stopping
        self._stopping = True
        self._wake.set()

    def _drain_now(self) -> None:
        self.burst = True
        self._wake.set()

    def _on_loop(self, callback) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            callback()
        else:
            loop.call_soon_threadsafe(callback)

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

    async def _fetch(self) -> int:
        """Lease what the tiers can take; the pending acks go in the same round trip, awaited
        (``Backend.ack_and_lease_async``): async jobs run on while the reply comes."""
        plan = self.intake.plan(stopping=self._stopping, max_jobs=self.max_jobs)
        self.intake.begin_round(plan)
        room = plan.size
        fetched = 0
        order = self._turns[self._turn % len(self._turns)]
        self._turn += 1
        held_before = self.intake.limiter.held_back
        for queue in order:
            if fetched >= room:
                break
            acks, records = self.settler.pending_acks()
            _, leases = await self.backend.ack_and_lease_async(
                acks,
                queue,
                self.worker_id,
                room - fetched,
                self.config.visibility_timeout_s,
                records=records,
            )
            self.settler.acked()  # kept until a call succeeds: acks retry after a reconnect
            overflow = [lease for lease in leases if not self.intake.accept(lease)]
            if overflow:
                self.intake.give_back(overflow)
            fetched += len(leases)
        self.settler.flush(batching=plan.deferred)  # when nothing was leased
        self._drained = fetched < room  # every queue gave less than asked: none has more now
        # jobs held back by a limit or a pause are no reason to fetch again at once
        return fetched - (self.intake.limiter.held_back - held_before)

    def _room(self) -> int:
        return self.intake.plan(stopping=self._stopping, max_jobs=self.max_jobs).size

    def _dispatch(self) -> None:
        for pending in self.intake.take_ready():
            self._running[pending] = self.runners[pending.tier].launch(
                pending.invocation, functools.partial(self._on_done, pending)
            )

    def _on_done(self, pending: Pending, outcome: Outcome) -> None:
        if self._running.pop(pending, None) is None:
            return  # abandoned at shutdown: its lease was released already
        self._finished.append((pending, outcome))
        if self._wake is not None:
            self._wake.set()

    def _settle(self) -> None:
        """Retry or dead-letter failed jobs and queue acks (sent with the next lease).

        On a backend error the rest wait a round.
        """
        finished, self._finished = self._finished, []
        for i, (pending, outcome) in enumerate(finished):
            try:
                self._settle_one(pending, outcome)
            except BaseException:
                self._finished = finished[i:] + self._finished
                raise

    def _record(self) -> None:
        """Record the settled attempts, then share durations and trace rows.

        Raises:
            BackendUnavailable: the durations and rows wait a round.
        """
        self.settler.record_settled()
        self.recorder.flush()

    def _flush_acks(self) -> None:
        self.settler.flush()

    def _settle_one(self, pending: Pending, outcome: Outcome) -> None:
        self._aborted.discard(pending.lease.job_id)
        if not outcome.interrupted:
            self.budget.finished(pending, outcome.status, outcome.memory_mb)
        self.settler.settle(pending, outcome)
        self.intake.job_ended(pending.lease.job_id)

    def _abort_cancelled(self) -> None:
        """Stop the running and waiting jobs whose cancellation was asked (one backend call)."""
        running = {pending.lease.job_id: pending for pending in self._running}
        waiting = {pending.lease.job_id: pending for pending in self.intake.held()}
        leases = [pending.lease for pending in (*running.values(), *waiting.values())]
        for job_id in self.backend.cancel_requested(leases) - self._aborted:
            self._aborted.add(job_id)
            if job_id in running:
                pending = running[job_id]
                log.info("job %s (%s) cancelled while running", job_id, pending.invocation.job.name)
                self.runners[pending.tier].abort(self._running[pending], pending.invocation)
            elif self.intake.drop(waiting[job_id]):
                now = time.time()
                self._finished.append((waiting[job_id], Outcome(Status.CANCELLED, now, now)))

    def _maintain(self) -> None:
        now = time.time()
        busy = self._running or self.intake.waiting_count()
        if busy and now - self._last_cancel_poll >= CANCEL_POLL_S:
            self._abort_cancelled()
            self._last_cancel_poll = now
        for tier, runner in self.runners.items():
            runner.maintain(self.intake.waiting_count(tier), time.monotonic())
        if now - self._last_extend >= self.config.visibility_timeout_s / 3:
            self._extend_leases()
            self._last_extend = now
        if now - self._last_status >= STATUS_INTERVAL_S:
            self._publish_status()
            self._last_status = now
        if self.periodic.due(now):
            self.periodic.step(now)

    def _extend_leases(self) -> None:
        pendings = [*self.intake.held(), *self._running]
        extend_leases(self.backend, pendings, self.config.visibility_timeout_s)
        self.intake.limiter.renew([pending.lease.job_id for pending in pendings])

    def _publish_status(self) -> None:
        tiers = {
            tier.value: {**runner.status(), "waiting": self.intake.waiting_count(tier)}
            for tier, runner in self.runners.items()
        }
        add_budget_status(tiers, self.budget)
        self.recorder.publish_status(self.queues, tiers)

    def _done(self, fetched: int) -> bool:
        if self._stopping:  # _shutdown releases waiting jobs and gives running ones the grace
            return True
        busy = self._running or self.intake.waiting_count() or self._finished
        if busy:
            return False
        if self.max_jobs is not None and self.intake.accepted >= self.max_jobs:
            return True
        return self.burst and fetched == 0 and self._queues_empty()

    def _queues_empty(self) -> bool:
        counts = self.backend.counts()
        return all(
            sum(v for k, v in counts.get(q, {}).items() if k != "dead") == 0 for q in self.queues
        )

    async def _idle(self, fetched: int) -> None:
        """Wait for a reason to go round again: a finished job, a stop, or new work.

        With room to spare and nothing fetched, the backend's ``wait_for_work`` (a blocking
        pop on Redis, a sleep on SQLite) ends the wait as soon as work arrives; in any case
        the wait lasts at most ``poll_interval_s``, which finds scheduled and retried jobs,
        and ends at the turn of a job this worker held back for a rate limit.
        """
        plan = self.intake.plan(stopping=self._stopping, max_jobs=self.max_jobs)
        room = plan.size
        if fetched and room > 0 and not self._drained:
            await asyncio.sleep(0)  # more may be waiting: fetch again at once
            return
        self._wake.clear()
        if self._finished:
            return
        timeout_s = self.config.poll_interval_s
        ack_wait_s = self.settler.ack_wait_s()
        if ack_wait_s is not None:  # batched acks go out by their deadline
            timeout_s = min(timeout_s, ack_wait_s)
        turn_in_s = self.intake.limiter.next_turn_in_s()
        if turn_in_s is not None and room > 0:  # a job it held back is due at its turn
            timeout_s = min(timeout_s, turn_in_s)
        slot_wait_in_s = self.intake.slot_wait_in_s()
        if slot_wait_in_s is not None:  # a job waiting here for a slot goes back then
            timeout_s = min(timeout_s, slot_wait_in_s)
        waits = [self._wake.future()]
        if room > 0 and not self._stopping and not plan.deferred:
            waits.append(self.backend.work_waiter(self.queues, self.config.poll_interval_s))
        await first_of(waits, timeout_s)

    # --- shutdown -------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        waiting = self.intake.take_waiting()
        if waiting:
            self._released += (
                best_effort("release waiting jobs", self.backend.release, waiting) or 0
            )
        await self._grace_period()
        for runner in self.runners.values():
            await runner.stop(0.0)
        # let the stopped tiers' runs return their interrupted outcomes
        deadline = time.monotonic() + STOPPED_RUNS_WAIT_S
        while self._running and time.monotonic() < deadline:
            await self._wait_finish(deadline)
        self._abandon_unfinished()
        best_effort("settle finished jobs", self._settle_now)
        best_effort("remove this worker's status", self.backend.remove_status, self.worker_id)
        self.recorder.close()
        log.info(
            "worker %s stopped: %d done, %s",
            self.worker_id,
            self.summary.done,
            self.summary.by_status,
        )

    async def _grace_period(self) -> None:
        """Let running jobs finish for ``shutdown_grace_s``; a second signal cuts it short."""
        if not self._running:
            return
        log.info(
            "waiting up to %.1f s for %d running job(s)",
            self.config.shutdown_grace_s,
            len(self._running),
        )
        deadline = time.monotonic() + self.config.shutdown_grace_s
        while self._running and not self._force and time.monotonic() < deadline:
            await self._wait_finish(deadline)
            best_effort("settle finished jobs", self._settle_now)

    async def _wait_finish(self, deadline: float) -> None:
        """Wait until a job finishes, a stop request, or ``deadline`` (monotonic seconds)."""
        self._wake.clear()  # no await since the caller looked at _running: nothing is missed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))

    def _settle_now(self) -> None:
        """Settle finished jobs and send their acks and durations at once (shutdown)."""
        self._settle()
        self._flush_acks()
        self._record()
        self.recorder.flush_durations(now=True)

    def _abandon_unfinished(self) -> None:
        """Release jobs still running after the tiers stopped (inline sync threads)."""
        running, self._running = self._running, {}
        for pending, handle in running.items():
            handle.cancel()  # its outcome, if any, is ignored: the job is no longer running
            released = best_effort("release a running job", self.backend.release, [pending.lease])
            self._released += released or 0
            self._abandoned += 1

    def _install_signal_handlers(self) -> None:
        """SIGTERM / SIGINT stop gracefully; SIGUSR1 drains (exit once the queues are empty);
        SIGHUP stops gracefully for a reload."""
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            DRAIN_SIGNAL: self._drain_now,
            RELOAD_SIGNAL: self._reload_now,
        }
        for signum, handler in handlers.items():
            # not possible off the main thread (tests): those stop with request_stop()
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, handler)
