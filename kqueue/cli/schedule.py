"""The scheduling commands: ``kqueue pause`` / ``kqueue resume`` and ``kqueue schedules``.

Pauses are kept in the backend (``kqueue.backends.limits.LimitStore``), so every worker on it
sees them within ``kqueue.worker.limits.PAUSE_REFRESH_S``; a paused job stays queued.
"""

from __future__ import annotations

import datetime
import json

from kqueue.backends.limits import LimitStore, ScheduleStore
from kqueue.cli.common import backend_from
from kqueue.errors import KQueueError
from kqueue.worker.limits import pause_names


def _source(parser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--app", help="module:attribute of your kqueue.App (for its backend)")
    source.add_argument("--backend", help="backend URL")


def add_pause(subparsers) -> None:
    """Register ``kqueue pause`` and ``kqueue resume`` on ``subparsers``."""
    for name, paused in (("pause", True), ("resume", False)):
        verb = "stop starting" if paused else "start again"
        parser = subparsers.add_parser(
            name, help=f"{verb} the jobs of a queue or a job class (no names: list the paused)"
        )
        _source(parser)
        parser.add_argument("--queue", action="append", default=[], help="queue (repeatable)")
        parser.add_argument("--job", action="append", default=[], help="job name (repeatable)")
        parser.set_defaults(func=cmd_pause, paused=paused)


def _limit_store(args) -> LimitStore:
    backend = backend_from(args)
    if not isinstance(backend, LimitStore):
        raise KQueueError(f"this backend ({type(backend).__name__}) keeps no pauses")
    return backend


def cmd_pause(args) -> int:
    """``kqueue pause`` / ``kqueue resume``: change what is paused, then list it."""
    store = _limit_store(args)
    names = [pause_names(queue, "")[0] for queue in args.queue]
    names += [pause_names("", job)[1] for job in args.job]
    for name in names:
        store.set_paused(name, args.paused)
    paused = sorted(store.paused())
    print("paused: " + (", ".join(paused) if paused else "nothing"))
    return 0


def add_schedules(subparsers) -> None:
    """Register ``kqueue schedules`` on ``subparsers``."""
    parser = subparsers.add_parser(
        "schedules", help="list the periodic schedules, their next and last runs, and the leader"
    )
    _source(parser)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=cmd_schedules)


def _when(epoch_s: float | None, never: str = "-") -> str:
    if epoch_s is None:
        return never
    when = datetime.datetime.fromtimestamp(epoch_s, datetime.UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def cmd_schedules(args) -> int:
    """``kqueue schedules``: what the leader last published of each schedule.

    The last run is the last tick dispatched (``last_fired_s``): "never" for a schedule that
    has not fired yet, whose ``last_tick_s`` is only where its ticks start.
    """
    backend = backend_from(args)
    if not isinstance(backend, ScheduleStore):
        raise KQueueError(f"this backend ({type(backend).__name__}) keeps no schedules")
    states = {name: json.loads(body) for name, body in backend.schedule_states().items()}
    leader = backend.leader()
    if args.json:
        holder = None if leader is None else {"worker": leader[0], "expires_at": leader[1]}
        print(json.dumps({"leader": holder, "schedules": states}, indent=2, sort_keys=True))
        return 0
    print("leader: " + ("none" if leader is None else leader[0]))
    if not states:
        print("no schedules published yet (a worker with schedules publishes them)")
    for name, state in sorted(states.items()):
        print(
            f"{name}  {state['job']}  {state['spec']}  next {_when(state.get('next_tick_s'))}  "
            f"last run {_when(state.get('last_fired_s'), 'never')}"
        )
    return 0
