"""``Call``: the model's one kind of scheduled event, a timeout with a single callback, and
``run_all``, the loop that drains an environment of them.

The model schedules a couple of events per job, so each one's cost shows in the simulator's
speed. ``Call`` is not a ``simpy.Event`` but has what ``simpy.Environment.step`` reads from one
(``callbacks``, ``_ok``, ``_value``), in ``__slots__``; it is triggered and scheduled as it is
built (like ``simpy.Timeout``), pushed straight onto the environment's queue with the same key
``Environment.schedule`` uses (time, priority, event id), so events run in SimPy's order. That
costs about a third of ``env.timeout(delay, value)`` plus ``callbacks.append(callback)``. Its
``callbacks`` is a tuple (cheaper to build than a list; SimPy only iterates it): cancel one by
setting ``callbacks = ()``, and it is popped at its time and calls nothing.

``run_all(env)`` is ``env.run()`` without the per-event method call and its exception handling
(``step``): the same pops in the same order, each event's callbacks called in turn; an event
that failed raises as SimPy would. Both read SimPy 4's queue (``env._queue``, ``env._eid``,
``env._now``), the documented layout of ``Environment.schedule`` and ``step``.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class Call:
    """An event ``delay_s`` from now whose value is ``value`` and whose callback is ``callback``."""

    __slots__ = ("callbacks", "_value")
    #: Always succeeded (SimPy's ``step`` checks it).
    _ok = True

    def __init__(
        self,
        env: simpy.Environment,
        delay_s: float,
        callback: Callable[[Call], None],
        value: Any = None,
    ):
        self.callbacks = (callback,)
        self._value = value
        heappush(env._queue, (env._now + delay_s, NORMAL, next(env._eid), self))


class CallAt(Call):
    """A ``Call`` at the absolute time ``at_s`` (not ``delay_s`` from now): for a time worked out
    along another path (an arrival plus a round trip), which ``now + (at_s - now)`` may miss
    by a rounding step."""

    __slots__ = ()

    def __init__(
        self,
        env: simpy.Environment,
        at_s: float,
        callback: Callable[[Call], None],
        value: Any = None,
    ):
        self.callbacks = (callback,)
        self._value = value
        heappush(env._queue, (at_s, NORMAL, next(env._eid), self))


def run_all(env: simpy.Environment) -> None:
    """Process every scheduled event (as ``env.run()`` with no ``until``)."""
    queue = env._queue
    while queue:
        env._now, _, _, event = heappop(queue)
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):  # as ``step``: a failure crashes
            raise type(event._value)(*event._value.args) from event._value
