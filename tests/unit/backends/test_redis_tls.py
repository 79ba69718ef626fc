"""``rediss://``: a job runs end to end through a private TLS redis-server with a password, and
the password never shows in what the worker or the operator commands print.

The server speaks only TLS (no plain port) with a throwaway CA made by ``openssl``. A server built
without TLS (the dev extra's bundled Valkey) gets a TLS-terminating proxy in front instead, so the
client side is proven either way; only a machine without ``openssl`` skips, and under ``CI=true``
fails: see "TLS test on a build without TLS" in docs/DECISIONS.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import redis

from kqueue.job import App
from kqueue.testing import RedisServer, TLSProxy, TLSUnsupported, local_url, make_tls_files
from tests.conftest import require_redis_server, run_kqueue

pytestmark = pytest.mark.redis

SECRET = "tls-s3cret/with@odd:chars"

TLS_APP = """
from pathlib import Path
from kqueue import App

app = App()


@app.job(name="tls.touch", tier="inline")
def touch(name):
    Path(name).write_text("ran")
"""


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must show that rediss:// works")
    pytest.skip(reason)


@dataclass(frozen=True)
class Endpoint:
    url: str
    port: int


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A private server reached only over TLS, with a password: the server's own TLS, or a
    TLS proxy in front of a plain server when its build has no TLS."""
    require_redis_server()
    folder = tmp_path_factory.mktemp("redis-tls")
    try:
        server = RedisServer(folder, tls=True, password=SECRET)
        server.start()
    except FileNotFoundError as exc:  # openssl missing
        _missing(str(exc))
    except TLSUnsupported:
        yield from _behind_tls_proxy(folder / "plain")
        return
    yield Endpoint(server.url, server.port)
    server.stop()


def _behind_tls_proxy(folder):
    with RedisServer(folder, password=SECRET) as plain:
        proxy = TLSProxy(make_tls_files(folder / "tls"), plain.port).start()
        try:
            yield Endpoint(local_url(proxy.port, SECRET, proxy.files), proxy.port)
        finally:
            proxy.stop()


@pytest.mark.timeout(90)
def test_a_job_runs_through_rediss_and_the_password_is_never_printed(tls_server, tmp_path):
    # Given a TLS-only server: a plain connection to its port is refused
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(port=tls_server.port, socket_timeout=2, password=SECRET).ping()
    assert tls_server.url.startswith("rediss://")
    (tmp_path / "tls_app.py").write_text(TLS_APP)
    # When a job is dispatched with App(backend="rediss://...") and a burst worker runs it
    app = App(backend=tls_server.url)
    app.backend.client.flushdb()
    app.job(lambda name: None, name="tls.touch").dispatch("done.txt")
    url = tls_server.url
    run = run_kqueue(tmp_path, "-v", "run", "--app", "tls_app:app", "--backend", url, "--burst")
    # Then it ran once and was acked, over TLS, and no output shows the password
    assert run.returncode == 0, run.stderr[-2000:]
    assert (tmp_path / "done.txt").read_text() == "ran"
    assert app.backend.counts() == {}
    stats = run_kqueue(tmp_path, "stats", "--backend", url)
    assert stats.returncode == 0, stats.stderr[-2000:]
    for text in (run.stdout, run.stderr, stats.stdout, stats.stderr):
        assert SECRET not in text
    app.close()


@pytest.mark.timeout(60)
def test_a_wrong_password_is_reported_without_showing_it(tls_server, tmp_path):
    # Given the right server with a wrong password in the URL
    wrong = "wr0ng-pass-word"
    right = urlsplit(tls_server.url).password
    url = tls_server.url.replace(f":{right}@", f":{wrong}@")
    assert wrong in url
    # When an operator command uses it
    stats = run_kqueue(tmp_path, "stats", "--backend", url)
    # Then it fails, saying where it tried, with the password hidden
    assert stats.returncode != 0
    assert "rediss://:***@127.0.0.1" in stats.stderr
    assert wrong not in stats.stdout + stats.stderr
