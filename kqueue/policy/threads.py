"""How many threads run the worker's sync inline jobs: the rule the runtime and simulator share.

Up to ``EAGER_THREADS`` start as soon as a job finds no idle thread. Beyond that, while jobs
wait, the worker checks every ``BLOCKED_S`` whether to grow (``threads_to_add``): by one thread
per thread that has been on its job for ``BLOCKED_S`` (it may be blocked in sleep or I/O), and
only while the process used less than ``CPU_BOUND_SHARE`` of a core since the last check and at
least half the threads look blocked. A busy loop of short or CPU-bound jobs keeps few threads,
because more threads only contend for the GIL; threads blocked in I/O make room for more, up to
``max_concurrent_inline``. Threads are never retired. See ``docs/DECISIONS.md``.
"""

from __future__ import annotations

#: Sync threads started on demand before the pool grows only for jobs that block.
EAGER_THREADS = 4
#: A thread whose job has run this long may be blocked (sleep, I/O), seconds; also how often
#: the pool checks whether to grow.
BLOCKED_S = 0.01
#: Below this share of one core of CPU used by the process, the GIL is not the bottleneck and
#: threads that look blocked are blocked (rather than waiting for the GIL or a busy host's CPU).
CPU_BOUND_SHARE = 0.5


def threads_to_add(threads: int, waiting: int, blocked: int, cpu_share: float, limit: int) -> int:
    """Threads to start at a growth check.

    Args:
        threads: threads running now.
        waiting: jobs waiting for a thread.
        blocked: threads whose current job started at least ``BLOCKED_S`` ago.
        cpu_share: CPU the process used since the last check, in cores.
        limit: ``max_concurrent_inline``.
    """
    if not waiting or threads >= limit:
        return 0
    if cpu_share < CPU_BOUND_SHARE and 2 * blocked >= threads:
        return min(blocked, waiting, limit - threads)
    return 0
