"""The scripts' own connection: a killed connection, a flushed script cache, a busy line and a
forked child all end in the same replies as through the client, with nothing lost or doubled."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

from kqueue.backends.redis import RedisBackend
from kqueue.backends.redis_direct import Busy
from tests.conftest import redis_backend

pytestmark = pytest.mark.redis


@pytest.fixture
def backend(tmp_path, request):
    made = redis_backend(tmp_path, request)
    yield made
    made.close()


def _kill_line(backend: RedisBackend) -> None:
    """Kill the line's server-side connection, as a restart or an idle timeout would."""
    line_id = backend._line.call("CLIENT", "ID")
    backend.client.execute_command("CLIENT", "KILL", "ID", line_id)


def test_a_dispatch_and_a_lease_after_the_line_was_killed_go_through_once(backend):
    # Given a line whose connection the server dropped
    backend.enqueue("q", "a", b"{}")
    _kill_line(backend)
    # When a job is dispatched and a worker leases (each call is repeated through the client)
    backend.enqueue("q", "b", b"{}")
    _kill_line(backend)
    leases = backend.lease("q", "w", 10, 30.0)
    # Then both jobs are there once, and the line works again
    assert sorted(lease.job_id for lease in leases) == ["a", "b"]
    assert backend.ack(leases) == 2
    assert backend._line.call("PING") == b"PONG"


def test_scripts_flushed_from_the_server_are_loaded_again(backend):
    # Given a server that forgot the scripts (restarted or failed over)
    backend.client.script_flush()
    # When a dispatch (one script) and an ack with a lease (a pipeline) run
    backend.enqueue("q", "a", b"{}")
    backend.client.script_flush()
    acked, leases = backend.ack_and_lease([], "q", "w", 5, 30.0)
    # Then both went through
    assert (acked, [lease.job_id for lease in leases]) == (0, ["a"])


def test_a_busy_line_sends_the_call_through_the_client(backend):
    # Given another thread in the middle of a call on the line
    backend._line._lock.acquire()
    try:
        with pytest.raises(Busy):
            backend._line.call("PING")
        # When this thread dispatches, Then the call goes through the client and lands
        done = []
        thread = threading.Thread(target=lambda: done.append(backend.enqueue("q", "a", b"{}")))
        thread.start()
        thread.join(10)
        assert done == [None]
    finally:
        backend._line._lock.release()
    assert [lease.job_id for lease in backend.lease("q", "w", 5, 30.0)] == ["a"]


def test_a_forked_child_takes_a_connection_of_its_own(backend):
    # Given a parent whose line is connected
    parent_id = backend._line.call("CLIENT", "ID")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its line must not be the parent's connection
        try:
            backend.release_after_fork()
            os.write(write, str(backend._line.call("CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_id = int(os.read(read, 64) or b"0")
    os.close(read)
    # Then the child used another connection, and the parent's still answers in step
    assert child_id not in (0, parent_id)
    assert backend._line.call("CLIENT", "ID") == parent_id


def test_an_awaited_ack_and_lease_matches_the_blocking_one_and_survives_a_killed_line(backend):
    import asyncio

    async def scenario() -> list:
        # Given two jobs, one leased the awaited way on a working line
        backend.enqueue("q", "a", b"{}")
        backend.enqueue("q", "b", b"{}")
        _, first = await backend.ack_and_lease_async([], "q", "w", 1, 30.0)
        # When the line is killed and the next call acks the first and leases the second
        _kill_line(backend)
        acked, second = await backend.ack_and_lease_async(first, "q", "w", 5, 30.0)
        # and the scripts are flushed before a last, empty, lease
        backend.client.script_flush()
        _, none = await backend.ack_and_lease_async(second, "q", "w", 5, 30.0)
        return [[x.job_id for x in first], acked, [x.job_id for x in second], none]

    # Then every job was leased once and acked, whatever way each call went
    assert asyncio.run(scenario()) == [["a"], 1, ["b"], []]
    assert backend.counts().get("q", {}).get("leased", 0) == 0


def test_an_awaited_reply_that_never_comes_gives_up_at_the_socket_timeout(request):
    # Given a line whose server stops answering (paused: as a frozen primary or a cut link)
    server = request.getfixturevalue("redis_server")
    made = RedisBackend.from_url(server.url, socket_timeout_s=0.2)
    try:
        assert made._line.call("PING") == b"PONG"
        made.client.execute_command("CLIENT", "PAUSE", "800", "ALL")
        began = time.monotonic()
        # When the worker awaits a reply on it
        with pytest.raises(Busy):
            asyncio.run(made._line.pipeline_async([("PING",)]))
        # Then it gives up at the client's socket timeout, not when the server comes back
        assert time.monotonic() - began < 0.7
    finally:
        time.sleep(0.8)  # the pause ends before the next test uses the server
        made.close()
