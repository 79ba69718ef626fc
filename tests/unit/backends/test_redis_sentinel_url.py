"""``redis+sentinel://`` URLs: what each part means, and errors that name the wrong part."""

from __future__ import annotations

import re

import pytest

from kqueue.backends import BackendKind, open_backend
from kqueue.backends.redis_connect import WAIT_TIMEOUT_MS, SentinelURL, parse_sentinel_url
from kqueue.errors import BackendError

GOOD = [
    (
        "redis+sentinel://h1:26379,h2:26379/mymaster/0",
        SentinelURL((("h1", 26379), ("h2", 26379)), "mymaster", 0),
    ),
    ("redis+sentinel://h1/mymaster", SentinelURL((("h1", 26379),), "mymaster", 0)),
    ("redis+sentinel://h1:1234/svc/3", SentinelURL((("h1", 1234),), "svc", 3)),
    ("redis+sentinel://[::1]:26380/svc", SentinelURL((("::1", 26380),), "svc", 0)),
    (
        "redis+sentinel://:s%40cret@h1/svc?wait_replicas=1&wait_timeout_ms=250",
        SentinelURL((("h1", 26379),), "svc", 0, "s@cret", None, None, 1, 250),
    ),
    (
        "redis+sentinel://app:pw@h1/svc?sentinel_password=spw",
        SentinelURL((("h1", 26379),), "svc", 0, "pw", "app", "spw", 0, WAIT_TIMEOUT_MS),
    ),
]


@pytest.mark.parametrize(("url", "expected"), GOOD)
def test_a_good_url_says_which_sentinels_service_db_and_options(url, expected):
    assert parse_sentinel_url(url) == expected


BAD = [
    ("redis+sentinel:///mymaster/0", "no sentinel addresses"),
    ("redis+sentinel://h1:26379,/mymaster", "has no host"),
    ("redis+sentinel://h1:port/mymaster", "port 'port'"),
    ("redis+sentinel://h1:70000/mymaster", "port '70000'"),
    ("redis+sentinel://h1:26379", "no service name"),
    ("redis+sentinel://h1:26379/", "no service name"),
    ("redis+sentinel://h1/mymaster/zero", "database 'zero'"),
    ("redis+sentinel://h1/mymaster/0/extra", "has 3 parts"),
    ("redis+sentinel://h1/mymaster?wait_replica=1", "unknown option(s) wait_replica"),
    ("redis+sentinel://h1/mymaster?wait_replicas=-1", "wait_replicas='-1'"),
    ("redis+sentinel://h1/mymaster?wait_replicas=one", "wait_replicas='one'"),
    ("redis+sentinel://h1/mymaster?wait_timeout_ms=0", "wait_timeout_ms='0'"),
    ("redis+sentinel://[::1/mymaster", "malformed"),
    ("redis://h1/mymaster", "scheme must be redis+sentinel://"),
]


@pytest.mark.parametrize(("url", "names"), BAD)
def test_a_bad_url_gets_an_error_naming_the_part(url, names):
    with pytest.raises(BackendError, match=re.escape(names)):
        parse_sentinel_url(url)


def test_errors_never_show_the_password():
    with pytest.raises(BackendError) as caught:
        parse_sentinel_url("redis+sentinel://:hunter2@h1/svc?wait_replicas=x&sentinel_password=p2")
    assert "hunter2" not in str(caught.value) and "p2" not in str(caught.value)


def test_open_backend_knows_the_scheme_and_reads_the_prefix_and_wait_options():
    # no connection is made until the first command, so no sentinel needs to be running
    backend = open_backend("redis+sentinel://127.0.0.1:1/svc/2?prefix=app&wait_replicas=1")
    try:
        assert type(backend).__name__ == "SentinelBackend"
        assert (backend.prefix, backend.wait_replicas) == ("app", 1)
        assert "redis+sentinel://" in {f"{kind.value}://" for kind in BackendKind}
    finally:
        backend.close()


def test_a_bad_prefix_on_a_sentinel_url_is_refused_as_on_redis_urls():
    with pytest.raises(BackendError, match="prefix"):
        open_backend("redis+sentinel://h1/svc?prefix=a{b}")
