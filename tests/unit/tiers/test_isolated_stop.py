"""A worker that stops while its isolated jobs wait for the zygote gives them back uncounted.

Real zygote and processes, driven by an ``IsolatedRunner`` on an asyncio loop in this process.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from kqueue.policy.config import Config
from kqueue.tiers.base import Invocation
from kqueue.tiers.isolated import IsolatedRunner
from tests.unit.tiers.test_isolated_zygote import ISOLATED, _app


@pytest.mark.timeout(30)
def test_a_job_the_zygote_forks_for_after_stop_began_ends_interrupted(tmp_path):
    # Given an isolated job asked of the zygote but not yet adopted
    app, job, _ = _app(tmp_path)

    async def scenario():
        runner = IsolatedRunner(app, Config(max_concurrent_isolated=2))
        await runner.start()
        runner.zygote.wait_ready()
        task = asyncio.ensure_future(runner.run(Invocation("j0", job, [], {}, ISOLATED, 1)))
        await asyncio.sleep(0)
        assert len(runner._requested) == 1
        # When the worker stops before the zygote's answer is read
        await runner.stop(5.0)
        return await task

    outcome = asyncio.run(scenario())
    # Then the job never ran and goes back to the queue without losing an attempt
    assert outcome.interrupted, (outcome.status, outcome.error)


@pytest.mark.timeout(30)
def test_jobs_owed_by_a_zygote_lost_while_stopping_end_interrupted(tmp_path):
    # Given an isolated job asked of a zygote that is stopped (SIGSTOP) and never answers
    app, job, _ = _app(tmp_path)

    async def scenario():
        runner = IsolatedRunner(app, Config(max_concurrent_isolated=2))
        await runner.start()
        runner.zygote.wait_ready()
        zygote = runner.zygote.pid
        os.kill(zygote, signal.SIGSTOP)
        task = asyncio.ensure_future(runner.run(Invocation("j0", job, [], {}, ISOLATED, 1)))
        await asyncio.sleep(0)
        # When the worker stops and the zygote dies meanwhile
        stopping = asyncio.ensure_future(runner.stop(1.0))
        await asyncio.sleep(0.2)
        os.kill(zygote, signal.SIGKILL)
        await stopping
        done, _ = await asyncio.wait([task], timeout=3)
        return task.result() if done else None

    outcome = asyncio.run(scenario())
    # Then the job it owed ends now, interrupted, not after its visibility timeout
    assert outcome is not None and outcome.interrupted
