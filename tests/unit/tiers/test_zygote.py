"""Every generation of pool processes comes from the zygote: same descriptors, same memory.

Real pool processes driven by a ``PoolRunner`` on an asyncio loop in this process (the worker's
role), which opens a file and writes a block of memory after its pool started, as a worker
does while it runs jobs (the soak's app opens its attempts log at its first job).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import re
import resource
import signal
import subprocess
import time

import psutil
import pytest

from kqueue.job import App
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.fork import runs_zygote
from kqueue.policy.status import Status
from kqueue.tiers import inherit
from kqueue.tiers.base import Invocation
from kqueue.tiers.pool import PoolRunner
from kqueue.tiers.procs import ZYGOTE_NAME, ended, kill_tree
from kqueue.worker.budget import MemoryBudget, tree_pss_mb

POOL = JobSettings(Tier.POOL, None, 60.0, 1024.0, 1)
GENERATIONS = 6
BLOCK_MB = 32
_MB = 1024 * 1024


def fd_kinds() -> list[str]:
    """What this process's descriptors point at, numbers blanked (``pipe:[N]``, a path...)."""
    kinds = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed already
            kinds.append(re.sub(r"\d+", "N", os.readlink(f"/proc/self/fd/{name}")))
    return sorted(kinds)


def private_mb() -> float:
    """This process's private memory (USS), MB."""
    with open("/proc/self/smaps_rollup") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    kb = sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty"))
    return kb / 1024


def report() -> dict:
    """A pool job: this process's pid, parent, descriptors and private memory."""
    return {"pid": os.getpid(), "ppid": os.getppid(), "fds": fd_kinds(), "uss_mb": private_mb()}


def _app(tmp_path):
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    return app, app.job(report, name="report")


