"""Freed job memory goes back to the OS: real processes, their resident memory read from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kqueue.job import App
from kqueue.ops.synthetic import touch_memory
from kqueue.policy import trim as trim_policy
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.status import Status
from kqueue.policy.trim import POOL_IDLE_S
from kqueue.tiers import heap
from kqueue.tiers.base import Invocation
from kqueue.tiers.pool import PoolRunner
from kqueue.tiers.procs import rss_mb

ROOT = Path(__file__).resolve().parents[3]
POOL = JobSettings(Tier.POOL, None, 60.0, 1024.0, 1)
HELD_MB = 24  # below glibc's 32 MB cap of the mmap threshold: kept in the heap
glibc = pytest.mark.skipif(not heap.available(), reason="malloc_trim is glibc's")


def hold_and_free(megabytes: int) -> int:
    """A job that fills and frees a block of ``megabytes`` MB twice, as the soak's jobs do.

    The first block is mapped on its own and unmapped when freed, which raises glibc's mmap
    threshold to its size; so the second comes from the heap, and stays there when freed.
    """
    for _ in range(2):
        block = touch_memory(megabytes)
        del block
    return os.getpid()


def _fresh_python(code: str) -> str:
    """What ``code`` prints, run by a fresh interpreter that imports this tree."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_process_holds_freed_blocks_until_it_trims():
    # Given a fresh process whose job filled and freed 24 MB twice
    code = (
        "import sys\n"
        "from kqueue.tiers import heap\n"
        "from kqueue.tiers.procs import own_memory_mb\n"
        "from tests.unit.tiers.test_heap import hold_and_free\n"
        "before = own_memory_mb()[1]\n"
        f"hold_and_free({HELD_MB})\n"
        "kept = own_memory_mb()[1]\n"
        "released = heap.trim()\n"
        "print(before, kept, own_memory_mb()[1], released, heap.available())\n"
    )
    before, kept, after, released, available = _fresh_python(code).split()
    before, kept, after = float(before), float(kept), float(after)
    if available != "True":
        # Then, off glibc, trim does nothing and says so
        assert released == "False"
        return
    # Then it still held most of them after the free, and gave them back when it trimmed
    assert kept - before > HELD_MB / 2, (before, kept)
    assert kept - after > HELD_MB / 2, (kept, after)
    assert released == "True"


@contextlib.asynccontextmanager
async def _holding_pool(app, hold):
    """A pool of one process that ran ``hold`` (``HELD_MB`` left in its heap): (pool, its pid)."""
    # the pool forks from this process: free heap it still holds resident would be the
    # child's too, and a job filling it would not grow the child's resident memory at all
    # (late in a full test run the parent holds tens of MB so)
    heap.trim()
    pool = PoolRunner(app, Config(pool_size=1, pool_max_size=1))
    await pool.start()
    try:
        outcome = await pool.run(Invocation("j0", hold, [HELD_MB], {}, POOL, 1))
        assert outcome.status is Status.OK, outcome.error
        yield pool, int(outcome.result)
    finally:
        await pool.stop(5.0)


@glibc
def test_a_pool_process_gives_memory_back_once_idle(tmp_path):
    # Given a pool process that ran a job which left 24 MB in its heap
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    job = app.job(hold_and_free, name="hold")

    async def scenario():
        async with _holding_pool(app, job) as (pool, pid):
            held_mb = rss_mb(pid)
            # When no request comes for a while
            deadline = time.monotonic() + 10 * POOL_IDLE_S + 10
            while rss_mb(pid) > held_mb - HELD_MB / 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            idle_mb = rss_mb(pid)
            # And a job comes again, it still runs there
            again = await pool.run(Invocation("j2", job, [1], {}, POOL, 1))
            return held_mb, idle_mb, again, pid

    held_mb, idle_mb, again, pid = asyncio.run(scenario())
    # Then it gave most of them back by itself, and served the next job in the same process
    assert held_mb - idle_mb > HELD_MB / 2, (held_mb, idle_mb)
    assert again.status is Status.OK and int(again.result) == pid


