"""Pool pipelining: a request queued behind a dying job is not lost; short jobs batch up."""

from __future__ import annotations

import asyncio
import functools
import signal
import time

import psutil

from kqueue.job import App
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.status import Status
from kqueue.tiers.base import Invocation, Outcome
from kqueue.tiers.pool import BACKLOG_PER_PROCESS, PoolRunner
from tests.support.tierapp import enqueue, left_in_queue, trace, wait_for, worker_running, write_app

RUN = ("run", "--app", "tierjobs:app", "--trace-out", "trace.csv", "--burst")


def test_request_queued_behind_a_killed_job_runs_once_elsewhere(tmp_path):
    # Given a pool of 1 running a job estimated short (so the next one is queued in its pipe)
    backend = write_app(tmp_path)
    enqueue(backend, "pool.once.short", "first.pid", 60.0)
    with worker_running(tmp_path, *RUN, "--pool-size", "1", "--pool-max-size", "1") as worker:
        assert wait_for(lambda: (tmp_path / "first.pid").exists(), 30)
        enqueue(backend, "pool.short", 0.1)
        assert wait_for(lambda: left_in_queue(backend) == 2 and _leased(backend) == 2, 30)
        # When the process is killed with the second request still unread in its pipe
        psutil.Process(int((tmp_path / "first.pid").read_text())).send_signal(signal.SIGKILL)
        # Then both jobs finish: the killed one on its retry, the queued one once, first attempt
        assert worker.wait(timeout=60) == 0
    rows = trace(tmp_path)
    killed = rows[rows.job_class == "pool.once.short"].sort_values("attempt")
    assert list(killed.status) == ["killed", "ok"]
    queued = rows[rows.job_class == "pool.short"]
    assert list(queued.status) == ["ok"]
    assert list(queued.attempt) == [1]
    assert left_in_queue(backend) == 0


def _leased(backend) -> int:
    return backend.counts().get("default", {}).get("leased", 0)


POOL_SETTINGS = JobSettings(Tier.POOL, None, 60.0, 1024.0, 1)


def _short_jobs(job, n: int, estimate_s: float) -> list[Invocation]:
    return [Invocation(f"j{i}", job, [0.01], {}, POOL_SETTINGS, 1, estimate_s) for i in range(n)]


def test_short_jobs_queue_deeper_and_come_back_in_batches(tmp_path):
    # Given a pool of 2 fed 40 jobs of 10 ms, each launched as soon as the pool has a free slot,
    # and a worker loop that is sometimes busy elsewhere (here: blocked for 0.3 s at the first
    # outcome and every tenth after it) while the pool's processes keep running queued jobs
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    nap = app.job(time.sleep, name="nap")
    runner = PoolRunner(app, Config(pool_size=2, pool_max_size=2))
    #: (job id, the loop round its outcome arrived in): a round is one refill of the pool
    deliveries: list[tuple[str, int]] = []

    async def scenario() -> list[int]:
        await runner.start()
        await runner.ready()  # its processes are forked without waiting
        loop = asyncio.get_running_loop()
        left, frees, done = _short_jobs(nap, 40, 0.01), [], loop.create_future()

        def on_done(invocation: Invocation, outcome: Outcome) -> None:
            if len(deliveries) % 10 == 0:
                time.sleep(0.3)  # the loop is busy; outcomes pile up in the pool's pipes
            deliveries.append((invocation.job_id, len(frees)))
            assert outcome.status is Status.OK, outcome.error
            loop.call_soon(refill)  # like the worker: refill on its next round

        def refill() -> None:
            frees.append(runner.free())
            while left and runner.free() > 0:
                invocation = left.pop(0)
                runner.launch(invocation, functools.partial(on_done, invocation))
            if len(deliveries) == 40 and not done.done():
                done.set_result(None)

        refill()
        await asyncio.wait_for(done, 60)
        await runner.stop(0.0)
        return frees

    # When they run
    frees = asyncio.run(scenario())
    # Then each ran once, the pool took more than one queued job per process, and the outcomes
    # that finished while the loop was busy came back together, in one round: each of the four
    # busy spells leaves at least the other process's finished job for the same round, so there
    # are at least four fewer rounds than jobs however fast or slow the machine is
    assert sorted(job_id for job_id, _ in deliveries) == sorted(f"j{i}" for i in range(40))
    assert max(frees) > 2 * (1 + BACKLOG_PER_PROCESS)
    rounds = {round_ for _, round_ in deliveries}
    assert len(rounds) <= 40 - 4


def test_a_cancelled_job_frees_its_slot_and_is_not_reported(tmp_path):
    # Given a pool of 1 busy with a job, and a second one waiting in the pool's queue
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    nap = app.job(time.sleep, name="nap")
    runner = PoolRunner(app, Config(pool_size=1, pool_max_size=1))
    reported: list[str] = []

    async def scenario() -> tuple[int, int]:
        await runner.start()
        await runner.ready()  # its processes are forked without waiting
        first, second = (Invocation(f"j{i}", nap, [0.3], {}, POOL_SETTINGS, 1) for i in (1, 2))
        runner.launch(first, lambda outcome: reported.append("j1"))
        handle = runner.launch(second, lambda outcome: reported.append("j2"))
        free_before = runner.free()
        # When the worker stops waiting for the second one (as at shutdown)
        handle.cancel()
        deadline = time.monotonic() + 30
        while "j1" not in reported and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        free_after = runner.free()
        await runner.stop(0.0)
        return free_before, free_after

    free_before, free_after = asyncio.run(scenario())
    # Then the first is reported, the second never is, and both slots are free again
    assert reported == ["j1"]
    assert free_after == free_before + 2
