"""The inline tier's sync threads: a few for short jobs, more while jobs block; clean stop."""

from __future__ import annotations

import asyncio
import time

from kqueue.job import App
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.status import Status
from kqueue.policy.threads import EAGER_THREADS
from kqueue.tiers.base import Invocation
from kqueue.tiers.inline import InlineRunner

SETTINGS = JobSettings(Tier.INLINE, None, 60.0, 1024.0, 1)


def _invocations(job, n: int) -> list[Invocation]:
    return [Invocation(f"j{i}", job, [], {}, SETTINGS, 1) for i in range(n)]


def test_blocking_sync_jobs_grow_the_threads_and_run_together(tmp_path):
    # Given an inline tier of 40 and 40 sync jobs that each sleep 0.5 s
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    nap = app.job(lambda: time.sleep(0.5), name="nap")
    runner = InlineRunner(app, Config(max_concurrent_inline=40))

    async def scenario() -> list:
        outcomes = await asyncio.gather(*(runner.run(i) for i in _invocations(nap, 40)))
        await runner.stop(0.0)
        return outcomes

    # When they are run at once
    outcomes = asyncio.run(scenario())
    # Then the threads grew past the eager few, and more jobs than those few were running at one
    # moment (counted from the jobs' own start and end times, not against a wall-clock bound)
    assert all(outcome.status is Status.OK for outcome in outcomes)
    assert runner.status()["threads"] > EAGER_THREADS
    assert _most_at_once(outcomes) > EAGER_THREADS
    assert len({outcome.where for outcome in outcomes}) > EAGER_THREADS


def _most_at_once(outcomes) -> int:
    """The most jobs running at the same moment (each one's ``started_at``..``finished_at``)."""
    return max(
        sum(other.started_at <= outcome.started_at < other.finished_at for other in outcomes)
        for outcome in outcomes
    )


def test_stop_interrupts_queued_sync_jobs_and_lets_running_ones_finish(tmp_path):
    # Given an inline tier of 2 running two 0.3 s jobs with three more queued behind them
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    nap = app.job(lambda: time.sleep(0.3), name="nap")
    runner = InlineRunner(app, Config(max_concurrent_inline=2))

    async def scenario() -> list:
        loop = asyncio.get_running_loop()
        done = [loop.create_future() for _ in range(5)]
        for invocation, future in zip(_invocations(nap, 5), done, strict=True):
            runner.launch(invocation, future.set_result)
        await asyncio.sleep(0.1)
        # When the tier stops
        await runner.stop(0.0)
        return await asyncio.gather(*done)

    outcomes = asyncio.run(scenario())
    # Then the two running jobs finish and the three queued ones come back interrupted
    assert sorted(outcome.status for outcome in outcomes) == [Status.KILLED] * 3 + [Status.OK] * 2
    assert sum(outcome.interrupted for outcome in outcomes) == 3
    assert runner.running() == 0
