"""Celery's names on kqueue: ``delay``, ``apply_async``, ``@app.task``, ``Celery``, ``get``.

Each mapping is checked on what the backend holds afterwards (memory and SQLite); the app
written for Celery runs through a real worker in tests/docs/test_guide_jobs.py.
"""

from __future__ import annotations

import datetime
import time

import pytest

import kqueue
from kqueue.testing import run_until_empty
from tests.unit.api.conftest import FAST


def register(app):
    @app.task(name="add")
    def add(a: int, b: int) -> int:
        return a + b

    return add


def test_delay_is_dispatch_and_get_is_result(app):
    add = register(app)
    handle = add.delay(2, b=3)
    assert handle.ready() is False
    run_until_empty(app, config=FAST)
    assert handle.ready() is True and handle.get(timeout=5) == 5


def test_apply_async_maps_countdown_eta_and_task_id_onto_options(app):
    add = register(app)
    # countdown is delay_s, task_id is job_id
    before = time.time()
    counted = add.apply_async((1, 2), countdown=30, task_id="order-1")
    info = counted.info()
    assert counted.id == "order-1" and info.state is kqueue.JobState.SCHEDULED
    assert before + 29 < info.due_at < time.time() + 31
    # a naive eta is UTC, as Celery reads it
    eta = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(minutes=5)
    dated = add.apply_async(args=[1, 2], eta=eta)
    assert abs(dated.info().due_at - (time.time() + 300)) < 5
    # kwargs, and kqueue's own unique_key, go through
    first = add.apply_async(kwargs={"a": 1, "b": 1}, unique_key="u")
    assert add.apply_async(kwargs={"a": 9, "b": 9}, unique_key="u") == first
    assert first.status() is kqueue.JobState.QUEUED


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ({"expires": 60, "priority": 3}, "option\\(s\\) expires, priority not supported"),
        ({"priority": 3}, "priority: use job.options\\(priority=<int>\\)"),
        ({"countdown": 5, "eta": datetime.datetime.now()}, "countdown or eta, not both"),
        ({"countdown": -1}, "delay_s=-1"),
        ({"queue": "other"}, "this job's queue is 'default'"),
        ({"args": 5}, "expected a tuple or list"),
        ({"kwargs": [1]}, "expected a dict"),
        ({"eta": "tomorrow"}, "not an ISO 8601"),
        ({"task_id": 7}, "job_id=7"),
    ],
)
def test_apply_async_refuses_what_kqueue_cannot_do_and_names_it(app, call, match):
    add = register(app)
    with pytest.raises(kqueue.JobError, match=match):
        add.apply_async(**{"args": (1, 2), **call})
    assert app.backend.counts() == {}


def test_app_task_maps_celerys_task_options(app):
    @app.task(
        name="fetch",
        max_retries=2,
        autoretry_for=(ConnectionError,),
        retry_backoff=True,
        retry_backoff_max=30,
        time_limit=9,
        ignore_result=True,
    )
    def fetch(url: str) -> str:
        return url

    declared = fetch.declared
    assert (declared.max_attempts, declared.retry_backoff_s, declared.retry_backoff_max_s) == (
        3,
        1.0,
        30.0,
    )
    assert declared.timeout_s == 9 and declared.result_ttl_s == 0
    assert fetch.retry_on == (ConnectionError,)
    assert fetch.name == "fetch" and isinstance(fetch, kqueue.Job)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"bind": True}, "bind: drop it and call kqueue.current_job"),
        ({"rate_limit": "10/m", "acks_late": True}, "acks_late, rate_limit not supported"),
        ({"max_retries": None}, "max_retries=None"),
        ({"colour": "red"}, "unknown option\\(s\\) colour"),
    ],
)
def test_app_task_refuses_celery_options_it_has_no_equivalent_for(app, options, match):
    with pytest.raises((kqueue.JobError, kqueue.ConfigError), match=match):
        app.task(lambda: None, **options)


def test_celery_app_is_an_app_on_its_broker_and_refuses_other_settings(tmp_path):
    app = kqueue.Celery("proj", broker="memory://", backend="redis://unused")
    assert isinstance(app, kqueue.App) and app.backend_url == "memory://"
    with pytest.raises(kqueue.JobError, match="setting\\(s\\) include not supported"):
        kqueue.Celery("proj", broker="memory://", include=["proj.tasks"])
