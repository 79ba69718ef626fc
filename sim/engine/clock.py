"""``Call``: the model's one kind of scheduled event, a timeout with a single callback.

The model schedules several events per job, so each one's cost shows in the simulator's speed.
``Call`` is a ``simpy.Event`` that is triggered and scheduled as it is built (like
``simpy.Timeout``) with its callback already in place, through SimPy's public
``Environment.schedule``; it costs about two thirds of ``env.timeout(delay, value)`` plus
``callbacks.append(callback)``. Cancel one by clearing its ``callbacks``: SimPy pops it at its
time and calls nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import NORMAL


class Call(simpy.Event):
    """An event ``delay_s`` from now whose value is ``value`` and whose callback is ``callback``."""

    def __init__(
        self,
        env: simpy.Environment,
        delay_s: float,
        callback: Callable[[simpy.Event], None],
        value: Any = None,
    ):
        self.env = env
        self.callbacks = [callback]
        self._value = value
        self._ok = True
        env.schedule(self, NORMAL, delay_s)
