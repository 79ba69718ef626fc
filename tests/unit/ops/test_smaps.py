"""A process's memory by kind of mapping: a child's writes to inherited pages make them its own."""

from __future__ import annotations

import os
import signal

import pytest

from kqueue.ops.smaps import breakdown

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps"), reason="Linux")
BLOCK_MB = 32


def _child_after(block: bytearray, write: bool) -> dict:
    """The breakdown of a child forked now that writes every page of ``block`` (or not)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        if write:
            for offset in range(0, len(block), 4096):
                block[offset] = 2
        os.write(ready_w, b"x")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    try:
        os.read(ready_r, 1)
        return breakdown(pid, inherited_from=os.getpid())
    finally:
        os.close(done_w)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_process_that_is_gone_reads_as_no_kinds():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert breakdown(pid) == {}


def test_copy_on_write_moves_inherited_pages_from_shared_to_private():
    # Given a touched 32 MB block in this process (an anonymous mapping of its own: above the
    # mmap threshold)
    block = bytearray(BLOCK_MB * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    # When a child forked from it only reads, and another writes every page
    reading, writing = _child_after(block, write=False), _child_after(block, write=True)
    # Then both map it in an inherited range; the reader shares it, the writer owns its copy
    mine = breakdown(os.getpid())
    assert {"file", "heap"} <= set(mine) and "anon" in mine
    shared = reading["anon-inherited"]
    owned = writing["anon-inherited"]
    assert shared.shared_dirty_kb >= BLOCK_MB * 1024 * 0.9, shared
    assert owned.private_dirty_kb >= shared.private_dirty_kb + BLOCK_MB * 1024 * 0.9, owned
    assert owned.shared_dirty_kb <= shared.shared_dirty_kb - BLOCK_MB * 1024 * 0.9, owned
    assert owned.pss_kb >= shared.pss_kb + BLOCK_MB * 1024 * 0.4, (shared, owned)
