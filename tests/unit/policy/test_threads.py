"""The inline thread rule shared by the runtime and the simulator (``kqueue.policy.threads``)."""

from __future__ import annotations

import pytest

from kqueue.policy.threads import CPU_BOUND_SHARE, threads_to_add


@pytest.mark.parametrize(
    ("threads", "waiting", "blocked", "cpu_share", "limit", "added"),
    [
        (4, 3, 4, 0.1, 100, 3),  # blocked threads, jobs waiting: one thread per waiting job
        (4, 9, 4, 0.1, 100, 4),  # at most one per blocked thread (doubling)
        (4, 9, 4, 0.1, 6, 2),  # never past the limit
        (4, 9, 2, 0.1, 100, 2),  # half the threads blocked is enough
        (4, 9, 1, 0.1, 100, 0),  # fewer than half: the others may be computing
        (4, 9, 4, CPU_BOUND_SHARE, 100, 0),  # the process computes: more threads only contend
        (4, 0, 4, 0.1, 100, 0),  # nothing waits
        (100, 5, 100, 0.1, 100, 0),  # at the limit
    ],
)
def test_threads_to_add(threads, waiting, blocked, cpu_share, limit, added):
    assert threads_to_add(threads, waiting, blocked, cpu_share, limit) == added
