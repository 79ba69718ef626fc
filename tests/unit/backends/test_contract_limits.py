"""The shared-limits contract (``LimitStore``), on every backend: bucket, semaphore, pauses."""

from __future__ import annotations

import threading
import time

from kqueue.backends.limits import LimitStore
from kqueue.policy.ratelimit import parse_rate_limit


def test_every_backend_keeps_shared_limits(backend):
    assert isinstance(backend, LimitStore)


def test_the_token_bucket_starts_full_then_refills_at_its_rate(backend):
    limit = parse_rate_limit("20/s", "test")  # capacity 10
    assert backend.take_tokens("rate:a", limit, 20) == 10
    assert backend.take_tokens("rate:a", limit, 20) == 0
    time.sleep(0.3)  # 6 tokens' worth
    assert 5 <= backend.take_tokens("rate:a", limit, 20) <= 8
    time.sleep(0.8)  # 16 tokens' worth, capped at 10
    assert backend.take_tokens("rate:a", limit, 20) == 10
    assert backend.take_tokens("rate:b", limit, 1) == 1  # buckets are separate


def test_the_bucket_holds_under_threads_hammering_it(backend):
    limit = parse_rate_limit("50/s", "test")  # capacity 25
    granted = []

    def hammer():
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            granted.append(backend.take_tokens("rate:x", limit, 1))
            time.sleep(0.002)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 25 + 40 <= sum(granted) <= 25 + 60  # capacity, then about 50/s over ~1 s


def test_the_semaphore_counts_slots_and_expired_leases_come_back(backend):
    assert backend.acquire_slots("c:a", 2, ["j1", "j2", "j3"], 30.0) == ["j1", "j2"]
    assert backend.acquire_slots("c:a", 2, ["j1"], 30.0) == ["j1"]  # a renewal
    assert backend.acquire_slots("c:a", 2, ["j3"], 30.0) == []
    backend.release_slots("c:a", ["j2"])
    assert backend.acquire_slots("c:a", 2, ["j3"], 0.3) == ["j3"]
    assert set(backend.slot_holders("c:a")) == {"j1", "j3"}
    time.sleep(0.4)  # j3's holder crashed: nobody renewed it
    assert set(backend.slot_holders("c:a")) == {"j1"}
    assert backend.acquire_slots("c:a", 2, ["j4"], 30.0) == ["j4"]


def test_pauses_are_kept_until_resumed(backend):
    backend.set_paused("queue:default", True)
    backend.set_paused("job:tasks.mail", True)
    assert backend.paused() == {"queue:default", "job:tasks.mail"}
    backend.set_paused("queue:default", False)
    assert backend.paused() == {"job:tasks.mail"}


def test_one_leader_at_a_time_and_a_dead_leaders_lease_passes_on(backend):
    assert backend.leader() is None
    assert backend.lead("a", 0.5)
    assert not backend.lead("b", 0.5)  # a holds it
    assert backend.lead("a", 0.5)  # a renews
    assert backend.leader()[0] == "a"
    time.sleep(0.6)  # a died: nobody renewed
    assert backend.leader() is None
    assert backend.lead("b", 5.0)
    assert not backend.lead("a", 5.0)
    holder, expires_at = backend.leader()
    assert holder == "b" and time.time() + 3 < expires_at <= time.time() + 5.5


def test_schedule_states_are_kept(backend):
    backend.save_schedule_state("nightly", b'{"last": 1}')
    backend.save_schedule_state("nightly", b'{"last": 2}')
    assert backend.schedule_states() == {"nightly": b'{"last": 2}'}