def nap(seconds: float) -> int:
    """A short job that allocates nothing to speak of."""
    time.sleep(seconds)
    return os.getpid()


@glibc
def test_a_pool_process_never_idle_gives_memory_back_between_jobs(tmp_path, monkeypatch):
    # Given a pool process whose trim is overdue 1.5 s after its last one, and a job that left
    # 24 MB in its heap (the child forks with the patched rule)
    monkeypatch.setattr(trim_policy, "POOL_BUSY_TRIM_S", 1.5)
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    hold, short = app.job(hold_and_free, name="hold"), app.job(nap, name="nap")

    async def scenario():
        async with _holding_pool(app, hold) as (pool, pid):
            held_mb, readings = rss_mb(pid), []
            # When jobs come back to back, never leaving it idle for POOL_IDLE_S
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline and (not readings or readings[-1] > held_mb - 12):
                again = await pool.run(Invocation("j", short, [0.05], {}, POOL, 1))
                assert again.status is Status.OK and int(again.result) == pid
                readings.append(rss_mb(pid))
            return held_mb, readings

    held_mb, readings = asyncio.run(scenario())
    # Then it gave most of them back between two jobs, well before the deadline
    assert readings[-1] < held_mb - HELD_MB / 2, (held_mb, readings[-5:])
    assert len(readings) < 100, len(readings)


@pytest.mark.parametrize(
    ("floor_mb", "after_mb", "due"),
    [
        (50.0, 50.5, False),  # grew by less than TRIM_AFTER_GROWTH_MB: not worth a trim
        (50.0, 51.0, True),
        (50.0, 90.0, True),
        (50.0, 49.0, False),  # gave back by itself (a mapped block)
    ],
)
@glibc
def test_a_trim_is_due_after_a_job_that_grew_the_process(floor_mb, after_mb, due):
    kept = heap.PoolHeap(floor_mb)
    kept.after_job(after_mb)
    assert kept.due is due
    # and after a trim the floor is what the process holds then
    kept.trim(lambda: after_mb)
    assert (kept.floor_mb, kept.due, kept.trims) == (after_mb, False, 1)


@glibc
def test_the_worker_trims_at_most_every_interval_and_only_after_jobs():
    trims = heap.PeriodicTrim()  # WORKER_TRIM_INTERVAL_S = 5
    start_s = time.monotonic()
    assert not trims.maybe(start_s + 10)  # no inline job ran
    trims.note_job()
    assert not trims.maybe(start_s + 1)  # too soon after the start
    assert trims.maybe(start_s + 10)
    trims.note_job()
    assert not trims.maybe(start_s + 12)  # too soon after the last
    assert trims.maybe(start_s + 15.5)
    assert trims.trims == 2


def test_freeze_for_fork_moves_the_objects_out_of_the_collectors_reach():
    # In a fresh process: this one's objects are the test runner's.
    code = (
        "import gc\n"
        "from kqueue.tiers import heap\n"
        "before = gc.get_freeze_count()\n"
        "heap.freeze_for_fork()\n"
        "print(before, gc.get_freeze_count(), sum(gc.get_count()))\n"
    )
    before, frozen, young = (int(v) for v in _fresh_python(code).split())
    assert before == 0
    assert frozen > 1000  # the interpreter's and kqueue's objects
    assert young < 100  # nothing left in the generations the collector scans


def test_freeze_for_fork_collects_the_cycles_the_app_left_before_freezing():
    # Given, in a fresh process, a reference cycle nobody holds (garbage an app's import leaves)
    code = (
        "import gc, weakref\n"
        "from kqueue.tiers import heap\n"
        "class Node: pass\n"
        "node = Node(); node.me = node; alive = weakref.ref(node); del node\n"
        "heap.freeze_for_fork()\n"
        "print(alive() is None)\n"
    )
    # When the worker freezes its heap, Then the cycle was collected, not frozen with the rest
    assert _fresh_python(code).split() == ["True"]
