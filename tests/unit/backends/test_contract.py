"""The backend contract: every backend passes these same tests (Huey's StorageTests shape).

The ``backend`` fixture (conftest.py) is parametrised over every backend kqueue ships.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from kqueue.backends.base import State

Q = "default"
VT = 30.0
#: A short delay, TTL or lease: what a test checks "before it is due" must happen within it
#: (two back-to-back calls; room for a busy machine to stall between them), seconds.
DELAY_S = 0.6


def put(backend, n, queue=Q, prefix="j"):
    ids = [f"{prefix}{i}" for i in range(n)]
    backend.enqueue_many(queue, [(job_id, f"body-{job_id}".encode()) for job_id in ids])
    return ids


def test_enqueue_then_lease_returns_oldest_first_with_body_and_first_attempt(backend):
    for i in range(3):
        backend.enqueue(Q, f"j{i}", f"b{i}".encode())
        time.sleep(0.002)
    leases = backend.lease(Q, "w1", 10, VT)
    assert [x.job_id for x in leases] == ["j0", "j1", "j2"]
    assert [x.body for x in leases] == [b"b0", b"b1", b"b2"]
    assert all(x.attempt == 1 and x.queue == Q for x in leases)
    assert all(x.expires_at > time.time() + VT - 5 for x in leases)


def test_ids_and_bodies_with_any_bytes_come_back_intact(backend):
    odd = {"a:b\n3:c": b"x:1:2:\n\x00\xff", "\u2603:": b"", "7": b"::"}
    for job_id, body in odd.items():
        backend.enqueue(Q, job_id, body)
    leases = backend.lease(Q, "w1", 10, VT)
    assert {x.job_id: x.body for x in leases} == odd
    assert all(x.attempt == 1 for x in leases)


def test_lease_respects_limit_and_never_hands_out_a_live_lease_twice(backend):
    put(backend, 5)
    first = backend.lease(Q, "w1", 3, VT)
    second = backend.lease(Q, "w2", 10, VT)
    assert len(first) == 3 and len(second) == 2
    assert not {x.job_id for x in first} & {x.job_id for x in second}
    assert backend.lease(Q, "w3", 10, VT) == []


def test_enqueue_with_a_known_id_is_ignored(backend):
    backend.enqueue(Q, "same", b"one")
    backend.enqueue(Q, "same", b"two")
    leases = backend.lease(Q, "w", 10, VT)
    assert [(x.job_id, x.body) for x in leases] == [("same", b"one")]


def test_queues_are_separate(backend):
    put(backend, 2, queue="a", prefix="a")
    put(backend, 1, queue="b", prefix="b")
    assert {x.job_id for x in backend.lease("b", "w", 10, VT)} == {"b0"}
    assert backend.counts()["a"][State.READY.value] == 2


def test_ack_removes_and_counts_only_held_leases(backend):
    put(backend, 2)
    leases = backend.lease(Q, "w", 10, VT)
    assert backend.ack(leases) == 2
    assert backend.ack(leases) == 0
    assert backend.lease(Q, "w", 10, VT) == []
    assert sum(backend.counts().get(Q, {}).values()) == 0


def test_expired_lease_comes_back_with_next_attempt_and_old_token_loses_its_rights(backend):
    # Given a job leased with a very short visibility timeout
    put(backend, 1)
    [old] = backend.lease(Q, "w1", 1, 0.2)
    # When the lease expires, another worker leases it again
    time.sleep(0.3)
    [new] = backend.lease(Q, "w2", 1, VT)
    # Then it is the same job on its second attempt, and the first worker can no longer touch it
    assert new.job_id == old.job_id and new.attempt == 2
    assert backend.ack([old]) == 0
    assert backend.retry(old, 0, "late") is False
    assert backend.dead(old, "late") is False
    assert backend.extend([old], VT) == []
    assert backend.ack([new]) == 1


def test_extend_keeps_a_lease_alive_past_its_first_expiry(backend):
    put(backend, 1)
    [lease] = backend.lease(Q, "w1", 1, 0.5)
    [renewed] = backend.extend([lease], VT)
    assert renewed.expires_at > lease.expires_at
    time.sleep(0.6)  # past the first expiry (sleeping longer only makes that surer)
    assert backend.lease(Q, "w2", 1, VT) == []
    assert backend.ack([renewed]) == 1


def test_retry_delays_the_job_and_counts_the_attempt(backend):
    put(backend, 1)
    [lease] = backend.lease(Q, "w", 1, VT)
    assert backend.retry(lease, DELAY_S, "boom") is True
    assert backend.lease(Q, "w", 1, VT) == []
    assert backend.counts()[Q][State.SCHEDULED.value] == 1
    time.sleep(DELAY_S + 0.2)
    [again] = backend.lease(Q, "w", 1, VT)
    assert again.attempt == 2


def test_release_gives_the_job_back_without_counting_the_attempt(backend):
    put(backend, 1)
    [lease] = backend.lease(Q, "w", 1, VT)
    assert backend.release([lease]) == 1
    [again] = backend.lease(Q, "w", 1, VT)
    assert again.attempt == 1


def test_release_with_delay_schedules(backend):
    put(backend, 1)
    [lease] = backend.lease(Q, "w", 1, VT)
    backend.release([lease], delay_s=DELAY_S)
    assert backend.lease(Q, "w", 1, VT) == []
    time.sleep(DELAY_S + 0.2)
    assert len(backend.lease(Q, "w", 1, VT)) == 1


def test_delayed_enqueue_is_scheduled_until_due(backend):
    backend.enqueue(Q, "later", b"x", delay_s=DELAY_S)
    assert backend.lease(Q, "w", 1, VT) == []
    time.sleep(DELAY_S + 0.2)
    assert [x.job_id for x in backend.lease(Q, "w", 1, VT)] == ["later"]


def test_dead_letters_keep_the_reason_and_can_be_requeued(backend):
    put(backend, 2)
    leases = backend.lease(Q, "w", 2, VT)
    assert backend.dead(leases[0], "Traceback: ValueError: bad") is True
    assert backend.dead(leases[1], "unknown job name 'x'") is True
    letters = backend.dead_letters(Q)
    assert {x.job_id for x in letters} == {"j0", "j1"}
    assert {x.reason for x in letters} == {"Traceback: ValueError: bad", "unknown job name 'x'"}
    assert all(x.attempts == 1 and x.body.startswith(b"body-") for x in letters)
    assert backend.counts()[Q][State.DEAD.value] == 2
    assert backend.lease(Q, "w", 10, VT) == []
    assert backend.requeue_dead(["j0"]) == 1
    [again] = backend.lease(Q, "w", 10, VT)
    assert again.job_id == "j0" and again.attempt == 1
    assert backend.requeue_dead() == 1
    assert backend.dead_letters(Q) == []


def test_counts_per_state(backend):
    put(backend, 4)
    backend.enqueue(Q, "later", b"x", delay_s=60)
    leases = backend.lease(Q, "w", 2, VT)
    backend.dead(leases[0], "r")
    counts = backend.counts(Q)[Q]
    assert counts == {"ready": 2, "scheduled": 1, "leased": 1, "dead": 1}


def test_worker_statuses_expire_and_can_be_removed(backend):
    backend.publish_status("w1", json.dumps({"pid": 1}).encode(), ttl_s=30)
    backend.publish_status("w2", json.dumps({"pid": 2}).encode(), ttl_s=DELAY_S)
    assert {s.worker_id for s in backend.worker_statuses()} == {"w1", "w2"}
    time.sleep(DELAY_S + 0.2)
    [alive] = backend.worker_statuses()
    assert alive.worker_id == "w1" and json.loads(alive.body) == {"pid": 1}
    backend.remove_status("w1")
    assert backend.worker_statuses() == []


def test_durations_are_shared_bounded_per_class_and_oldest_first(backend):
    backend.record_durations({"a": [1.0, 2.0, 3.0], "b": [0.5]}, keep=4)
    backend.record_durations({"a": [4.0, 5.0]}, keep=4)
    assert backend.load_durations(keep=4) == {"a": [2.0, 3.0, 4.0, 5.0], "b": [0.5]}
    assert backend.load_durations(keep=2) == {"a": [4.0, 5.0], "b": [0.5]}
    backend.record_durations({}, keep=4)


@pytest.mark.parametrize("n", [1, 250])
def test_many_leases_in_batches_drain_everything_once(backend, n):
    ids = put(backend, n)
    seen = []
    while batch := backend.lease(Q, "w", 100, VT):
        seen += [x.job_id for x in batch]
        backend.ack(batch)
    assert sorted(seen) == sorted(ids)


def test_ack_and_lease_acks_the_finished_and_leases_the_next(backend):
    # Given two leased jobs and three more waiting
    put(backend, 5)
    done = backend.lease(Q, "w", 2, VT)
    # When the two are acked in the same call that leases more
    acked, leases = backend.ack_and_lease(done, Q, "w", 10, VT)
    # Then both acks counted, the other three are leased, and nothing is left
    assert acked == 2
    assert sorted(x.job_id for x in leases) == ["j2", "j3", "j4"]
    assert all(x.attempt == 1 for x in leases)
    assert backend.ack_and_lease(leases, Q, "w", 0, VT) == (3, [])
    assert backend.counts() == {}


def test_ack_and_lease_with_a_lost_lease_still_leases(backend):
    # Given a job whose lease expired and was taken over by another worker
    backend.enqueue(Q, "j0", b"x")
    first = backend.lease(Q, "w1", 1, 0.05)
    time.sleep(0.1)
    assert [x.job_id for x in backend.lease(Q, "w2", 1, VT)] == ["j0"]
    backend.enqueue(Q, "j1", b"y")
    # When the first worker acks it late while leasing more
    acked, leases = backend.ack_and_lease(first, Q, "w1", 10, VT)
    # Then the ack is a no-op and the lease still works
    assert acked == 0 and [x.job_id for x in leases] == ["j1"]


def test_wait_for_work_returns_by_its_timeout_without_work(backend):
    started = time.monotonic()
    asyncio.run(backend.wait_for_work([Q], 0.2))
    assert time.monotonic() - started >= 0.15
