"""The backend contract for what handles ask: records with a TTL, states, unique keys, cancel.

Runs against every backend (the ``backend`` fixture in conftest.py), as ``test_contract``.
"""

from __future__ import annotations

import threading
import time

import pytest

from kqueue.policy.status import JobState

Q = "default"
VT = 30.0


def lease_one(backend, vt=VT):
    [lease] = backend.lease(Q, "w1", 1, vt)
    return lease


def test_a_record_sent_with_the_ack_is_kept_for_its_ttl_then_expires(backend):
    # Given a job acked with its record for 0.3 s
    backend.enqueue(Q, "j", b"body")
    backend.ack([lease_one(backend)], {"j": (b'{"state":"done","result":3}', 0.3)})
    # Then it is done with that record, and unknown once the TTL passed
    found = backend.lookup("j")
    assert found.state is JobState.DONE and found.record == b'{"state":"done","result":3}'
    assert found.queue == Q
    time.sleep(0.45)
    backend.lease(Q, "w1", 1, VT)  # SQLite purges on lease; Redis and memory need nothing
    assert backend.lookup("j").state is JobState.UNKNOWN


def test_an_ack_without_a_record_or_with_ttl_zero_keeps_nothing(backend):
    backend.enqueue_many(Q, [("a", b"x"), ("b", b"y")])
    leases = backend.lease(Q, "w1", 2, VT)
    assert backend.ack(leases, {"b": (b'{"state":"done"}', 0.0)}) == 2
    assert backend.lookup("a").state is JobState.UNKNOWN
    assert backend.lookup("b").state is JobState.UNKNOWN


def test_lookup_tells_each_state_of_a_job(backend):
    # scheduled, queued
    backend.enqueue(Q, "later", b"x", delay_s=60)
    backend.enqueue(Q, "now", b"y")
    assert backend.lookup("later").state is JobState.SCHEDULED
    assert backend.lookup("later").due_at > time.time() + 50
    assert backend.lookup("now").state is JobState.QUEUED
    # running, with its worker and attempt
    running = lease_one(backend)
    found = backend.lookup("now")
    assert found.state is JobState.RUNNING and found.attempts == 1 and found.body == b"y"
    assert found.worker == "w1"
    # retrying, with its error
    assert backend.retry(running, 60, "ValueError: boom")
    found = backend.lookup("now")
    assert found.state is JobState.RETRYING and "boom" in found.error
    # dead
    backend.enqueue(Q, "bad", b"z")
    backend.dead(lease_one(backend), "unknown job name")
    assert backend.lookup("bad").state is JobState.DEAD
    assert backend.lookup("never").state is JobState.UNKNOWN
    assert backend.lookup("now", queue="other").state is JobState.UNKNOWN


def test_an_expired_lease_is_queued_again(backend):
    backend.enqueue(Q, "j", b"x")
    lease_one(backend, vt=0.05)
    time.sleep(0.1)
    assert backend.lookup("j").state is JobState.QUEUED


def test_submit_with_a_unique_key_returns_the_holder_while_it_waits_or_runs(backend):
    # Given a job holding key k
    assert backend.submit(Q, "first", b"1", unique_key="k") == "first"
    # When the key is submitted again while it is queued, then while it runs
    assert backend.submit(Q, "second", b"2", unique_key="k") == "first"
    lease = lease_one(backend)
    assert backend.submit(Q, "third", b"3", unique_key="k") == "first"
    # Then only the first exists; once it is acked the key is free again
    assert backend.lookup("second").state is JobState.UNKNOWN
    backend.ack([lease])
    assert backend.submit(Q, "fourth", b"4", unique_key="k") == "fourth"
    assert backend.lookup("fourth").state is JobState.QUEUED


def test_a_unique_key_stays_taken_for_unique_for_s_after_its_job_ended(backend):
    backend.submit(Q, "first", b"1", unique_key="k", unique_for_s=0.4)
    backend.ack([lease_one(backend)])
    assert backend.submit(Q, "second", b"2", unique_key="k") == "first"
    time.sleep(0.5)
    assert backend.submit(Q, "third", b"3", unique_key="k") == "third"


def test_a_dead_or_cancelled_holder_frees_its_unique_key(backend):
    backend.submit(Q, "a", b"1", unique_key="k")
    backend.dead(lease_one(backend), "boom")
    assert backend.submit(Q, "b", b"2", unique_key="k") == "b"
    assert backend.cancel("b", Q, b'{"state":"cancelled"}', 60) is JobState.QUEUED
    assert backend.submit(Q, "c", b"3", unique_key="k") == "c"


def test_unique_keys_are_atomic_under_concurrent_submits(backend):
    winners = []

    def submit(i):
        winners.append(backend.submit(Q, f"j{i}", b"x", unique_key="same"))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(winners)) == 1
    assert sum(backend.counts(Q)[Q].values()) == 1


def test_cancel_removes_a_waiting_job_and_keeps_its_record(backend):
    backend.enqueue(Q, "later", b"x", delay_s=60)
    assert backend.cancel("later", None, b'{"state":"cancelled"}', 60) is JobState.SCHEDULED
    found = backend.lookup("later")
    assert found.record == b'{"state":"cancelled"}'
    assert backend.counts(Q).get(Q, {}).get("scheduled", 0) == 0
    assert backend.cancel("never", None, b"{}", 60) is JobState.UNKNOWN


def test_cancel_flags_a_running_job_for_its_worker_and_it_is_never_retried(backend):
    # Given a running job
    backend.enqueue_many(Q, [("run", b"x"), ("other", b"y")])
    run, other = backend.lease(Q, "w1", 2, VT)
    # When it is cancelled
    assert backend.cancel("run", Q, b'{"state":"cancelled"}', 60) is JobState.RUNNING
    # Then its worker sees the flag, and a retry ends it as cancelled instead
    assert backend.cancel_requested([run, other]) == {"run"}
    assert backend.retry(run, 0, "killed")
    assert backend.lookup("run").record == b'{"state":"cancelled"}'
    assert backend.lease(Q, "w1", 10, VT) == []


def test_a_flagged_job_whose_worker_died_ends_cancelled_at_its_next_lease(backend):
    backend.enqueue(Q, "run", b"x")
    lease_one(backend, vt=0.1)
    backend.cancel("run", Q, b'{"state":"cancelled"}', 60)
    time.sleep(0.15)
    assert backend.lease(Q, "w2", 10, VT) == []
    assert backend.lookup("run").record == b'{"state":"cancelled"}'


def test_wait_finished_returns_by_its_timeout_and_soon_after_an_ack(backend):
    backend.enqueue(Q, "j", b"x")
    lease = lease_one(backend)
    started = time.monotonic()
    backend.wait_finished("j", Q, 0.1)
    assert time.monotonic() - started >= 0.05
    threading.Timer(0.1, backend.ack, ([lease], {"j": (b'{"state":"done"}', 60)})).start()
    started = time.monotonic()
    while backend.lookup("j").state is not JobState.DONE and time.monotonic() - started < 3:
        backend.wait_finished("j", Q, 2.0 if backend.wakes_on_finish else 0.01)
    waited_s = time.monotonic() - started
    assert backend.lookup("j").state is JobState.DONE
    assert waited_s < 1.5


@pytest.mark.parametrize("n", [3])
def test_enqueue_many_jobs_are_queued_with_their_due_time(backend, n):
    backend.enqueue_many(Q, [(f"j{i}", b"x") for i in range(n)])
    found = backend.lookup("j0")
    assert found.state is JobState.QUEUED and found.due_at <= time.time()
