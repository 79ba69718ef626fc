"""Schedules fired by three real workers on one private Redis, the leader SIGKILLed midway."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest

import kqueue
from kqueue.testing import RedisServer
from kqueue.worker.periodic import tick_job_id
from tests.conftest import require_redis_server, run_kqueue, start_kqueue
from tests.integration.test_redis_faults import stop, wait_until

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = """
import os
from pathlib import Path
import kqueue
from kqueue import App

app = App()
RUNS = Path(os.environ["KQUEUE_TEST_RUNS"])


@app.job(name="tick", tier="inline")
def tick():
    with open(RUNS / f"tick-{os.getpid()}", "a") as out:
        out.write(kqueue.current_job().id + "\\n")
"""
CONFIG = """
leader_lease_s = 2.0

[schedules.every-second]
job = "tick"
every_s = 1
"""
LEASE_S = 2.0


def _runs(runs) -> list[str]:
    return [line for path in runs.glob("tick-*") for line in path.read_text().split()]


@pytest.mark.timeout(120)
def test_three_workers_fire_each_second_once_and_survive_the_leader_being_killed(
    tmp_path, monkeypatch
):
    require_redis_server()
    (tmp_path / "tickapp.py").write_text(APP)
    (tmp_path / "kqueue.toml").write_text(CONFIG)
    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setenv("KQUEUE_TEST_RUNS", str(runs))
    with RedisServer(tmp_path / "redis") as server:
        args = ("run", "--app", "tickapp:app", "--backend", server.url, "--config", "kqueue.toml")
        args += ("--visibility-timeout", "5", "--pool-size", "0", "--pool-max-size", "0")
        # Given three workers and a schedule every second
        workers = [start_kqueue(tmp_path, *args) for _ in range(3)]
        app = kqueue.App(server.url)
        try:
            wait_until(lambda: app.backend.leader() is not None, 30, "a leader")
            first_tick = math.ceil(time.time()) + 1
            # When the leader is SIGKILLed 10 s in
            time.sleep(max(0.0, first_tick + 10 - time.time()))
            leader_pid = int(app.backend.leader()[0].split(":")[1])
            victim = next(w for w in workers if w.pid == leader_pid)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            # Then another worker leads within one lease (and a renew interval)
            wait_until(
                lambda: (app.backend.leader() or ("",))[0].split(":")[1:2] != [str(leader_pid)],
                LEASE_S + 3,
                "a new leader",
            )
            time.sleep(max(0.0, first_tick + 20 + 2 * LEASE_S - time.time()))
            listing = run_kqueue(tmp_path, "schedules", "--backend", server.url, "--json")
        finally:
            stop([w for w in workers if w.poll() is None])
            app.close()
    # And each of the 20 seconds' ticks ran, none twice
    ran = _runs(runs)
    window = [tick_job_id("every-second", float(first_tick + k)) for k in range(20)]
    assert len(ran) == len(set(ran)), "a tick ran twice"
    missing = [k for k, job_id in enumerate(window) if job_id not in set(ran)]
    print(f"{20 - len(missing)} of 20 ticks ran, {len(ran) - len(set(ran))} twice")
    assert len(missing) <= 1, missing
    # And `kqueue schedules` shows it, its last run and the new leader
    assert listing.returncode == 0, listing.stderr
    shown = json.loads(listing.stdout)
    assert shown["schedules"]["every-second"]["job"] == "tick"
    assert shown["schedules"]["every-second"]["last_tick_s"] >= first_tick + 20
    assert str(leader_pid) not in shown["leader"]["worker"]
