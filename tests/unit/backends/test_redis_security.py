"""A crafted message cannot make a worker import, unpickle or run anything it does not register."""

from __future__ import annotations

import asyncio
import json
import os
import pickle

import pytest

from kqueue.job import App
from kqueue.policy.config import Config
from kqueue.worker import Worker

pytestmark = pytest.mark.redis


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED-pickle",))


def test_crafted_messages_are_dead_lettered_and_the_worker_carries_on(
    redis_server, tmp_path, monkeypatch
):
    # Given raw messages pushed straight into the queue next to one real job
    monkeypatch.chdir(tmp_path)
    app = App(redis_server.url)
    app.backend.client.flushdb()
    ran = []
    app.job(lambda: ran.append(1), name="safe.job")
    crafted = {
        "pickle": pickle.dumps(_Boom()),
        "by-path": json.dumps(
            {"v": 1, "name": "os.system", "args": ["touch PWNED-path"], "submitted_at": 1}
        ).encode(),
        "dunder": json.dumps(
            {"v": 1, "name": "__import__('os').system('touch PWNED-import')", "submitted_at": 1}
        ).encode(),
        "not-an-object": b'["os.system", "touch PWNED-list"]',
    }
    for job_id, body in crafted.items():
        app.backend.enqueue("default", job_id, body)
    app.jobs["safe.job"].dispatch()
    # When a burst worker drains the queue
    summary = asyncio.run(Worker(app, Config(), burst=True, force_inline=True).run())
    # Then every crafted message is dead-lettered with a reason, nothing ran, the real job did
    reasons = {x.job_id: x.reason for x in app.backend.dead_letters()}
    assert set(reasons) == set(crafted)
    assert reasons["pickle"].startswith("undecodable payload: payload is not JSON")
    assert reasons["by-path"].startswith("unknown job name 'os.system'")
    assert reasons["dunder"].startswith('unknown job name "__import__')
    assert "expected an object" in reasons["not-an-object"]
    assert ran == [1] and summary.dead_lettered == len(crafted)
    assert not list(tmp_path.glob("PWNED*"))
    app.close()


def test_pool_and_stats_skip_a_forged_worker_status(tmp_path):
    # Given a live worker status that is not JSON, and one that is JSON but not a status
    from kqueue.backends.sqlite import SQLiteBackend
    from tests.conftest import run_kqueue

    backend = SQLiteBackend(tmp_path / "kq.db")
    backend.publish_status("forged-1", b"\x80\x04not json", ttl_s=30)
    backend.publish_status("forged-2", b'{"pid": "x"}', ttl_s=30)
    backend.close()
    url = f"sqlite:///{tmp_path / 'kq.db'}"
    # When an operator looks, then both commands work and say there is no real worker
    for command in ("pool", "stats"):
        result = run_kqueue(tmp_path, command, "--backend", url)
        assert result.returncode == 0, result.stderr
        assert "unreadable status" in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        (
            "rediss://user:p%40w@h/0?ssl_ca_certs=/ca.crt",
            "rediss://user:***@h/0?ssl_ca_certs=/ca.crt",
        ),
        ("redis://h/0?password=pw&db=1", "redis://h/0?password=***&db=1"),
        ("rediss://h/0?ssl_password=key-pw", "rediss://h/0?ssl_password=***"),
        ("redis://user@h/0", "redis://user@h/0"),
        ("sqlite:///var/kq.db", "sqlite:///var/kq.db"),
    ],
)
def test_redact_url_hides_every_password_redis_py_would_read(url, shown):
    from kqueue.backends import redact_url

    assert redact_url(url) == shown
