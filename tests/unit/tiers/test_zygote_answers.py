"""The zygote's answers reach the requests they answer, whatever the worker's descriptors.

Real zygotes and processes; descriptors run out through ``RLIMIT_NOFILE``, as under a low ulimit.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import resource
import time

import psutil
import pytest

from kqueue.policy.status import Status
from kqueue.tiers import child
from kqueue.tiers.base import Invocation
from kqueue.tiers.zygote import Zygote
from tests.unit.tiers.test_isolated_stop import _serving
from tests.unit.tiers.test_isolated_zygote import ISOLATED, _app


def _lowest_free_fd(pid: int) -> int:
    open_fds = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
    return min(set(range(len(open_fds) + 1)) - open_fds)


@contextlib.contextmanager
def _out_of_descriptors(pid: int):
    """No descriptor number below ``pid``'s limit is free while inside."""
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (_lowest_free_fd(pid), hard))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))


def _release(spawned) -> None:
    _, conn, pidfd = spawned
    conn.close()
    if pidfd is not None:
        os.close(pidfd)


@pytest.mark.timeout(30)
def test_a_fork_whose_descriptors_the_worker_cannot_take_fails_fast_and_the_zygote_serves_on(
    tmp_path,
):
    # Given a zygote that serves
    app, _, _ = _app(tmp_path)
    zygote = Zygote(app, child.serve)
    try:
        # When the worker is out of descriptors as the zygote's answer arrives (the kernel
        # truncates its SCM_RIGHTS)
        began = time.monotonic()
        with _out_of_descriptors(os.getpid()), pytest.raises(OSError) as failed:
            zygote.spawn()
        failed_s = time.monotonic() - began
        # Then that spawn fails at once with EMFILE, and the same zygote forks the next one
        again = zygote.spawn()
        _release(again)
        assert failed.value.errno == errno.EMFILE
        assert failed_s < 5.0
        assert psutil.Process(again[0]).ppid() == zygote.pid
    finally:
        zygote.close()


@pytest.mark.timeout(30)
def test_a_fork_that_fails_after_one_that_worked_fails_the_later_job(tmp_path):
    # Given an isolated job whose process the zygote forked, not yet read by the worker
    app, job, _ = _app(tmp_path)

    async def scenario():
        runner = await _serving(app)
        loop = asyncio.get_running_loop()
        loop.remove_reader(runner.zygote.fileno())
        first = asyncio.ensure_future(runner.run(Invocation("first", job, [], {}, ISOLATED, 1)))
        await asyncio.sleep(0)
        time.sleep(0.5)  # the zygote answers (P)
        # When the next one's fork fails in the zygote (F), and the worker reads both answers
        with _out_of_descriptors(runner.zygote.pid):
            second = asyncio.ensure_future(
                runner.run(Invocation("second", job, [], {}, ISOLATED, 1))
            )
            await asyncio.sleep(0)
            time.sleep(1.0)
        loop.add_reader(runner.zygote.fileno(), runner._zygote_readable)
        outcomes = await asyncio.gather(first, second, return_exceptions=True)
        await runner.stop(5.0)
        return outcomes

    first, second = asyncio.run(scenario())
    # Then the first job ran in the process forked for it, and the second got the failure
    assert not isinstance(first, BaseException), first
    assert first.status is Status.OK, first.error
    assert json.loads(first.result)["pid"] > 0
    assert isinstance(second, OSError) and second.errno == errno.EMFILE
