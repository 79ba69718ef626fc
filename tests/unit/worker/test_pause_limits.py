"""Pauses and shared limits in one worker: a paused class waits, others run; slots hold."""

from __future__ import annotations

import dataclasses
import threading
import time

from kqueue import App
from kqueue.policy.config import Config
from kqueue.testing import WorkerThread
from tests.conftest import run_kqueue

CONFIG = Config(max_concurrent_inline=8, poll_interval_s=0.02, pool_size=0, pool_max_size=0)


def _app(url="memory://"):
    app = App(url)
    ran: list[str] = []
    running = {"now": 0, "peak": 0}
    lock = threading.Lock()

    @app.job(name="mail")
    def mail(i: int) -> None:
        ran.append(f"mail{i}")

    @app.job(name="report")
    def report(i: int) -> None:
        ran.append(f"report{i}")

    @app.job(name="api", concurrency_limit=2)
    def api(i: int) -> None:
        with lock:
            running["now"] += 1
            running["peak"] = max(running["peak"], running["now"])
        time.sleep(0.05)
        with lock:
            running["now"] -= 1
        ran.append(f"api{i}")

    return app, ran, running


def _wait(predicate, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_a_paused_class_stays_queued_while_others_run_then_resumes():
    # Given the "mail" class paused, and mail and report jobs queued
    app, ran, _ = _app()
    app.backend.set_paused("job:mail", True)
    app.jobs["mail"].dispatch_many([((i,), {}) for i in range(5)])
    app.jobs["report"].dispatch_many([((i,), {}) for i in range(5)])
    with WorkerThread(app, CONFIG, force_inline=True):
        # Then the reports run and the mail waits, its attempts not counted
        assert _wait(lambda: sum(r.startswith("report") for r in ran) == 5)
        time.sleep(0.5)
        assert not [r for r in ran if r.startswith("mail")]
        leftover = app.backend.counts()["default"]
        assert leftover["ready"] + leftover["scheduled"] == 5
        # When resumed, the mail runs
        app.backend.set_paused("job:mail", False)
        assert _wait(lambda: sum(r.startswith("mail") for r in ran) == 5)
    assert not app.backend.dead_letters()


def test_concurrency_limit_holds_in_one_worker_with_room_for_more():
    app, ran, running = _app()
    app.jobs["api"].dispatch_many([((i,), {}) for i in range(12)])
    with WorkerThread(app, CONFIG, force_inline=True):
        assert _wait(lambda: len(ran) == 12)
    assert running["peak"] == 2
    assert app.backend.slot_holders("concurrency:api") == {}


def test_kqueue_pause_and_resume_keep_the_pause_in_the_backend(tmp_path):
    url = f"sqlite:///{tmp_path / 'kqueue.db'}"
    done = run_kqueue(tmp_path, "pause", "--backend", url, "--queue", "emails", "--job", "t.x")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "paused: job:t.x, queue:emails"
    done = run_kqueue(tmp_path, "resume", "--backend", url, "--queue", "emails")
    assert done.stdout.strip() == "paused: job:t.x"
    assert App(url).backend.paused() == {"job:t.x"}


def test_a_worker_wakes_at_the_turn_of_a_job_it_held_back_not_at_its_next_poll():
    # Given a class limited to 10/s (5 tokens at once), 10 of its jobs, and a worker that
    # polls only every 3 s
    app = App("memory://")
    starts: list[float] = []

    @app.job(name="sms", rate_limit="10/s")
    def sms(i: int) -> None:
        starts.append(time.monotonic())

    sms.dispatch_many([((i,), {}) for i in range(10)])
    config = Config(max_concurrent_inline=8, poll_interval_s=3.0, pool_size=0, pool_max_size=0)
    with WorkerThread(app, config, force_inline=True):
        assert _wait(lambda: len(starts) == 10)
    # Then the five it held back started at their turns (0.1 s apart), not at a poll 3 s on
    assert starts[-1] - starts[0] < 1.5
    assert not app.backend.dead_letters()


def test_a_job_behind_a_full_semaphore_starts_when_a_slot_frees_not_at_the_next_poll():
    # Given a class limited to one running job, two of its jobs, and a worker that polls only
    # every 3 s (a job held back in the backend would wait that long)
    app = App("memory://")
    runs: list[tuple[float, float]] = []

    @app.job(name="export", concurrency_limit=1)
    def export(i: int) -> None:
        started = time.monotonic()
        time.sleep(0.1)
        runs.append((started, time.monotonic()))

    export.dispatch_many([((i,), {}) for i in range(2)])
    config = Config(max_concurrent_inline=8, poll_interval_s=3.0, pool_size=0, pool_max_size=0)
    with WorkerThread(app, config, force_inline=True):
        assert _wait(lambda: len(runs) == 2)
    # Then the second waited on the worker and took the slot as the first ended
    (_, first_end), (second_start, _) = runs
    assert 0.0 <= second_start - first_end < 0.5
    assert app.backend.slot_holders("concurrency:export") == {}
    assert not app.backend.dead_letters()


def test_a_job_cancelled_while_it_waits_for_a_slot_does_not_hold_back_the_next_one():
    # Given a class limited to one running job: one runs (1.2 s), the next waits on the worker
    # for the slot (until a poll of 1.5 s passes), the third waits in the backend (its wait
    # list's second); a lease (a wait-list entry's life) of 6 s, and short jobs of another
    # class keeping the worker's loop turning (it looks for cancels as it turns)
    app = App("memory://")
    starts: dict[int, float] = {}
    ended: dict[int, float] = {}

    @app.job(name="export", concurrency_limit=1)
    def export(i: int) -> None:
        starts[i] = time.monotonic()
        time.sleep(1.2 if i == 0 else 0.01)
        ended[i] = time.monotonic()

    @app.job(name="tick")
    def tick() -> None:
        pass

    config = dataclasses.replace(CONFIG, poll_interval_s=1.5, visibility_timeout_s=6.0)
    with WorkerThread(app, config, force_inline=True):
        export.dispatch(0)
        assert _wait(lambda: 0 in starts)
        waiter, last = export.dispatch(1), export.dispatch(2)
        for _ in range(6):
            tick.dispatch()
            time.sleep(0.05)
        # When the one waiting on the worker is cancelled
        waiter.cancel()
        for _ in range(10):
            tick.dispatch()
            time.sleep(0.05)
        # Then the third starts at its next lease (a poll), not when the entry lapses (6 s)
        assert _wait(lambda: 2 in starts, timeout_s=10.0)
    assert 1 not in starts and starts[2] - ended[0] < 3.0
    assert last.result(timeout_s=1.0) is None
