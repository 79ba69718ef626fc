"""``LimitStore`` for the in-process backend: the policy's rules on dicts under one lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from kqueue.backends.limits import LimitStore, ScheduleStore
from kqueue.policy.leader import LeaderLease, apply_step
from kqueue.policy.ratelimit import (
    Bucket,
    RateLimit,
    acquire_slots,
    live_slots,
    release_slots,
    take_tokens,
)
from kqueue.policy.slot_queue import claim_slot, leave_line, slot_key
from kqueue.policy.turn_queue import take_turn


class MemoryLimits(LimitStore, ScheduleStore):
    """Limits, pauses and the schedules' leader in this process (a mixin of ``MemoryBackend``)."""

    _limits_lock = threading.Lock()

    def _limit_state(self) -> dict:
        state = self.__dict__.get("_limit_dicts")
        if state is None:
            with self._limits_lock:
                state = self.__dict__.setdefault(
                    "_limit_dicts",
                    {
                        "buckets": {},
                        "tickets": {},
                        "slots": {},
                        "waiting": {},
                        "paused": set(),
                        "leader": None,
                        "schedules": {},
                    },
                )
        return state

    def take_tokens(self, key: str, limit: RateLimit, wanted: int) -> int:
        state = self._limit_state()
        with self._limits_lock:
            buckets: dict[str, Bucket] = state["buckets"]
            granted, buckets[key] = take_tokens(limit, buckets.get(key), time.time(), wanted)
        return granted

    def reserve_turn(self, key: str, limit: RateLimit, holder: str, priority: int = 0) -> float:
        state = self._limit_state()
        with self._limits_lock:
            buckets: dict[str, Bucket] = state["buckets"]
            tickets = state["tickets"].get(key, {})
            made = take_turn(limit, buckets.get(key), tickets, holder, priority, time.time())
            buckets[key], state["tickets"][key] = made.bucket, made.tickets
        return made.wait_s

    def acquire_slots(
        self, key: str, limit: int, holders: Sequence[str], lease_s: float
    ) -> list[str]:
        state = self._limit_state()
        with self._limits_lock:
            slots = state["slots"]
            granted, slots[key] = acquire_slots(
                limit, slots.get(key, {}), list(holders), time.time(), lease_s
            )
        return granted

    def claim_slot(self, key: str, limit: int, holder: str, order: float, lease_s: float) -> bool:
        state = self._limit_state()
        with self._limits_lock:
            slots, waiting = state["slots"], state["waiting"]
            claim = claim_slot(
                limit, slots.get(key, {}), waiting.get(key, {}), holder, order, time.time(), lease_s
            )
            slots[key], waiting[key] = claim.slots, claim.waiting
        return claim.granted

    def release_slots(self, key: str, holders: Sequence[str]) -> None:
        state = self._limit_state()
        with self._limits_lock:
            state["slots"][key] = release_slots(state["slots"].get(key, {}), list(holders))
            if key in state["waiting"]:
                state["waiting"][key] = leave_line(state["waiting"][key], holders)

    def _leave_line(self, job_class: str, job_id: str) -> None:
        """A job of ``job_class`` ended for good: off its class's wait list (``leave_line``)."""
        state = self._limit_state()
        key = slot_key(job_class)
        with self._limits_lock:
            if job_id in state["waiting"].get(key, {}):
                state["waiting"][key] = leave_line(state["waiting"][key], [job_id])

    def slot_holders(self, key: str) -> dict[str, float]:
        state = self._limit_state()
        with self._limits_lock:
            return live_slots(state["slots"].get(key, {}), time.time())

    def set_paused(self, name: str, paused: bool) -> None:
        state = self._limit_state()
        with self._limits_lock:
            (state["paused"].add if paused else state["paused"].discard)(name)

    def paused(self) -> set[str]:
        state = self._limit_state()
        with self._limits_lock:
            return set(state["paused"])

    def lead(self, me: str, lease_s: float) -> bool:
        state = self._limit_state()
        with self._limits_lock:
            state["leader"] = apply_step(state["leader"], me, time.time(), lease_s)
            return state["leader"].holder == me

    def leader(self) -> tuple[str, float] | None:
        state = self._limit_state()
        with self._limits_lock:
            lease: LeaderLease | None = state["leader"]
        if lease is None or not lease.live(time.time()):
            return None
        return lease.holder, lease.expires_at_s

    def schedule_states(self) -> dict[str, bytes]:
        state = self._limit_state()
        with self._limits_lock:
            return dict(state["schedules"])

    def save_schedule_state(self, name: str, body: bytes) -> None:
        state = self._limit_state()
        with self._limits_lock:
            state["schedules"][name] = bytes(body)
