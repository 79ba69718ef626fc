"""Pool results read in batches: none lost, none reported twice, each timed as its own job."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import time
from pathlib import Path

from kqueue.job import App
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.status import Status
from kqueue.tiers import handback
from kqueue.tiers.base import Invocation, Outcome
from kqueue.tiers.pool import PoolRunner


def mark_and_sleep(path: str, seconds: float) -> None:
    """A job that leaves one line in ``path`` as it starts, then sleeps."""
    with open(path, "a") as marks:
        marks.write(f"{os.getpid()}\n")
    time.sleep(seconds)


def hold_mb(mb: int) -> int:
    """A job that holds ``mb`` MB of written memory while it runs."""
    block = b"x" * (mb * 1024 * 1024)
    return len(block)


def _runner(tmp_path: Path, size: int = 1) -> tuple[App, PoolRunner]:
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    app.job(time.sleep, name="nap")
    app.job(mark_and_sleep, name="mark")
    app.job(hold_mb, name="hold")
    return app, PoolRunner(app, Config(pool_size=size, pool_max_size=size))


def _invocation(app: App, i: int, name: str, args: list, timeout_s: float, estimate_s: float):
    settings = JobSettings(Tier.POOL, None, timeout_s, 1024.0, 1)
    return Invocation(f"j{i}", app.jobs[name], args, {}, settings, 1, estimate_s)


async def _run_all(runner: PoolRunner, invocations: list[Invocation], reported: dict) -> None:
    """Launch as many as the pool takes, refill as outcomes come, until all are reported."""
    loop = asyncio.get_running_loop()
    left, done = list(invocations), loop.create_future()

    def on_done(invocation: Invocation, outcome: Outcome) -> None:
        reported.setdefault(invocation.job_id, []).append(outcome)
        loop.call_soon(refill)

    def refill() -> None:
        while left and runner.free() > 0:
            invocation = left.pop(0)
            runner.launch(invocation, functools.partial(on_done, invocation))
        if len(reported) == len(invocations) and not done.done():
            done.set_result(None)

    refill()
    await asyncio.wait_for(done, 60)


def test_short_jobs_results_come_in_batches_each_once_and_timed_per_job(tmp_path):
    # Given a pool of 1 process and 40 jobs of 20 ms, estimated short
    app, runner = _runner(tmp_path)
    jobs = [_invocation(app, i, "nap", [0.02], 60.0, 0.02) for i in range(40)]
    reported: dict[str, list[Outcome]] = {}

    async def scenario() -> int:
        await runner.start()
        await runner.ready()  # its processes are forked without waiting
        (process,) = (proc.child for proc in runner._procs.values())
        await _run_all(runner, jobs, reported)
        await runner.stop(0.0)
        return process.reads

    # When they run
    reads = asyncio.run(scenario())
    # Then each is reported once, ok, and the pipe was read far fewer times than there were jobs
    assert sorted(reported) == sorted(job.job_id for job in jobs)
    outcomes = [outcome for (outcome,) in reported.values()]
    assert all(outcome.status is Status.OK for outcome in outcomes)
    assert reads <= len(jobs) / 2
    # And each outcome carries its own job's times: one process, so one after the other
    outcomes.sort(key=lambda outcome: outcome.started_at)
    for before, after in zip(outcomes, outcomes[1:], strict=False):
        assert before.finished_at <= after.started_at
    assert all(outcome.finished_at - outcome.started_at >= 0.019 for outcome in outcomes)
    assert all(0 <= outcome.cpu_s < 0.019 for outcome in outcomes)  # they sleep


def test_each_job_reports_its_own_peak_memory(tmp_path):
    # Given one process running, in turn, a job that holds 150 MB and two that hold none
    app, runner = _runner(tmp_path)
    jobs = [_invocation(app, i, "hold", [mb], 60.0, 0.05) for i, mb in enumerate((0, 150, 0))]
    reported: dict[str, list[Outcome]] = {}

    async def scenario() -> None:
        await runner.start()
        await runner.ready()  # its processes are forked without waiting
        await _run_all(runner, jobs, reported)
        await runner.stop(0.0)

    # When they run
    asyncio.run(scenario())
    # Then the big one's peak shows its 150 MB, and the peak is reset for the job after it
    (before,), (big,), (after,) = reported["j0"], reported["j1"], reported["j2"]
    assert big.memory_mb >= before.memory_mb + 140
    assert after.memory_mb <= big.memory_mb - 100


def test_unread_result_is_not_a_timeout_and_a_queued_job_times_out(tmp_path, monkeypatch):
    # Given results that wait unread for 0.5 s while a job is queued behind another
    monkeypatch.setattr(handback, "READ_INTERVAL_S", 5.0)
    app, runner = _runner(tmp_path)
    first = _invocation(app, 1, "nap", [0.2], 0.4, 1.0)  # ends in time, read after its timeout
    stuck = _invocation(app, 2, "nap", [30.0], 0.4, 1.0)  # queued behind it, runs too long
    reported: dict[str, list[Outcome]] = {}

    async def scenario() -> None:
        await runner.start()
        await runner.ready()  # its processes are forked without waiting
        await _run_all(runner, [first, stuck], reported)
        await runner.stop(0.0)

    # When they run
    asyncio.run(scenario())
    # Then the first is ok (its result was read when its timer fired) and the second timed out,
    # counted from the moment the first ended (when it started), not from when that was read
    (ok,), (timed_out,) = reported["j1"], reported["j2"]
    assert ok.status is Status.OK
    assert timed_out.status is Status.TIMEOUT
    assert timed_out.started_at == ok.finished_at
    assert timed_out.finished_at - timed_out.started_at < 10.0


def test_sigkill_with_unread_results_loses_none_and_reports_each_once(tmp_path, monkeypatch):
    # Given a pool of 1 whose results are read only every 1 s, running 8 jobs of 50 ms
    monkeypatch.setattr(handback, "READ_INTERVAL_S", 1.0)
    monkeypatch.setattr(handback, "MIN_READ_INTERVAL_S", 1.0)
    app, runner = _runner(tmp_path)
    marks = tmp_path / "marks.txt"
    jobs = [_invocation(app, i, "mark", [str(marks), 0.05], 60.0, 0.1) for i in range(8)]
    reported: dict[str, list[Outcome]] = {}
    seen_at_kill: list[int] = []

    async def kill_after_three_started() -> int:
        while len(_lines(marks)) < 3:
            await asyncio.sleep(0.005)
        victim = int(_lines(marks)[0])
        seen_at_kill.append(len(reported))
        os.kill(victim, signal.SIGKILL)
        return victim

    async def scenario() -> int:
        await runner.start()
        await runner.ready()  # its processes are forked without waiting
        killer = asyncio.ensure_future(kill_after_three_started())
        await _run_all(runner, jobs, reported)
        await runner.stop(0.0)
        return await killer

    # When the process is killed with finished jobs' results still unread in its pipe
    victim = asyncio.run(scenario())
    # Then nothing had been read before the kill, and every job is reported exactly once:
    # those that finished before the kill ok from the dead process, at most the one it was
    # running killed (the worker retries it as any job of a dead process), the rest ok elsewhere
    assert seen_at_kill == [0]
    assert sorted(reported) == sorted(job.job_id for job in jobs)
    assert all(len(outcomes) == 1 for outcomes in reported.values())
    outcomes = [outcome for (outcome,) in reported.values()]
    killed = [outcome for outcome in outcomes if outcome.status is Status.KILLED]
    assert len(killed) <= 1
    assert all(not outcome.interrupted for outcome in killed)
    assert sum(outcome.status is Status.OK for outcome in outcomes) == len(jobs) - len(killed)
    assert sum(outcome.where == f"pid {victim}" for outcome in outcomes) >= 2 + len(killed)
    assert runner.replaced == 1


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
