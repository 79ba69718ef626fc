"""The shared-limits contract (``LimitStore``), on every backend: bucket, semaphore, pauses."""

from __future__ import annotations

import dataclasses
import threading
import time

from kqueue.backends.limits import LimitStore
from kqueue.policy.ratelimit import parse_rate_limit
from kqueue.policy.slot_queue import slot_key


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


def _turn_s(backend, key, limit, holder) -> tuple[float, float]:
    """``reserve_turn``'s wait, and the turn it names on this process's clock."""
    before = time.monotonic()
    wait_s = backend.reserve_turn(key, limit, holder)
    return wait_s, (before + time.monotonic()) / 2 + wait_s


def test_a_job_without_a_token_reserves_its_turn_and_starts_on_its_ticket(backend):
    limit = parse_rate_limit("10/s", "test")  # capacity 5
    # Given a bucket emptied by five starts
    assert [backend.reserve_turn("rate:r", limit, f"j{i}") for i in range(5)] == [0.0] * 5
    # When three more jobs come, Then each takes its token as a debt, a turn 0.1 s apart
    (w0, t0), (_, t1), (w2, t2) = (_turn_s(backend, "rate:r", limit, f"k{i}") for i in range(3))
    assert 0.0 < w0 <= 0.1 and 0.07 <= t1 - t0 <= 0.13 and 0.07 <= t2 - t1 <= 0.13
    # and one leased again before its turn keeps its place (it is told the rest of its wait)
    wait_s, turn_s = _turn_s(backend, "rate:r", limit, "k2")
    assert 0.0 < wait_s < w2 and abs(turn_s - t2) < 0.03
    # and a newcomer queues behind the debt
    assert 0.07 <= _turn_s(backend, "rate:r", limit, "n")[1] - t2 <= 0.13
    # When k0 is leased again at its turn, Then it starts on its ticket (the bucket still owes)
    time.sleep(max(0.0, t0 + 0.02 - time.monotonic()))
    assert backend.reserve_turn("rate:r", limit, "k0") == 0.0
    # and its ticket was used: asking again is asking as a newcomer, behind n
    assert _turn_s(backend, "rate:r", limit, "k0")[1] - t2 >= 0.17


def test_a_lapsed_ticket_is_forgotten_and_the_debt_is_capped(backend):
    limit = dataclasses.replace(parse_rate_limit("2/s", "test"), ticket_grace_s=0.1)
    # Given a bucket of one token taken, and j1 holding a ticket for 0.5 s ahead
    assert backend.reserve_turn("rate:g", limit, "j0") == 0.0
    assert 0.45 <= backend.reserve_turn("rate:g", limit, "j1") <= 0.5
    # When j1 comes back after its ticket lapsed (0.1 s after its turn)
    time.sleep(0.7)
    # Then it asks the bucket like a newcomer: no token yet (0.4 of one), a new turn
    assert 0.15 <= backend.reserve_turn("rate:g", limit, "j1") <= 0.35
    # Given a debt capped at 1 s of the rate (2 tokens)
    capped = dataclasses.replace(limit, max_debt_s=1.0, ticket_grace_s=10.0)
    assert backend.reserve_turn("rate:c", capped, "a") == 0.0  # a whole token
    assert 0.45 <= backend.reserve_turn("rate:c", capped, "b") <= 0.5
    assert 0.95 <= backend.reserve_turn("rate:c", capped, "c") <= 1.0
    # Then one more holds no ticket: it comes back when the debt is paid (1 s), not at 1.5 s
    assert 0.9 <= backend.reserve_turn("rate:c", capped, "d") <= 1.0
    assert 0.9 <= backend.reserve_turn("rate:c", capped, "d") <= 1.0


def test_a_bucket_keeps_its_debt_until_it_is_paid(backend):
    limit = parse_rate_limit("20/s", "test")  # capacity 10: a full bucket's key lives 1.5 s
    # Given 10 starts on whole tokens and 40 turns reserved (2 s of the rate owed)
    waits = [backend.reserve_turn("rate:d", limit, f"j{i}") for i in range(50)]
    assert waits[:10] == [0.0] * 10 and 1.8 <= waits[-1] <= 2.0
    assert backend.take_tokens("rate:d", limit, 5) == 0
    # When longer passes than a full bucket's key lives, Then the debt is still owed
    time.sleep(1.6)
    assert backend.take_tokens("rate:d", limit, 5) == 0
    assert 0.2 <= backend.reserve_turn("rate:d", limit, "late") <= 0.5


def test_a_full_semaphores_wait_list_hands_freed_slots_out_in_order(backend):
    # Given one slot taken and two holders waiting, the later-due one asking first
    assert backend.claim_slot("concurrency:w", 1, "run", 0.0, 30.0)
    assert not backend.claim_slot("concurrency:w", 1, "late", 20.0, 30.0)
    assert not backend.claim_slot("concurrency:w", 1, "early", 10.0, 30.0)
    # When the slot frees, the later one is refused and the earlier one gets it
    backend.release_slots("concurrency:w", ["run"])
    assert not backend.claim_slot("concurrency:w", 1, "late", 20.0, 30.0)
    assert backend.claim_slot("concurrency:w", 1, "early", 10.0, 30.0)
    assert set(backend.slot_holders("concurrency:w")) == {"early"}
    backend.release_slots("concurrency:w", ["early"])
    assert backend.claim_slot("concurrency:w", 1, "late", 20.0, 30.0)


