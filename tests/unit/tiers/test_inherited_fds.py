"""Forked children let go of the worker's handles on their siblings; replacements leak nothing.

Real pool and isolated processes, driven by their runners on an asyncio loop in this process
(the worker's role): each pool job reports the descriptors of the process that ran it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time

import pytest

from kqueue.job import App
from kqueue.policy.config import Config, JobSettings, Tier
from kqueue.policy.status import Status
from kqueue.tiers import inherit
from kqueue.tiers.base import Invocation
from kqueue.tiers.isolated import IsolatedRunner
from kqueue.tiers.pool import PoolRunner

POOL = JobSettings(Tier.POOL, None, 60.0, 1024.0, 1)
ISOLATED = JobSettings(Tier.ISOLATED, None, 60.0, 1024.0, 1)
REPLACEMENTS = 12


def fd_targets(pid: int | str = "self") -> dict[int, str]:
    """What each open descriptor of ``pid`` points at (``socket:[inode]``, ``pipe:[inode]``...)."""
    targets = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor, closed already
            targets[int(name)] = os.readlink(f"/proc/{pid}/fd/{name}")
    return targets


def my_fds() -> dict:
    """A pool job: this process's pid and the targets of its descriptors."""
    return {"pid": os.getpid(), "targets": sorted(fd_targets().values())}


def _app(tmp_path):
    app = App(f"sqlite:///{tmp_path / 'kqueue.db'}")
    return app, app.job(my_fds, name="fds"), app.job(time.sleep, name="nap")


async def _replace_under_load(app, report, nap):
    """Run ``REPLACEMENTS`` pool jobs (each recycles its process) while isolated jobs run.

    Returns the reports in order; the targets of the descriptors this process held for each
    child while both tiers were busy, by pid (a pipe's two ends show the same target, so a
    child's own sentinel pipes match what the parent holds for it, and only for it); and how
    many pool processes were recycled.
    """
    pool = PoolRunner(app, Config(pool_size=2, pool_max_size=2, max_jobs_per_worker=1))
    isolated = IsolatedRunner(app, Config(max_concurrent_isolated=2))
    await pool.start()
    await pool.ready()  # its processes are forked without waiting
    await isolated.start()
    sleepers = [
        asyncio.ensure_future(isolated.run(Invocation(f"i{i}", nap, [3.0], {}, ISOLATED, 1)))
        for i in range(2)
    ]
    await asyncio.sleep(0.5)  # both isolated children are alive through the replacements
    reports, held = [], {}
    for i in range(REPLACEMENTS):
        targets = fd_targets()
        for child in _children(pool, isolated):
            fds = (child.conn.fileno(), child._exit_fd, *inherit.popen_fds(child.process))
            held.setdefault(child.pid, set()).update(targets[fd] for fd in fds if fd in targets)
        outcome = await pool.run(Invocation(f"p{i}", report, [], {}, POOL, 1))
        assert outcome.status is Status.OK, outcome.error
        reports.append(json.loads(outcome.result))
    await asyncio.gather(*sleepers)
    await pool.stop(5.0)
    await isolated.stop(5.0)
    return reports, held, pool.recycled


def _children(pool, isolated):
    """The parent's handles (``ChildProcess``) on every live pool and isolated process."""
    children = [p.child for p in pool._procs.values()] + [c for c, _ in isolated._jobs.values()]
    return [c for c in children if c.alive]  # an ended one may await its exit code


@pytest.mark.timeout(120)
def test_replaced_pool_processes_hold_no_sibling_handles_and_the_worker_none_left(tmp_path):
    # Given the worker's descriptors before its tiers start
    app, report, nap = _app(tmp_path)
    gc.collect()  # an earlier test's unreferenced connections close now, not mid-test
    before = fd_targets()
    # When 12 pool processes are replaced one after another while two isolated children run
    reports, held, recycled = asyncio.run(_replace_under_load(app, report, nap))
    # Then every job ran in a process of its own, forked while the worker held handles on
    # its other children, and none of those handles is among a child's descriptors
    assert recycled == REPLACEMENTS
    assert len({r["pid"] for r in reports}) == REPLACEMENTS
    assert held, "the worker held no handles on children: the scenario did not run"
    for r in reports:
        siblings = set().union(*(t for pid, t in held.items() if pid != r["pid"]))
        assert not siblings & set(r["targets"]), r
        assert "anon_inode:[pidfd]" not in r["targets"], r
    # and a process forked late, beside four live siblings, holds no more than the first did
    assert len(reports[-1]["targets"]) <= len(reports[0]["targets"]), reports
    # and the worker is back to the descriptors it had before (none left of the 14 children)
    assert inherit.held_fds() == {}
    gc.collect()
    assert sorted(fd_targets().values()) == sorted(before.values())


@pytest.mark.timeout(60)
def test_a_child_does_not_hold_the_parent_end_of_its_own_pipe(tmp_path):
    # Given a pool of one process
    app, report, _ = _app(tmp_path)

    async def scenario():
        pool = PoolRunner(app, Config(pool_size=1, pool_max_size=1))
        await pool.start()
        await pool.ready()  # its processes are forked without waiting
        (proc,) = pool._procs.values()
        parent_end = fd_targets()[proc.child.conn.fileno()]
        outcome = await pool.run(Invocation("p", report, [], {}, POOL, 1))
        await pool.stop(5.0)
        return parent_end, json.loads(outcome.result)

    # When it reports its descriptors
    parent_end, reported = asyncio.run(scenario())
    # Then the worker's end of its pipe is not among them (its own end is)
    assert parent_end.startswith("socket:[")
    assert parent_end not in reported["targets"]
    assert sum(t.startswith("socket:[") for t in reported["targets"]) >= 1
