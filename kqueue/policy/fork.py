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

The pool's zygote itself stands from the worker's start to its stop whenever the worker has a
pool tier that may have processes (``runs_zygote``, the rule ``kqueue.tiers.pool.PoolRunner.start``
follows), so it is part of the worker's standing memory (``standing_mb``: what the twin's
memory curve and its budget count before any job, as the runtime's tree and budget do). The
isolated tier's zygote is not counted there yet (about 2 MB of the tree's PSS; DECISIONS, issue
19, session 12).
"""

from __future__ import annotations

from kqueue.policy.config import Config
from kqueue.policy.host import HostProfile

#: Pool processes come from the zygote, not from the worker.
POOL_FORKS_FROM_ZYGOTE = True
#: So do isolated processes (the isolated tier's own zygote, forked at its start).
ISOLATED_FORKS_FROM_ZYGOTE = True


def inherited_inline_mb(from_zygote: bool, worker_inline_mb: float) -> float:
    """The worker's inline memory, MB, a new process ends up with a copy of: all of what the
    worker holds now, or none for a process forked by the zygote."""
    return 0.0 if from_zygote else worker_inline_mb


def runs_zygote(config: Config, *, force_inline: bool = False) -> bool:
    """True when a worker with ``config`` runs a zygote: it forks pool processes from one and has
    a pool tier (not ``--inline``) that may hold processes (``pool_max_size`` above 0)."""
    return POOL_FORKS_FROM_ZYGOTE and not force_inline and config.pool_max_size > 0


def standing_mb(host: HostProfile, config: Config, *, force_inline: bool = False) -> float:
    """The memory the worker's tree holds before any job or pool process, MB: the worker
    (``HostProfile.worker_mb``) and, when it runs one (``runs_zygote``), the zygote
    (``HostProfile.zygote_mb``)."""
    zygote = host.zygote_mb if runs_zygote(config, force_inline=force_inline) else 0.0
    return host.worker_mb + zygote
