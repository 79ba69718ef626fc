"""A worker that stops while its isolated jobs wait for the zygote gives them back uncounted.

Real zygote and processes, driven by an ``IsolatedRunner`` on an asyncio loop in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
import time

import pytest

from kqueue.policy.config import Config
from kqueue.policy.status import Status
from kqueue.tiers import isolated
from kqueue.tiers.base import Invocation
from kqueue.tiers.isolated import IsolatedRunner
from tests.unit.tiers.test_isolated_zygote import ISOLATED, SHORT, _app


async def _serving(app) -> IsolatedRunner:
    """An isolated tier of two slots whose zygote serves."""
    runner = IsolatedRunner(app, Config(max_concurrent_isolated=2))
    await runner.start()
    runner.zygote.wait_ready()
    return runner


@pytest.mark.timeout(30)
def test_a_job_the_zygote_forks_for_after_stop_began_ends_interrupted(tmp_path):
    # Given an isolated job asked of the zygote but not yet adopted
    app, job, _ = _app(tmp_path)

    async def scenario():
        runner = await _serving(app)
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
        runner = await _serving(app)
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


@pytest.mark.timeout(30)
def test_a_job_asked_of_a_zygote_that_never_answers_forks_from_the_worker(tmp_path, monkeypatch):
    # Given a zygote stopped (SIGSTOP) before it answers, and a deadline of 0.5 s per request
    monkeypatch.setattr(isolated, "SPAWN_TIMEOUT_S", 0.5, raising=False)
    app, job, _ = _app(tmp_path)

    async def scenario():
        runner = await _serving(app)
        zygote = runner.zygote.pid
        os.kill(zygote, signal.SIGSTOP)
        try:
            # When an isolated job is asked of it
            run = runner.run(Invocation("j0", job, [], {}, ISOLATED, 1))
            outcome = await asyncio.wait_for(run, 10.0)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(zygote, signal.SIGCONT)
            await runner.stop(5.0)
        return outcome, runner.zygote

    outcome, zygote_after = asyncio.run(scenario())
    # Then past the deadline the zygote is dropped and the job runs, forked from the worker
    assert outcome.status is Status.OK, outcome.error
    assert json.loads(outcome.result)["ppid"] == os.getpid()
    assert zygote_after is None


@pytest.mark.timeout(30)
def test_a_starved_zygote_does_not_freeze_the_loop_while_it_owes_an_exit_code(tmp_path):
    # Given an isolated job running in a process the zygote forked, killed at its 0.5 s timeout
    app, _, hang = _app(tmp_path)

    async def scenario():
        runner = IsolatedRunner(app, Config(max_concurrent_isolated=2))
        await runner.start()
        run = asyncio.ensure_future(runner.run(Invocation("j0", hang, [], {}, SHORT, 1)))
        while not runner.pids():
            await asyncio.sleep(0.01)
        # When the zygote is stopped (as starved of CPU) before it reports that exit, for 1.5 s
        zygote = runner.zygote.pid
        os.kill(zygote, signal.SIGSTOP)
        threading.Timer(1.5, os.kill, (zygote, signal.SIGCONT)).start()
        gaps, last = [], time.monotonic()
        while not run.done():
            await asyncio.sleep(0.02)
            gaps.append(time.monotonic() - last)
            last = time.monotonic()
        outcome = run.result()
        await runner.stop(5.0)
        return outcome, max(gaps)

    outcome, longest_gap_s = asyncio.run(scenario())
    # Then the loop ran on meanwhile, and the job ended with the exit code the zygote reported
    assert longest_gap_s < 0.5
    assert outcome.status is Status.TIMEOUT, outcome.error
    assert outcome.extra["exitcode"] == -signal.SIGKILL
