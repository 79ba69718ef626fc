"""Isolated processes come from the isolated tier's zygote, and from the worker once it is gone.

Real isolated processes driven by an ``IsolatedRunner`` on an asyncio loop in this process (the
worker's role), which writes a block of memory after its tier started, as a worker's inline jobs
do while it runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import psutil
import pytest

from kqueue.job import App
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.status import Status
from kqueue.tiers import inherit
from kqueue.tiers.base import Invocation
from kqueue.tiers.isolated import IsolatedRunner
from kqueue.tiers.procs import ZYGOTE_NAME

ISOLATED = JobSettings(Tier.ISOLATED, None, 60.0, 1024.0, 1)
SHORT = JobSettings(Tier.ISOLATED, None, 0.5, 1024.0, 1)
BLOCK_MB = 32
_MB = 1024 * 1024


def report() -> dict:
    """An isolated job: this process's pid, parent and private memory (USS), MB."""
    with open("/proc/self/smaps_rollup") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    kb = sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty"))
    return {"pid": os.getpid(), "ppid": os.getppid(), "uss_mb": kb / 1024}


def hang() -> None:
    """Runs until killed."""
    time.sleep(60)


def _app(tmp_path):
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    return app, app.job(report, name="report"), app.job(hang, name="hang")


@pytest.mark.timeout(60)
def test_isolated_processes_come_from_the_zygote_without_the_workers_later_heap(tmp_path):
    # Given an isolated tier started before the worker wrote 32 MB of its heap
    app, job, hang_job = _app(tmp_path)

    async def scenario():
        runner = IsolatedRunner(app, Config(max_concurrent_isolated=2))
        await runner.start()
        zygote = runner.zygote.pid
        assert runner.standing_pids() == [zygote]  # the memory budget counts it in the tree
        block = bytearray(BLOCK_MB * _MB)
        block[::4096] = b"\1" * len(block[::4096])
        # When four jobs run, two at once, and one more runs past its timeout
        runs = [runner.run(Invocation(f"j{i}", job, [], {}, ISOLATED, 1)) for i in range(4)]
        outcomes = await asyncio.gather(*runs)
        late = await runner.run(Invocation("late", hang_job, [], {}, SHORT, 1))
        await runner.stop(5.0)
        return zygote, outcomes, late

    zygote, outcomes, late = asyncio.run(scenario())
    # Then each ran in a process of its own, a child of the zygote
    assert all(o.status is Status.OK for o in outcomes), [o.error for o in outcomes]
    reports = [json.loads(o.result) for o in outcomes]
    assert len({r["pid"] for r in reports}) == 4
    assert {r["ppid"] for r in reports} == {zygote}
    # holding no private copy of the block the worker wrote after the zygote was forked
    assert all(r["uss_mb"] < BLOCK_MB / 2 for r in reports), reports
    # and a job past its timeout is killed and reported so, its exit status from the zygote
    assert late.status is Status.TIMEOUT, late
    assert late.extra["exitcode"] == -signal.SIGKILL
    assert inherit.held_fds() == {}


@pytest.mark.timeout(60)
def test_isolated_jobs_fork_from_the_worker_once_the_zygote_is_gone(tmp_path):
    # Given an isolated tier whose zygote was SIGKILLed
    app, job, _ = _app(tmp_path)

    async def scenario():
        runner = IsolatedRunner(app, Config(max_concurrent_isolated=2))
        await runner.start()
        runner.zygote.wait_ready()
        zygote = psutil.Process(runner.zygote.pid)
        assert zygote.name() == ZYGOTE_NAME
        zygote.send_signal(signal.SIGKILL)
        zygote.wait(10)
        # When two jobs run
        runs = [runner.run(Invocation(f"j{i}", job, [], {}, ISOLATED, 1)) for i in range(2)]
        outcomes = await asyncio.gather(*runs)
        after = runner.zygote
        await runner.stop(5.0)
        return outcomes, after

    outcomes, after = asyncio.run(scenario())
    # Then they ran, forked by the worker, which no longer has a zygote
    assert after is None
    assert [o.status for o in outcomes] == [Status.OK, Status.OK], [o.error for o in outcomes]
    assert {json.loads(o.result)["ppid"] for o in outcomes} == {os.getpid()}
