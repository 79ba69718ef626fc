"""Jobs a full semaphore held back that wait on their worker for a slot of it to free.

A job of a class with a ``concurrency_limit`` whose slots are all taken does not go back to the
backend for a poll at once: up to ``ratelimit.waits_for_slot`` of them wait on the worker that
leased them (no tier slot, no place in a tier's local queue), and when a job of their semaphore
ends there, the first in the class's wait-list order (``slot_queue.wait_order``: priority, then
due time, then the holder's id, as the backend ranks them) asks for the freed slot at once. A
waiter whose ``deadline_s`` passes goes back to the backend, due at once, so a slot that frees
on another worker is found there within a poll. The runtime's intake (``kqueue.worker.intake``)
and the simulator's worker (``sim.model.worker``) both keep their waiters in a
``SlotWaiters``. A job that comes before the last of a full line here takes its place
(``make_room``), so the jobs waiting here are the first on the class's wait list.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from kqueue.policy.ratelimit import waits_for_slot
from kqueue.policy.slot_queue import wait_order

T = TypeVar("T", bound=Hashable)


@dataclass(order=True)
class _Waiter(Generic[T]):
    order: tuple[float, str, int]
    deadline_s: float = field(compare=False)
    item: T = field(compare=False)


class SlotWaiters(Generic[T]):
    """Per semaphore key, the jobs waiting here for one of its slots, first in line first."""

    def __init__(self) -> None:
        self._by_key: dict[str, list[_Waiter[T]]] = {}
        self._key_of: dict[T, str] = {}
        self._seq = 0

    def add(
        self,
        key: str,
        limit: int,
        item: T,
        priority: int,
        due_s: float,
        deadline_s: float,
        holder: str = "",
    ) -> bool:
        """Keep ``item`` (its slot holder id ``holder``) waiting for a slot of ``key`` until
        ``deadline_s``; False when enough jobs of ``key`` wait already (``waits_for_slot``: it
        goes back to the backend)."""
        line = self._by_key.setdefault(key, [])
        if item in self._key_of or not waits_for_slot(len(line), limit):
            return False
        self._seq += 1
        line.append(_Waiter((wait_order(priority, due_s), holder, self._seq), deadline_s, item))
        line.sort()
        self._key_of[item] = key
        return True

    def make_room(
        self, key: str, limit: int, priority: int, due_s: float, holder: str = ""
    ) -> T | None:
        """When ``key``'s line here is full and a job of ``priority`` due at ``due_s`` comes
        before its last waiter, take that waiter out and return it (it goes back to the backend
        for a poll, its place on the class's wait list kept, ``policy.slot_queue``): the jobs
        waiting here should be the ones first in line for a freed slot. Else None."""
        line = self._by_key.get(key)
        if not line or waits_for_slot(len(line), limit):
            return None
        last = line[-1]
        if (wait_order(priority, due_s), holder) >= last.order[:2]:
            return None
        self.remove(last.item)
        return last.item

    def head(self, key: str) -> T | None:
        """The first job waiting for a slot of ``key``, or None."""
        line = self._by_key.get(key)
        return line[0].item if line else None

    def remove(self, item: T) -> bool:
        """Stop ``item`` waiting (it got its slot, went back, or was cancelled)."""
        key = self._key_of.pop(item, None)
        if key is None:
            return False
        line = self._by_key[key]
        line[:] = [waiter for waiter in line if waiter.item != item]
        if not line:
            del self._by_key[key]
        return True

    def expired(self, now_s: float) -> list[T]:
        """Take out and return the waiters whose deadline is by ``now_s`` (they go back)."""
        gone = [w.item for line in self._by_key.values() for w in line if w.deadline_s <= now_s]
        for item in gone:
            self.remove(item)
        return gone

    def next_deadline_s(self) -> float:
        """The earliest deadline of a waiter (inf when none waits)."""
        return min((w.deadline_s for line in self._by_key.values() for w in line), default=math.inf)

    def items(self) -> list[T]:
        """Every waiting job."""
        return [w.item for line in self._by_key.values() for w in line]

    def __contains__(self, item: object) -> bool:
        return item in self._key_of

    def __len__(self) -> int:
        return len(self._key_of)
