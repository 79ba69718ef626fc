"""One malloc arena for the worker's threads (``kqueue.worker.allocator``), checked for real."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from kqueue.worker.allocator import ARENA_MAX_ENV, TUNABLES_ENV, limit_arenas
from tests.conftest import kqueue_env, run_kqueue
from tests.support.tierapp import enqueue, write_app

pytestmark = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="arenas are glibc's; other C libraries differ"
)

# Eight threads allocate at the same moment (each C-level malloc, not Python's small-object
# allocator); the process then reports how many arenas glibc made.
THREADS_SCRIPT = """
import sys, threading
from kqueue.worker.allocator import arenas_in_use, limit_arenas
if sys.argv[1] == "limit":
    assert limit_arenas()
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    blocks = [bytearray(4096) for _ in range(200)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print(arenas_in_use())
"""


def _arenas_after_threads(cwd, mode: str) -> int:
    env = kqueue_env(cwd)
    env.pop(ARENA_MAX_ENV, None)  # the operator's settings would make limit_arenas stand back
    env.pop(TUNABLES_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", THREADS_SCRIPT, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(done.stdout.strip())


def test_limited_threads_share_one_arena_where_glibc_would_give_them_several(tmp_path):
    assert _arenas_after_threads(tmp_path, "limit") == 1
    assert _arenas_after_threads(tmp_path, "default") > 1


def test_an_operator_setting_of_the_arena_limit_stands(monkeypatch):
    monkeypatch.setenv(ARENA_MAX_ENV, "4")
    assert limit_arenas() is False
    monkeypatch.delenv(ARENA_MAX_ENV)
    monkeypatch.setenv(TUNABLES_ENV, "glibc.malloc.arena_max=2")
    assert limit_arenas() is False


def test_a_limit_below_one_arena_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        limit_arenas(0)


ARENAS_JOB = """

@app.job(name="inline.arenas", tier="inline")
def inline_arenas():
    from kqueue.worker.allocator import arenas_in_use
    blocks = [bytearray(4096) for _ in range(200)]
    time.sleep(0.2)  # the others run beside it, each on a thread of its own
    with open(HERE / "arenas.txt", "a") as handle:
        handle.write(f"{arenas_in_use()}\\n")
"""


def _arenas_seen_by_inline_jobs(folder) -> list[str]:
    """Six concurrent inline jobs in a real ``kqueue run``: the arena count each one saw."""
    folder.mkdir()
    backend = write_app(folder)
    with open(folder / "tierjobs.py", "a") as module:
        module.write(ARENAS_JOB)
    enqueue(backend, "inline.arenas", count=6)
    done = run_kqueue(
        folder, "run", "--app", "tierjobs:app", "--burst", "--max-concurrent-inline", "6"
    )
    assert done.returncode == 0, done.stderr
    return (folder / "arenas.txt").read_text().split()


def test_kqueue_run_gives_its_inline_threads_one_arena(tmp_path, monkeypatch):
    monkeypatch.delenv(ARENA_MAX_ENV, raising=False)
    monkeypatch.delenv(TUNABLES_ENV, raising=False)
    assert _arenas_seen_by_inline_jobs(tmp_path / "one") == ["1"] * 6
    # the same run with glibc's default limit (eight per core) set by the operator
    monkeypatch.setenv(ARENA_MAX_ENV, "16")
    assert max(map(int, _arenas_seen_by_inline_jobs(tmp_path / "default"))) > 1
