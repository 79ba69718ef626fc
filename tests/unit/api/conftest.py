"""What the handle tests share: an app on each backend, fast settings."""

from __future__ import annotations

import uuid

import pytest

import kqueue
from kqueue.policy.config import Config
from tests.conftest import require_redis_server

#: A small, quick worker: one pool process, fast polling, near-instant retries.
FAST = Config(pool_size=1, pool_max_size=1, poll_interval_s=0.01, retry_backoff_s=0.01)


@pytest.fixture(params=["memory", "redis", "sqlite"])
def app(request, tmp_path):
    """An App on memory://, on the session's private Redis (a prefix of its own) and on a
    private SQLite file, in turn: the handle API's contract on every backend."""
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kq.db'}"
    else:
        require_redis_server()
        url = request.getfixturevalue("redis_server").url + f"?prefix=t{uuid.uuid4().hex[:8]}"
    made = kqueue.App(url)
    yield made
    made.close()
