"""Where the process tiers fork their processes from, and what of the worker's memory they keep.

Pool processes are forked by the pool's zygote (``kqueue.tiers.zygote``), a process the worker
forks at start, before any job ran: every generation, first or replacement, holds what the
worker held then and nothing it came to hold since. Isolated processes come from a zygote of
their own tier, forked at start too, so they inherit none of the worker's inline memory either;
forked straight from the worker (``ISOLATED_FORKS_FROM_ZYGOTE`` false, or its zygote gone) one
would inherit the inline memory of that moment (the pages of the worker's heap its inline jobs
use), which becomes the process's own as the worker rewrites it. The runtime forks by
``POOL_FORKS_FROM_ZYGOTE`` and ``ISOLATED_FORKS_FROM_ZYGOTE``; the twin (``sim.model.tiers``)
counts what each new process inherits with ``inherited_inline_mb``.
"""

from __future__ import annotations

#: Pool processes come from the zygote, not from the worker.
POOL_FORKS_FROM_ZYGOTE = True
#: So do isolated processes (the isolated tier's own zygote, forked at its start).
ISOLATED_FORKS_FROM_ZYGOTE = True


def inherited_inline_mb(from_zygote: bool, worker_inline_mb: float) -> float:
    """The worker's inline memory, MB, a new process ends up with a copy of: all of what the
    worker holds now, or none for a process forked by the zygote."""
    return 0.0 if from_zygote else worker_inline_mb
