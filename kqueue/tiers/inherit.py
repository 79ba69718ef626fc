"""What a forked child lets go of: the descriptors the worker holds for its other children.

``fork`` copies every open descriptor of the worker into the child. For each child it has, the
worker holds four: its end of the child's pipe, the child's pidfd and multiprocess's two
sentinel pipes; and while it forks, its own end of the new child's pipe. Without this module a
child keeps all of them: a pool process forked late in a run (a replacement after
``max_jobs_per_worker``) holds the handles of every pool and isolated process alive at that
moment, so it holds several times the descriptors of the first pool, forked at start when the
worker had few; and a child holding a sibling's pipe end keeps that pipe open after the worker
closed its end (the sibling would not see end-of-file), and its own parent end keeps its own
pipe open after the worker died.

``hold`` records, per live child, the parent's handles; ``forget`` drops them when the child is
reaped (the parent closes them then). A new child runs ``child_main``, which closes its copy of
its own parent end and of every recorded handle before it runs its target, and then asks the
backend it inherited to let go of its sockets (``Backend.release_after_fork``). Descriptors the
app opened (a log file, say) are left alone: a job in the child may write to them, as it could
before. The record is per process, as multiprocess keeps its own ``process._children``: every
child this process forked must be let go of by the children forked after it, whichever tier
forked it. Forks happen on the event loop's thread, so ``hold`` follows each fork before the
next one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from typing import Any

#: Per live child (by pid): the parent's connection to it and its raw descriptors.
_HELD: dict[int, tuple[Any, tuple[int, ...]]] = {}


def hold(pid: int, conn: Any, fds: Iterable[int]) -> None:
    """Record the parent's handles on child ``pid``: its pipe end ``conn`` (or None) and raw
    ``fds``."""
    _HELD[pid] = (conn, tuple(fd for fd in fds if fd is not None and fd >= 0))


def forget(pid: int) -> None:
    """Child ``pid`` was reaped: later children have nothing of it to let go of."""
    _HELD.pop(pid, None)


def held_fds() -> dict[int, set[int]]:
    """The descriptors recorded for each live child of this process, by pid (for checks)."""
    held: dict[int, set[int]] = {}
    for pid, (conn, raw) in _HELD.items():
        fds = held[pid] = set(raw)
        with contextlib.suppress(OSError, ValueError, AttributeError):
            fds.add(conn.fileno())
    return held


def popen_fds(process: Any) -> tuple[int, ...]:
    """multiprocess's sentinel pipes the parent keeps for ``process`` (both ends' parent side).

    ``popen_fork`` keeps the read end as ``sentinel`` and closes both in its finalizer; the
    finalizer's arguments are the only place the write end is named.
    """
    popen = getattr(process, "_popen", None)
    finalizer = getattr(popen, "finalizer", None)
    fds = tuple(getattr(finalizer, "_args", None) or ())
    sentinel = getattr(popen, "sentinel", None)
    return fds if sentinel in fds or sentinel is None else (*fds, sentinel)


def release_in_child(own_parent_end: Any) -> None:
    """In a fresh child: close our copies of the parent's handles on its children and on us."""
    with contextlib.suppress(OSError):
        own_parent_end.close()
    for conn, raw in list(_HELD.values()):
        with contextlib.suppress(OSError, AttributeError):  # None: raw descriptors only
            conn.close()
        for fd in raw:
            with contextlib.suppress(OSError):
                os.close(fd)
    _HELD.clear()


def release_backend(app: Any) -> None:
    """In a fresh child: the app's backend (the worker's) closes our copies of its sockets."""
    backend = getattr(app, "_backend", None)
    release = getattr(backend, "release_after_fork", None)
    if release is not None:
        with contextlib.suppress(Exception):  # a child that cannot let go still runs its jobs
            release()


def child_main(own_parent_end: Any, target: Callable[..., None], conn: Any, *args: Any) -> None:
    """A child's entry point: let go of the worker's handles, then ``target(conn, *args)``."""
    release_in_child(own_parent_end)
    target(conn, *args)
