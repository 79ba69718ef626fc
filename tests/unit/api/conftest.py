"""What the handle tests share: an app on each in-process-testable backend, fast settings."""

from __future__ import annotations

import pytest

import kqueue
from kqueue.policy.config import Config

#: A small, quick worker: one pool process, fast polling, near-instant retries.
FAST = Config(pool_size=1, pool_max_size=1, poll_interval_s=0.01, retry_backoff_s=0.01)


@pytest.fixture(params=["memory", "sqlite"])
def app(request, tmp_path):
    """An App on memory:// and on a private SQLite file, in turn."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'kq.db'}"
    made = kqueue.App(url)
    yield made
    made.close()
