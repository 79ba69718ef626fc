"""The Redis key prefix is a URL option: several apps share one Redis without seeing each other."""

from __future__ import annotations

import pytest

from kqueue.backends import open_backend
from kqueue.errors import BackendError


def test_two_prefixes_on_one_server_are_separate(redis_server):
    # Given two apps' backends on one server, with their own prefixes
    first = open_backend(redis_server.url + "?prefix=app1")
    second = open_backend(redis_server.url + "?prefix=app2")
    first.client.flushdb()
    try:
        # When each enqueues a job
        first.enqueue("default", "j", b"one")
        second.enqueue("default", "j", b"two")
        # Then each leases only its own, and every key of the first starts with its prefix
        assert [x.body for x in first.lease("default", "w", 10, 30)] == [b"one"]
        assert [x.body for x in second.lease("default", "w", 10, 30)] == [b"two"]
        keys = {k.decode() for k in first.client.keys("*")}
        assert keys and all(k.startswith(("app1:", "app2:")) for k in keys)
        assert first.prefix == "app1" and "prefix" not in first.safe_url
    finally:
        first.close()
        second.close()


@pytest.mark.parametrize("prefix", ["", "a{b}", "a b"])
def test_a_bad_prefix_is_refused_with_the_option_named(redis_server, prefix):
    with pytest.raises(BackendError, match="prefix="):
        open_backend(f"{redis_server.url}?prefix={prefix}")
