"""``kqueue calibrate`` measures the host for the simulator, and what it measures moves predictions.

The direction tests are the contract between calibration and model: a host measured to fork
slower, to hold more memory per process, or to give the worker less CPU must make ``simulate``
predict longer waits, more memory, or less throughput, never the reverse.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib

import pandas  # noqa: F401 (the calibrating process is big on purpose: the worker must not be)
import pytest

from kqueue.ops.calibrate import calibration_app, measure_memory_mb
from kqueue.policy import Config, HostProfile
from kqueue.tiers.pool import PIPELINE_MAX_ESTIMATE_S
from kqueue.tiers.procs import pss_mb
from sim.model.replay import prepare, simulate
from sim.model.workload import JobClass, synth
from tests.conftest import require_redis_server, run_kqueue


def test_calibrate_writes_every_host_key_in_under_a_minute_and_the_simulator_reads_it(tmp_path):
    # Given a host (busy or not) and a temporary SQLite backend
    # When calibrate runs with its default settings (60 s is a coarse bound: ~7 s at load 10)
    done = run_kqueue(tmp_path, "calibrate", "--out", "host.toml", timeout=60)
    # Then it wrote every HostProfile key, with values the simulator accepts
    assert done.returncode == 0, done.stderr
    path = tmp_path / "host.toml"
    written = tomllib.loads(path.read_text())
    assert set(written) == {f.name for f in dataclasses.fields(HostProfile)}
    host = HostProfile.load(path)
    assert host.cores >= 1 and 0 < host.cpu_share <= 1
    assert host.spawn_s > 0 and host.worker_mb > 0 and host.pool_process_mb > 0
    assert 0 <= host.retained_job_mb < 1000
    # a computing inline job makes another one's hand-over wait for the GIL (the worker's 1 ms
    # switches: about 2 ms here);
    # the wait shows only while the worker gets a core to compute on: on a host so busy that it
    # gets less (calibrate measured 0.27 of a core beside other load here), the scheduler's
    # waits swamp the switch and the difference of two medians measured under it can be ~0
    assert 0 <= host.gil_handoff_s < 0.2
    if host.cores * host.cpu_share >= 1.0:
        assert host.gil_handoff_s > 0.0005, host


def test_calibrate_against_redis(tmp_path, redis_server):
    require_redis_server()
    done = run_kqueue(
        tmp_path, "calibrate", "--out", "h.toml", "--backend", redis_server.url, timeout=60
    )
    assert done.returncode == 0, done.stderr
    profile = HostProfile.load(tmp_path / "h.toml")
    assert profile.fetch_s > 0
    assert profile.polls is False  # an idle worker on Redis is woken by the enqueue, not a poll


def test_the_pool_hand_off_is_timed_on_jobs_the_pool_does_not_pipeline():
    # Given the calibration app (the simulator hands every pool job over after the last result)
    app = calibration_app("sqlite:///unused.db")
    # Then the pool's no-op is declared too long to be queued behind a running job
    job = app.jobs["kqueue.ops.calibrate.noop_pool"]
    assert job.declared.estimated_duration_s > PIPELINE_MAX_ESTIMATE_S


BALLAST_APP = """
from kqueue import App

BALLAST = bytearray(40 * 1024 * 1024)
for offset in range(0, len(BALLAST), 4096):
    BALLAST[offset] = 1

app = App()
"""


def test_memory_is_measured_on_a_kqueue_run_worker_with_the_app_imported(tmp_path, monkeypatch):
    # Given a big calibrating process (pytest, pandas) and an app that holds 40 MB once imported
    (tmp_path / "ballast.py").write_text(BALLAST_APP)
    monkeypatch.chdir(tmp_path)
    app = calibration_app(f"sqlite:///{tmp_path / 'c.db'}")
    # When the worker's memory is measured without and with that app
    plain = measure_memory_mb(app, tmp_path)
    with_app = measure_memory_mb(app, tmp_path, "ballast:app")
    app.close()
    # Then the worker measured is a plain worker process, not this one, and it imported the app
    assert 0 < plain.worker_mb < pss_mb(os.getpid())
    assert 0 < plain.pool_process_mb < plain.worker_mb
    assert 30 < with_app.worker_mb - plain.worker_mb < 50
    # and the zygote, a fork of the worker that has run nothing, adds its own few MB (5-7 MB
    # here) but far less than the worker: it shares the worker's pages, the app's ballast too
    for measured in (plain, with_app):
        assert 1 < measured.zygote_mb < min(15, measured.worker_mb), measured


MIX = (
    JobClass("fast", 0.6, 0.1, 0.5, cpu_fraction=0.5, memory_median_mb=4.0),
    JobClass("report", 0.3, 2.0, 0.3, cpu_fraction=0.8, memory_median_mb=60.0),
    JobClass("export", 0.1, 3.0, 0.3, cpu_fraction=0.5, memory_median_mb=100.0),
)


@pytest.fixture(scope="module")
def jobs():
    return prepare(synth(400, 3.0, mix=MIX, seed=3))


TIERS = ("inline", "pool", "isolated")
# Tiers fixed per class, so a changed constant cannot also change the routing through history.
CONFIG = Config.from_mapping(
    {
        "pool_size": 2,
        "pool_max_size": 4,
        "max_concurrent_isolated": 2,
        "jobs": {c.name: {"tier": t} for c, t in zip(MIX, TIERS, strict=True)},
    }
)
BASE = HostProfile(cores=2)


@pytest.mark.parametrize(
    ("change", "metric", "grows"),
    [
        ({"cpu_share": 0.4}, "throughput_per_min", False),
        ({"cpu_share": 0.4}, "pool_p95_wait_s", True),
        ({"spawn_s": 0.5}, "isolated_p95_wait_s", True),
        ({"pool_dispatch_s": 0.05}, "pool_p95_wait_s", True),
        ({"fetch_s": 0.05}, "inline_p95_wait_s", True),
        ({"worker_mb": 200.0}, "peak_memory_mb", True),
        ({"pool_process_mb": 120.0}, "peak_memory_mb", True),
        ({"isolated_process_mb": 120.0}, "peak_memory_mb", True),
        ({"retained_job_mb": 0.0}, "peak_memory_mb", False),
        ({"fault_cpu_s_per_mb": 0.01}, "isolated_p95_wait_s", True),
    ],
)
def test_a_measured_host_moves_the_prediction_the_way_the_measurement_says(
    jobs, change, metric, grows
):
    # Given one workload predicted on a default 2-core host
    before = simulate(jobs, CONFIG, BASE)
    # When calibration measured one constant differently
    after = simulate(jobs, CONFIG, dataclasses.replace(BASE, **change))

    def value(result):
        if metric.endswith("_p95_wait_s"):
            return result.tiers[metric.split("_")[0]].p95_wait_s
        return getattr(result, metric)

    # Then the prediction moves in that direction
    if grows:
        assert value(after) > value(before)
    else:
        assert value(after) < value(before)