async def _generations(app, job, tmp_path) -> tuple[list[dict], int]:
    """One pool process recycled after every job; the worker opens a file and writes a block
    of memory after the first generation started, and rewrites the block after each job."""
    pool = PoolRunner(app, Config(pool_size=1, pool_max_size=1, max_jobs_per_worker=1))
    await pool.start()
    log = os.open(tmp_path / "worker.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    block = bytearray(BLOCK_MB * _MB)
    block[::4096] = b"\1" * len(block[::4096])  # resident in the worker before the next fork
    reports = []
    try:
        for i in range(GENERATIONS):
            outcome = await pool.run(Invocation(f"g{i}", job, [], {}, POOL, 1))
            assert outcome.status is Status.OK, outcome.error
            reports.append(outcome.result)
            block[::4096] = bytes([i + 2]) * len(block[::4096])  # the worker rewrites its heap
            await asyncio.sleep(0.2)  # the replacement has started and run its prepare
    finally:
        os.close(log)
        recycled = pool.recycled
        await pool.stop(5.0)
    return [json.loads(r) for r in reports], recycled


@pytest.mark.timeout(120)
def test_each_replacement_has_the_first_generations_descriptors_and_memory(tmp_path):
    # Given a pool of one process recycled after every job, in a worker that opened a file and
    # wrote 32 MB after the pool started
    app, job = _app(tmp_path)
    # When six generations run one job each
    reports, recycled = asyncio.run(_generations(app, job, tmp_path))
    # Then each job ran in a new process, forked by the zygote, not by the worker
    assert recycled == GENERATIONS
    assert len({r["pid"] for r in reports}) == GENERATIONS
    assert all(r["ppid"] != os.getpid() for r in reports), reports
    assert len({r["ppid"] for r in reports}) == 1, reports
    # and every replacement holds the same kinds of descriptors as the first generation
    # (not the worker's file opened since)
    first = reports[0]
    for r in reports[1:]:
        assert r["fds"] == first["fds"], (first, r)
    assert not any("worker.log" in kind for r in reports for kind in r["fds"])
    # and none holds a private copy of the block the worker wrote after the first fork
    for r in reports[1:]:
        assert r["uss_mb"] < first["uss_mb"] + BLOCK_MB / 4, (first, r)
    assert inherit.held_fds() == {}


@pytest.mark.timeout(120)
def test_pool_processes_die_with_the_zygote_and_the_worker_forks_their_replacements(tmp_path):
    # Given a pool of two processes forked by the zygote
    app, job = _app(tmp_path)

    async def scenario():
        pool = PoolRunner(app, Config(pool_size=2, pool_max_size=2))
        await pool.start()
        zygote = psutil.Process(pool.zygote.pid)
        assert zygote.name() == ZYGOTE_NAME
        first = set(pool.pids())
        assert {p.pid for p in zygote.children()} == first
        # When the zygote is SIGKILLed
        zygote.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (set(pool.pids()) & first or len(pool.pids()) < 2):
            await asyncio.sleep(0.05)
        # Then its children died with it and were replaced, now forked by the worker
        outcome = await pool.run(Invocation("after", job, [], {}, POOL, 1))
        pids, zygote_after = set(pool.pids()), pool.zygote
        await pool.stop(5.0)
        return first, pids, zygote_after, outcome

    first, pids, zygote_after, outcome = asyncio.run(scenario())
    assert not pids & first
    assert len(pids) == 2
    assert zygote_after is None
    assert outcome.status is Status.OK, outcome.error
    assert json.loads(outcome.result)["ppid"] == os.getpid()


@pytest.mark.timeout(120)
def test_a_fork_the_zygote_cannot_make_fails_alone_and_the_zygote_and_pool_serve_on(tmp_path):
    # Given a pool of one process forked by the zygote
    app, job = _app(tmp_path)

    async def scenario():
        pool = PoolRunner(app, Config(pool_size=1, pool_max_size=3))
        await pool.start()
        zygote_pid, first = pool.zygote.pid, set(pool.pids())
        soft, hard = resource.prlimit(zygote_pid, resource.RLIMIT_NOFILE)
        # When the zygote is out of descriptors (EMFILE, as under a low ulimit: no number
        # below its limit free) and asked to fork
        open_fds = {int(fd) for fd in os.listdir(f"/proc/{zygote_pid}/fd")}
        lowest_free = min(set(range(len(open_fds) + 1)) - open_fds)
        resource.prlimit(zygote_pid, resource.RLIMIT_NOFILE, (lowest_free, hard))
        try:
            with pytest.raises(OSError, match="could not fork") as failed:
                pool._spawn()
        finally:
            resource.prlimit(zygote_pid, resource.RLIMIT_NOFILE, (soft, hard))
        # Then that one spawn failed with the zygote's errno, and the zygote and its process
        # live on: the pool runs a job, and its next process is forked by the same zygote
        outcome = await pool.run(Invocation("after", job, [], {}, POOL, 1))
        grown = pool._spawn().child.pid
        alive = psutil.pid_exists(zygote_pid) and pool.zygote is not None
        parent = psutil.Process(grown).ppid()
        await pool.stop(5.0)
        return failed.value.errno, first, set(pool.pids()), alive, parent, zygote_pid, outcome

    errno_, first, _, alive, parent, zygote_pid, outcome = asyncio.run(scenario())
    assert errno_ == errno.EMFILE
    assert alive and parent == zygote_pid
    assert outcome.status is Status.OK, outcome.error
    assert json.loads(outcome.result)["pid"] in first


@pytest.mark.timeout(120)
def test_a_pool_process_exit_code_is_the_one_it_exited_with_not_a_guessed_sigkill(tmp_path):
    # Given a pool process forked by the zygote, running a job that exits the process with 7
    # after starting a child that outlives it holding every descriptor it had (the timed
    # wait on multiprocess's sentinel, which that child holds, gave up and read SIGKILL)
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    exits = app.job(_exit_leaving_a_child, name="exits")

    async def scenario():
        pool = PoolRunner(app, Config(pool_size=1, pool_max_size=1))
        await pool.start()
        try:
            return await pool.run(Invocation("exit", exits, [], {}, POOL, 1))
        finally:
            await pool.stop(5.0)

    outcome = asyncio.run(scenario())
    # Then its death is reported with exit code 7
    assert outcome.status is Status.KILLED
    assert outcome.extra["exitcode"] == 7, outcome.error


def _exit_leaving_a_child() -> None:
    """A pool job: fork a child that sleeps 3 s holding this process's descriptors, exit 7."""
    if os.fork() == 0:
        time.sleep(3.0)
        os._exit(0)
    os._exit(7)


def test_a_kill_through_a_pidfd_never_reaches_a_process_that_took_over_the_pid():
    # Given a pidfd of a process that ended and was reaped, and a live process standing in
    # for one the kernel later gave the same pid to
    gone = subprocess.Popen(["true"])
    pidfd = os.pidfd_open(gone.pid)
    gone.wait()
    other = subprocess.Popen(["sleep", "30"])
    try:
        # When the pool kills "its" process by that pid, through the pidfd
        kill_tree(other.pid, pidfd=pidfd)
        # Then the other process lives on (a kill by pid would have ended it), and the pool's
        # memory poll, which asks ``ended`` first, would not read the other's memory either
        time.sleep(0.1)
        assert other.poll() is None
        live = os.pidfd_open(other.pid)
        assert ended(pidfd) and not ended(live)
        os.close(live)
    finally:
        os.close(pidfd)
        other.kill()
        other.wait()


async def _zygote_and_budget(app, config: Config) -> tuple[bool, list[int], float, float]:
    """Start an empty pool (``pool_size`` 0) under ``config``: whether it has a zygote, its
    standing pids, what the budget measures, and this process's PSS plus the standing ones'."""
    pool = PoolRunner(app, config)
    await pool.start()
    try:
        measured_mb = MemoryBudget(config, {Tier.POOL: pool}).sample(0.0)
        pids = [os.getpid(), *pool.standing_pids()]
        return pool.zygote is not None, pids[1:], measured_mb, sum(map(tree_pss_mb, pids))
    finally:
        await pool.stop(5.0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pool_max_size", [0, 2])
def test_the_pool_runs_a_zygote_exactly_when_the_policy_says_and_the_budget_counts_it(
    tmp_path, pool_max_size
):
    # Given a pool that starts empty and may grow to pool_max_size (the twin's rule for when
    # the tree holds a zygote is kqueue.policy.fork.runs_zygote)
    app, _ = _app(tmp_path)
    config = Config(pool_size=0, pool_max_size=pool_max_size, memory_budget_mb=4096)
    # When it starts
    has_zygote, standing, measured_mb, tree_mb = asyncio.run(_zygote_and_budget(app, config))
    # Then it has a zygote exactly when the rule says, and the budget's measure is this
    # process and the zygote (which takes its share of the pages they share)
    assert has_zygote is runs_zygote(config)
    assert len(standing) == int(has_zygote)
    assert measured_mb == pytest.approx(tree_mb, abs=2.0)
