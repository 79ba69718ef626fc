"""Reading memory from /proc: distinct anonymous pages are counted once however shared."""

from __future__ import annotations

import math
import os
import signal

import pytest

from kqueue.ops.procmem import ProcMemory, anon_unique_mb, read_process

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="Linux")


def test_a_process_that_is_gone_reads_as_zeros():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert read_process(pid) == ProcMemory()
    assert anon_unique_mb([pid]) == 0.0


def test_pages_a_forked_child_shares_are_counted_once():
    # Given 64 MB of touched memory in this process, and a child forked from it that only waits
    block = bytearray(64 * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(writer)
        os.read(reader, 1)
        os._exit(0)
    os.close(reader)
    try:
        # When both are read
        me, child = read_process(os.getpid()), read_process(pid)
        together = anon_unique_mb([os.getpid(), pid])
        alone = anon_unique_mb([os.getpid()])
    finally:
        os.close(writer)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # Then each maps the block (RSS), PSS splits it, and the pair holds it once (as root)
    assert me.rss_mb > 64 and child.rss_mb > 64 and me.fds >= 3
    assert me.pss_mb < me.rss_mb - 20
    if os.geteuid() != 0:
        assert math.isnan(together)
        return
    assert alone > 64
    assert together < alone + 16  # the child's own pages are few: the block is counted once
