"""Memory cgroups per process on a real host: made, limited, OOM-killed as ``memory``, removed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kqueue.backends.sqlite import SQLiteBackend
from kqueue.policy import read_trace
from kqueue.policy.status import Status
from kqueue.tiers.cgroup import CgroupMode, MemoryCgroups, own_cgroup_v2
from tests.conftest import kqueue_cmd, kqueue_env
from tests.support.tierapp import enqueue, wait_for


def _cgroups_or_skip() -> MemoryCgroups:
    cgroups = MemoryCgroups.detect(name="test")
    if not cgroups.active:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: this host lets the worker make no memory cgroup")
        pytest.skip("no memory cgroup can be made here (needs root on v1, or a delegated v2)")
    return cgroups


def test_own_cgroup_v2_path():
    assert own_cgroup_v2("0::/user.slice/app.service\n") == "/user.slice/app.service"
    assert own_cgroup_v2("4:memory:/x\n0::/\n") == "/"
    assert own_cgroup_v2("4:memory:/x\n") is None


def test_a_process_past_its_limit_is_oom_killed_and_its_group_removed():
    cgroups = _cgroups_or_skip()
    try:
        # Given a process that touches 200 MB, in a group limited to 64 MB
        code = (
            "import time; time.sleep(0.5); b = bytearray(200 << 20); "
            "b[::4096] = b'x' * (len(b) // 4096)"
        )
        child = subprocess.Popen([sys.executable, "-c", code])
        group = cgroups.attach(child.pid, 64.0)
        assert group is not None and group.is_dir()
        assert f"proc-{child.pid}" in Path(f"/proc/{child.pid}/cgroup").read_text()
        # When it runs, the kernel kills it inside its group: resident memory, not address space
        assert child.wait(timeout=30) == -9
        assert cgroups.oom_killed(child.pid)
        cgroups.release(child.pid)
        assert not group.exists()
    finally:
        cgroups.close()
    assert not cgroups.parent.exists()


def test_a_dead_workers_groups_are_swept_by_the_next_one():
    cgroups = _cgroups_or_skip()
    cgroups.close()
    if cgroups.mode is not CgroupMode.V1:
        pytest.skip("the sweep runs on v1's shared kqueue/ parent")
    # Given the groups of a worker that was killed (a pid that no longer exists)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    stale = cgroups.parent.parent / f"worker-{child.pid}-pool"
    (stale / "proc-1").mkdir(parents=True)
    # When the next worker looks for its cgroups, they are gone
    MemoryCgroups.detect(name="test").close()
    assert not stale.exists()


def test_a_process_within_its_limit_is_not_flagged_and_its_limit_moves_both_ways():
    cgroups = _cgroups_or_skip()
    try:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
        cgroups.attach(child.pid, 256.0)
        assert cgroups.set_limit(child.pid, 1024.0)  # up (v1: memsw first)
        assert cgroups.set_limit(child.pid, 128.0)  # and down
        assert child.wait(timeout=30) == 0
        assert not cgroups.oom_killed(child.pid)
    finally:
        cgroups.close()


APP = '''
import mmap, time
from pathlib import Path
from kqueue.job import App

HERE = Path(__file__).parent
app = App("sqlite:///" + str(HERE / "kq.db"))


def touch(megabytes):
    block = bytearray(int(megabytes) << 20)
    block[::4096] = b"x" * (len(block) // 4096)
    return len(block) >> 20


def reserve(megabytes):
    """Map a lot of address space, touch little of it: within a resident limit."""
    area = mmap.mmap(-1, int(megabytes) << 20)
    area[:4096] = b"x" * 4096
    return len(area) >> 20


for tier in ("pool", "isolated"):
    app.job(touch, name=f"{tier}.touch", tier=tier, max_memory_mb=100, max_attempts=1)
    app.job(reserve, name=f"{tier}.reserve", tier=tier, max_memory_mb=100, max_attempts=1)
'''


def test_worker_children_get_resident_limits_with_memory_as_the_kill_reason(tmp_path):
    _cgroups_or_skip().close()
    (tmp_path / "cgjobs.py").write_text(APP)
    (tmp_path / "kqueue.toml").write_text("pool_size = 1\npool_max_size = 1\n")
    backend = SQLiteBackend(tmp_path / "kq.db")
    run = ("run", "--app", "cgjobs:app", "--config", "kqueue.toml", "--trace-out", "trace.csv")
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen(
            kqueue_cmd(*run), cwd=tmp_path, env=kqueue_env(tmp_path), stdout=log, stderr=log
        )
    try:
        # Given jobs limited to 100 MB: two touch 300 MB, two map 2 GB and touch one page
        for tier in ("pool", "isolated"):
            enqueue(backend, f"{tier}.touch", 300)
            enqueue(backend, f"{tier}.reserve", 2048)
        trace = tmp_path / "trace.csv"
        assert wait_for(lambda: _rows(trace) == 4, 90, 0.2), (tmp_path / "worker.log").read_text()[
            -3000:
        ]
        worker.terminate()
        assert worker.wait(timeout=30) == 0
    finally:
        backend.close()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    rows = read_trace(trace).set_index("job_class")
    # Then the resident limit stops the jobs that use memory, as status memory ...
    assert rows.loc["pool.touch", "status"] == Status.MEMORY
    assert rows.loc["isolated.touch", "status"] == Status.MEMORY
    # ... and lets through the ones that only reserve address space (RLIMIT_AS would not)
    assert rows.loc["pool.reserve", "status"] == Status.OK
    assert rows.loc["isolated.reserve", "status"] == Status.OK
    # And the worker left no group behind
    time.sleep(0.2)
    leftovers = list(Path("/sys/fs/cgroup/memory/kqueue").glob(f"worker-{worker.pid}-*"))
    assert leftovers == []


def _rows(trace) -> int:
    """Rows in the worker's trace so far (0 before the first is written)."""
    from kqueue.errors import TraceError
    from kqueue.policy import read_trace

    try:
        return len(read_trace(trace)) if trace.exists() else 0
    except TraceError:  # the header is written before the first row
        return 0