def test_a_lost_holders_wait_list_entry_lapses_with_its_lease(backend):
    assert backend.claim_slot("concurrency:g", 1, "run", 0.0, 0.3)
    assert not backend.claim_slot("concurrency:g", 1, "ghost", 1.0, 0.3)  # then never asks
    backend.release_slots("concurrency:g", ["run"])
    assert not backend.claim_slot("concurrency:g", 1, "next", 2.0, 0.3)
    time.sleep(0.4)
    assert backend.claim_slot("concurrency:g", 1, "next", 2.0, 0.3)


def _waiting_jobs(backend, key: str, job_ids: list[str]) -> None:
    """Submit ``job_ids`` of class ``report`` and put each on ``key``'s wait list, in order,
    behind a slot held by ``run``."""
    for job_id in job_ids:
        backend.submit("q", job_id, b"{}", job_class="report")
    assert backend.claim_slot(key, 1, "run", 0.0, 30.0)
    for rank, job_id in enumerate(job_ids, start=1):
        assert not backend.claim_slot(key, 1, job_id, float(rank), 30.0)


def test_a_cancelled_or_dead_waiter_leaves_its_wait_list_at_once(backend):
    key = slot_key("report")
    # Given a slot taken and three jobs of the class on its wait list
    _waiting_jobs(backend, key, ["first", "second", "third"])
    # When the first is cancelled while it waits in the backend, and the slot frees
    backend.cancel("first", "q", b"cancelled", 60.0)
    backend.release_slots(key, ["run"])
    # Then the second takes the slot at once (not one lease later)
    assert backend.claim_slot(key, 1, "second", 2.0, 30.0)
    # When the third is leased, fails for good and is dead-lettered, and the slot frees
    (lease,) = [lease for lease in backend.lease("q", "w", 10, 30.0) if lease.job_id == "third"]
    assert backend.dead(lease, "boom")
    backend.submit("q", "fourth", b"{}", job_class="report")
    assert not backend.claim_slot(key, 1, "fourth", 4.0, 30.0)
    backend.release_slots(key, ["second"])
    # Then the fourth, behind it, takes the slot at once
    assert backend.claim_slot(key, 1, "fourth", 4.0, 30.0)


def test_a_waiter_cancelled_while_leased_leaves_its_wait_list_when_it_ends(backend):
    key = slot_key("report")
    # Given two jobs waiting for a slot, the first leased (held back) when it is cancelled
    _waiting_jobs(backend, key, ["first", "second"])
    (lease,) = [lease for lease in backend.lease("q", "w", 1, 30.0) if lease.job_id == "first"]
    backend.cancel("first", "q", b"cancelled", 60.0)
    backend.release([lease])  # its worker gives it back (or dies)
    # When it is leased again it ends there, and when the slot frees
    assert [lease.job_id for lease in backend.lease("q", "w", 10, 30.0)] == ["second"]
    backend.release_slots(key, ["run"])
    # Then the second takes it at once
    assert backend.claim_slot(key, 1, "second", 2.0, 30.0)
    # and a holder that gives its slot back leaves the wait list too
    assert not backend.claim_slot(key, 1, "third", 3.0, 30.0)
    assert not backend.claim_slot(key, 1, "fourth", 4.0, 30.0)
    backend.release_slots(key, ["second", "third"])
    assert backend.claim_slot(key, 1, "fourth", 4.0, 30.0)


def test_a_higher_priority_takes_the_earliest_turn_lower_priorities_reserved(backend):
    limit = parse_rate_limit("10/s", "test")  # capacity 5
    # Given an emptied bucket and three low-priority jobs holding turns 0.1 s apart
    assert [backend.reserve_turn("rate:p", limit, f"j{i}") for i in range(5)] == [0.0] * 5
    (_, t0), (_, t1), (_, t2) = (_turn_s(backend, "rate:p", limit, f"low{i}") for i in range(3))
    # When a high-priority job of the class asks
    wait_s = backend.reserve_turn("rate:p", limit, "high", 5)
    # Then it takes the first turn, not a fourth one behind them
    assert 0.0 < wait_s <= 0.1
    # and each low job moved on one turn (told so when leased at its old one), in its order
    _, t0_after = _turn_s(backend, "rate:p", limit, "low0")
    _, t2_after = _turn_s(backend, "rate:p", limit, "low2")
    assert abs(t0_after - t1) < 0.03 and 0.07 <= t2_after - t2 <= 0.13
    # and a second job of that priority goes right after it, still ahead of the low ones
    assert wait_s + 0.07 <= backend.reserve_turn("rate:p", limit, "high2", 5) <= wait_s + 0.13
    assert backend.reserve_turn("rate:p", limit, "high", 5) <= wait_s  # it kept its turn
