"""Schedules fired by the workers: one leader, each tick once, takeover when it stops."""

from __future__ import annotations

import time

import pytest

from kqueue import App
from kqueue.errors import ConfigError
from kqueue.policy.config import Config
from kqueue.policy.schedule import parse_schedules
from kqueue.worker.periodic import Periodic, tick_job_id


def _app():
    app = App("memory://")

    @app.periodic(every_s=0.5)
    @app.job(name="beat")
    def beat() -> None:
        pass

    return app


def test_two_workers_one_leader_each_tick_once_and_a_takeover_when_it_stops():
    # Given two workers' schedule runners on one backend, leases of 0.6 s
    app = _app()
    a = Periodic(app, app.schedules, "a", 0.6)
    b = Periodic(app, app.schedules, "b", 0.6)
    start = time.time()
    # When both step for 2 s, then a stops (it died) and b steps for 2 s more
    while time.time() < start + 4.0:
        now = time.time()
        if now < start + 2.0 and a.due(now):
            a.step(now)
        if b.due(now):
            b.step(now)
        time.sleep(0.02)
    # Then a led first, b took over, and every tick since the schedule began was queued once
    assert a.fired >= 2 and b.fired >= 2
    assert b.leading and app.backend.leader()[0] == "b"
    leases = app.backend.lease("default", "w", 100, 30.0)
    ids = [lease.job_id for lease in leases]
    assert len(ids) == len(set(ids))
    first = (int(start / 0.5) + 1) * 0.5
    expected = {tick_job_id("beat", first + 0.5 * k) for k in range(6)}  # ticks in [start, start+3)
    assert expected <= set(ids)


def test_a_schedule_naming_an_unregistered_job_is_refused():
    app = App("memory://")
    schedules = parse_schedules({"nightly": {"job": "tasks.gone", "cron": "0 3 * * *"}}, "k.toml")
    with pytest.raises(ConfigError, match="'tasks.gone', which the app does not register"):
        Periodic(app, schedules, "w", 10.0)


def test_config_load_checks_the_schedules_tables(tmp_path):
    path = tmp_path / "kqueue.toml"
    path.write_text('[schedules.nightly]\njob = "t.report"\ncron = "0 3 * * fri-mon"\n')
    with pytest.raises(ConfigError, match=r"\[schedules\] .*|range 'fri-mon' runs backwards"):
        Config.load(path)
    path.write_text('[schedules.n]\njob = "t.r"\nevery_s = 5\ncolour = "red"\n')
    with pytest.raises(ConfigError, match="unknown key.*colour; valid: job, cron"):
        Config.load(path)
    path.write_text('leader_lease_s = 3\n[schedules.n]\njob = "t.r"\nevery_s = 5\n')
    assert Config.load(path).leader_lease_s == 3.0


def test_kqueue_schedules_says_never_until_a_new_schedule_first_fires(tmp_path):
    from tests.conftest import run_kqueue

    # Given a new every-10-s schedule whose leader took its first step just after a tick
    url = f"sqlite:///{tmp_path / 'kqueue.db'}"
    app = App(url)

    @app.periodic(every_s=10)
    @app.job(name="sync")
    def sync() -> None:
        pass

    periodic = Periodic(app, app.schedules, "w", 30.0)
    start_s = 1_800_000_001.0
    periodic.step(start_s)

    def shown():
        done = run_kqueue(tmp_path, "schedules", "--backend", url)
        assert done.returncode == 0, done.stderr
        return done.stdout

    # Then its last run is "never", not the time the schedule started
    assert "last run never" in shown()
    assert "next 2027-01-15 08:00:10 UTC" in shown()
    # When it fires its first tick, Then that tick is its last run, and stays so between ticks
    periodic.step(start_s + 10.0)
    assert periodic.fired == 1
    assert "last run 2027-01-15 08:00:10 UTC" in shown()
    periodic.step(start_s + 15.0)
    assert "last run 2027-01-15 08:00:10 UTC" in shown()
    app.close()
