"""A process watched through a descriptor numbered past 1024 is still seen to end and killed.

A worker with many descriptors open (connections, the app's files) gets pidfds past 1024, where
``select.select`` raises ValueError: a job past its timeout would never be killed.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import time

import pytest

from kqueue.tiers.procs import ended, kill_tree

HIGH_FD = 2000


@contextlib.contextmanager
def _high_pidfd(pid: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft <= HIGH_FD:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, HIGH_FD + 1), hard))
    low = os.pidfd_open(pid)
    try:
        high = os.dup2(low, HIGH_FD)
        os.close(low)
        yield high
    finally:
        os.close(HIGH_FD)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(20)
def test_a_process_behind_a_pidfd_past_1024_is_killed_and_seen_to_end():
    # Given a running process watched through a pidfd numbered 2000
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with _high_pidfd(sleeper.pid) as pidfd:
            assert not ended(pidfd)
            # When its tree is killed through that pidfd
            kill_tree(sleeper.pid, signal.SIGKILL, pidfd=pidfd)
            deadline = time.monotonic() + 5
            while not ended(pidfd) and time.monotonic() < deadline:
                time.sleep(0.01)
            # Then it ended, by the signal
            assert ended(pidfd)
            assert sleeper.wait(5) == -signal.SIGKILL
    finally:
        sleeper.kill()
        sleeper.wait()
