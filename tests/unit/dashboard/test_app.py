"""The dashboard app in-process (Starlette's test client) on a ``memory://`` backend."""

from __future__ import annotations

import re
import time

import pytest
from starlette.testclient import TestClient

from kqueue.backends.memory import MemoryBackend
from kqueue.dashboard import DashboardSecurityError, Settings, check_bind, create_app
from kqueue.dashboard.security import COOKIE
from kqueue.job import encode_message
from kqueue.policy.trace import TraceRow
from kqueue.policy.trace_wire import encode_row

XSS = "<script>alert(1)</script>"


def rows(n: int, now: float, job_class: str = "mail") -> list[bytes]:
    return [
        encode_row(
            TraceRow(
                f"j{i}",
                "default",
                job_class,
                "inline",
                now - 30,
                now - 29,
                now - 28.5,
                1.0,
                0.5,
                0.1,
                20.0,
                "ok",
                1,
                "h:1",
                1.0,
                now - 30,
            )  # fmt: skip
        )
        for i in range(n)
    ]


@pytest.fixture
def backend():
    made = MemoryBackend()
    made.enqueue("default", "dead-1", encode_message(XSS, [XSS], {}, time.time()))
    (lease,) = made.lease("default", "w", 1, 30.0)
    made.dead(lease, f"ValueError: {XSS}")
    made.append_trace(rows(20, time.time()), 1000)
    return made


def client(backend, token=None, url="redis://:hunter2@db.example:6379/0") -> TestClient:
    app = create_app(Settings(url, token=token, loopback_only=token is None), backend)
    return TestClient(app, base_url="http://127.0.0.1")


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_pages_answer_and_never_show_the_password_or_raw_markup(backend):
    web = client(backend)
    for path in ("/", "/classes", "/dead", "/job?id=dead-1"):
        answer = web.get(path)
        assert answer.status_code == 200, path
        assert "hunter2" not in answer.text and "db.example" in answer.text
        assert XSS not in answer.text  # escaped wherever a job supplied it
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in web.get("/dead").text
    assert "content-security-policy" in web.get("/").headers


def test_json_endpoints_have_their_keys(backend):
    web = client(backend)
    overview = web.get("/api/overview").json()
    assert {"queues", "workers", "throughput_per_min"} <= overview.keys()
    assert sum(overview["throughput_per_min"]["tier"]["inline"]) == 20
    assert web.get("/api/classes").json()[0]["job_class"] == "mail"
    assert web.get("/api/dead").json()[0]["job_class"] == XSS
    assert web.get("/api/jobs/dead-1").json()["state"] == "dead"
    assert web.get("/api/jobs/nope").status_code == 404
    assert web.get("/healthz").json() == {"ok": True, "error": ""}


def test_a_post_without_the_csrf_token_is_403_and_with_it_works(backend):
    web = client(backend)
    assert web.post("/dead/retry", data={"job_id": "dead-1"}).status_code == 403
    assert web.post("/dead/retry", data={"job_id": "dead-1", "csrf": "x"}).status_code == 403
    token = csrf_of(web.get("/dead").text)
    answer = web.post("/dead/retry", data={"job_id": "dead-1", "csrf": token},
                      headers={"accept": "application/json"})  # fmt: skip
    assert answer.json() == {"done": "retried 1"}
    assert backend.counts()["default"]["ready"] == 1


def test_with_a_token_every_request_needs_it(backend):
    web = client(backend, token="s3cret")
    for path in ("/", "/api/overview", "/healthz", "/static/dashboard.js"):
        assert web.get(path).status_code == 401, path
    assert web.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    assert web.get("/", headers={"authorization": "Bearer s3cret"}).status_code == 200
    # the login form sets the cookie a browser then sends
    assert web.post("/login", data={"token": "nope"}).status_code == 401
    answer = web.post("/login", data={"token": "s3cret"}, follow_redirects=False)
    assert answer.status_code == 303 and COOKIE in answer.headers["set-cookie"]
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert web.get("/").status_code == 200


def test_loopback_without_token_refuses_other_host_names(backend):
    web = client(backend)
    assert web.get("/", headers={"host": "attacker.example"}).status_code == 400
    assert web.get("/", headers={"host": "localhost:8000"}).status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.com"])
def test_a_non_loopback_bind_needs_a_token(host):
    with pytest.raises(DashboardSecurityError, match="without a token"):
        check_bind(host, None)
    check_bind(host, "t")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_bind_needs_none(host):
    check_bind(host, None)


def test_a_bad_what_if_value_is_a_400_naming_the_setting(backend):
    web = client(backend)
    answer = web.get("/plan/kqueue.toml", params={"pool_size": "-3"})
    assert answer.status_code == 400 and "pool_size" in answer.json()["error"]
    toml = web.get("/plan/kqueue.toml", params={"pool_size": "3", "pool_max_size": "4"})
    assert "pool_size = 3\n" in toml.text
    assert toml.headers["content-disposition"].startswith("attachment")


def test_a_form_that_is_not_urlencoded_or_too_big_is_a_400(backend):
    web = client(backend)
    token = csrf_of(web.get("/dead").text)
    big = web.post("/dead/delete", data={"csrf": token, "job_id": "x" * 20_000})
    assert big.status_code == 400
    multipart = web.post("/dead/delete", files={"f": ("a", b"b")}, data={"csrf": token})
    assert multipart.status_code == 400 and "URL-encoded" in multipart.json()["error"]
