"""Two apps on one Redis with their own ``?prefix=``: neither sees the other's jobs (item 9).

Real workers (``WorkerThread``) on the session's private Redis; the same job ids and unique keys
in both apps, blocking and async clients, and no key outside the two prefixes.
"""

from __future__ import annotations

import asyncio

import kqueue
from kqueue.testing import WorkerThread
from tests.conftest import require_redis_server
from tests.unit.api.conftest import FAST


def make_app(url: str, tag: str) -> tuple[kqueue.App, kqueue.Job]:
    app = kqueue.App(url)

    @app.job(name="whoami", tier="inline")
    def whoami(n: int) -> str:
        return f"{tag}:{n}"

    return app, whoami


def test_two_prefixes_keep_two_apps_apart_on_one_redis(redis_server):
    require_redis_server()
    first, first_job = make_app(redis_server.url + "?prefix=shop", "shop")
    second, second_job = make_app(redis_server.url + "?prefix=blog", "blog")
    try:
        # Given the same ids and unique keys dispatched in both apps
        a = first_job.options(job_id="same-id").dispatch(1)
        b = second_job.options(job_id="same-id").dispatch(2)
        ua = first_job.options(unique_key="nightly").dispatch(3)
        ub = second_job.options(unique_key="nightly").dispatch(4)
        ub_async = asyncio.run(second_job.options(unique_key="nightly").dispatch_async(5))
        # Then each is its own job (a key taken in one app is free in the other)
        assert ua != ub and ub_async == ub
        assert set(first.backend.counts()) == set(second.backend.counts()) == {"default"}
        assert first.backend.counts()["default"]["ready"] == 2
        # When only the first app's worker runs
        with WorkerThread(first, FAST):
            assert a.result(timeout_s=10) == "shop:1" and ua.result(timeout_s=10) == "shop:3"
        # Then the second app's jobs are untouched, and every key is under one prefix
        assert b.status() is kqueue.JobState.QUEUED and ub.status() is kqueue.JobState.QUEUED
        keys = {key.decode() for key in first.backend.client.keys("*")}
        ours = {k for k in keys if "same-id" in k or "nightly" in k}
        assert ours and {k for k in ours if not k.startswith(("shop:", "blog:"))} == set()
        with WorkerThread(second, FAST):
            assert b.result(timeout_s=10) == "blog:2" and ub.result(timeout_s=10) == "blog:4"
    finally:
        first.close()
        second.close()
