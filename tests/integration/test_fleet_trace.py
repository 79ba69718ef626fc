"""The fleet trace end to end: ``kqueue run`` appends its rows to the backend; ``trace export``,
``simulate --trace URL`` and the local ``--trace-out`` file agree."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kqueue.job import encode_message
from kqueue.policy import read_trace
from kqueue.testing import run_until_empty
from tests.conftest import run_kqueue

APP = """
import time
from kqueue import App

app = App({url!r})

@app.job(name="quick", tier="inline")
def quick(i):
    return i

@app.job(name="slowish", tier="inline")
def slowish(i):
    time.sleep(0.02)
"""


def write_app(folder: Path, url: str) -> None:
    (folder / "tasks.py").write_text(APP.format(url=url))


def dispatch(backend, n: int) -> None:
    now = time.time()
    messages = [
        (f"j{i}", encode_message("quick" if i % 3 else "slowish", [i], {}, now)) for i in range(n)
    ]
    backend.enqueue_many("default", messages)


@pytest.fixture(params=["sqlite", "redis"])
def fleet(request, tmp_path):
    """(backend URL, an open backend) on a private SQLite file or the private Redis server."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kqueue.db'}"
    else:
        url = request.getfixturevalue("redis_server").url
    from kqueue.backends import open_backend

    backend = open_backend(url)
    if request.param == "redis":
        backend.client.flushdb()
    yield url, backend
    backend.close()


def test_a_worker_appends_every_attempt_and_export_and_simulate_read_them(fleet, tmp_path):
    url, backend = fleet
    write_app(tmp_path, url)
    dispatch(backend, 30)
    # When a burst worker drains the queue, with a local trace file too
    done = run_kqueue(tmp_path, "run", "--app", "tasks:app", "--burst", "--trace-out", "t.csv")
    assert done.returncode == 0, done.stderr
    # Then the fleet trace has the same 30 rows as the local file
    exported = run_kqueue(tmp_path, "trace", "export", "--backend", url, "--since", "1h",
                          "--out", "fleet.csv")  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert "wrote 30 jobs" in exported.stderr
    local, fleet_rows = read_trace(tmp_path / "t.csv"), read_trace(tmp_path / "fleet.csv")
    assert sorted(local.job_id) == sorted(fleet_rows.job_id)
    assert (
        fleet_rows.duration_s.tolist()
        == local.set_index("job_id").loc[fleet_rows.job_id, "duration_s"].tolist()
    )
    # And simulate on the URL gives the same numbers as on the exported file
    by_url = run_kqueue(tmp_path, "simulate", "--trace", f"{url}?since=1h", "--json")
    by_file = run_kqueue(tmp_path, "simulate", "--trace", "fleet.csv", "--json")
    assert by_url.returncode == 0 and by_file.returncode == 0, by_url.stderr + by_file.stderr
    a, b = json.loads(by_url.stdout), json.loads(by_file.stdout)
    for key in ("trace", "wall_s", "jobs_per_wall_s"):  # the file's name; the simulator's speed
        a.pop(key), b.pop(key)
    assert a == b


def test_keep_rows_zero_turns_the_fleet_trace_off(tmp_path):
    from kqueue import App
    from kqueue.policy.config import Config

    app = App("memory://")

    @app.job(name="quick", tier="inline")
    def quick(i):
        return i

    for i in range(5):
        quick.dispatch(i)
    config = Config(pool_size=0, pool_max_size=0, poll_interval_s=0.01)
    run_until_empty(app, config=config.replace(trace_keep_rows=0))
    assert app.backend.read_trace().rows == []
    for i in range(5):
        quick.dispatch(i)
    run_until_empty(app, config=config)
    assert len(app.backend.read_trace().rows) == 5


def test_a_trace_url_without_rows_or_with_a_bad_since_is_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    empty = run_kqueue(tmp_path, "simulate", "--trace", f"{url}?since=1h")
    assert empty.returncode == 2 and "fleet trace has no rows in the last 3600 s" in empty.stderr
    bad = run_kqueue(tmp_path, "trace", "export", "--backend", f"{url}?since=soon", "--out", "x")
    assert bad.returncode == 2 and "since='soon' is not a duration" in bad.stderr
