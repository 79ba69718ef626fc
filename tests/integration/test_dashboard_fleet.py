"""The dashboard against a live fleet, without a browser: restart, the twin, the bind rule."""

from __future__ import annotations

import json
import math
import re
import time

import pytest

from kqueue.dashboard.fleet import REFRESH_S
from kqueue.policy import read_trace
from tests.conftest import run_kqueue
from tests.support.dashfleet import Fleet, http


def drained(fleet: Fleet, rows: int, timeout_s: float = 90) -> None:
    """Wait until no job is queued and the fleet trace holds ``rows`` rows (a worker ships its
    last rows within a second of the jobs' end, after writing them to its ``--trace-out``),
    then until a dashboard's cached read of the backend is one made after that."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        depth = fleet.backend.counts().get("default", {})
        queued = depth.get("ready", 0) + depth.get("leased", 0) + depth.get("scheduled", 0)
        if queued == 0 and len(fleet.backend.read_trace().rows) >= rows:
            time.sleep(REFRESH_S)
            return
        time.sleep(0.1)
    shipped = len(fleet.backend.read_trace().rows)
    raise AssertionError(f"queued: {fleet.backend.counts()}; {shipped} of {rows} trace rows")


def as_json(value):
    """``value`` as the dashboard's JSON has it: NaN and infinities as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    return value


@pytest.fixture
def fleet(tmp_path):
    fleet = Fleet(tmp_path)
    yield fleet
    fleet.close()


def test_the_charts_keep_the_last_hour_across_a_dashboard_restart(fleet):
    # Given a fleet that ran jobs while a dashboard watched
    fleet.start_worker()
    dashboard = fleet.start_dashboard()
    fleet.dispatch("mail.send", 40)
    drained(fleet, rows=40)
    before = fleet.get_json("/api/overview")["throughput_per_min"]["tier"]
    # When the dashboard is killed and started again
    dashboard.kill()
    dashboard.wait(10)
    fleet.start_dashboard()
    after = fleet.get_json("/api/overview")["throughput_per_min"]["tier"]
    # Then its charts have the same history: it came from the backend
    assert sum(before["inline"]) == 40
    assert after == before


def test_the_plan_is_what_kqueue_simulate_says_on_the_exported_trace(fleet):
    fleet.start_worker()
    fleet.start_dashboard()
    fleet.dispatch("mail.send", 60)
    fleet.dispatch("report.build", 10)
    drained(fleet, rows=70)
    plan = fleet.get_json("/api/plan")
    (fleet.folder / "fleet.toml").write_text(plan["config_toml"])
    export = run_kqueue(fleet.folder, "trace", "export", "--backend", fleet.url, "--since", "1h",
                        "--out", "exported.csv")  # fmt: skip
    assert export.returncode == 0, export.stderr
    simulated = run_kqueue(fleet.folder, "simulate", "--trace", "exported.csv",
                           "--config", "fleet.toml", "--json")  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    by_hand, predicted = json.loads(simulated.stdout), plan["predicted"]
    for key in ("trace", "wall_s", "jobs_per_wall_s"):  # the file's name; the simulator's speed
        by_hand.pop(key), predicted.pop(key)
    assert plan["rows"] == 70
    assert predicted == as_json(by_hand)  # same numbers (NaN and inf as JSON's null)
    assert '[jobs."report.build"]\ntier = "pool"' in plan["config_toml"]


def test_a_non_loopback_bind_without_a_token_exits_with_a_clear_error(fleet):
    refused = run_kqueue(fleet.folder, "dashboard", "--backend", fleet.url, "--host", "0.0.0.0")
    assert refused.returncode == 2
    assert "refusing to serve the dashboard on 0.0.0.0 without a token" in refused.stderr


def test_with_a_token_requests_without_it_get_401_and_posts_without_csrf_403(fleet):
    fleet.start_dashboard("--host", "0.0.0.0", "--token", "tok-123")
    assert http("GET", fleet.base + "/api/overview")[0] == 401
    bearer = {"Authorization": "Bearer tok-123"}
    assert http("GET", fleet.base + "/api/overview", headers=bearer)[0] == 200
    form = {**bearer, "Content-Type": "application/x-www-form-urlencoded"}
    assert http("POST", fleet.base + "/dead/retry", b"all=1", headers=form)[0] == 403


def pool_p95_wait_s(rows) -> float:
    return float(rows[rows.tier == "pool"].wait_s.quantile(0.95))


def test_a_smaller_pool_in_the_what_if_form_moves_waits_as_a_live_run_at_that_size_does(fleet):
    # Given a live run of 16 pool jobs of 0.3 s at once on a pool of 2
    worker = fleet.start_worker("--trace-out", "two.csv")
    fleet.start_dashboard()
    fleet.dispatch("report.slow", 16)
    drained(fleet, rows=16)
    # When the what-if form asks for a pool of 1
    page = http("GET", fleet.base + "/plan")[1].decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    form = f"csrf={csrf}&pool_size=1&pool_max_size=1".encode()
    status, answer = http("POST", fleet.base + "/plan", form,
                          {"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert status == 200, answer[-2000:]
    cells = dict(re.findall(r'class="(predicted|what-if)" data-f="p95_wait_pool">([0-9.,]+) s',
                            answer.decode()))  # fmt: skip
    predicted_two, predicted_one = float(cells["predicted"]), float(cells["what-if"])
    # And the same jobs run live on a pool of 1
    fleet.stop(worker)
    (fleet.folder / "one.toml").write_text("pool_size = 1\npool_max_size = 1\n")
    fleet.start_worker("--trace-out", "one.csv", config="one.toml")
    fleet.dispatch("report.slow", 16)
    drained(fleet, rows=32)
    live_two = pool_p95_wait_s(read_trace(fleet.folder / "two.csv"))
    live_one = pool_p95_wait_s(read_trace(fleet.folder / "one.csv"))
    # Then the twin and the live runs agree in direction: a smaller pool, longer waits
    print(f"p95 pool wait: twin {predicted_two} -> {predicted_one} s, live {live_two:.2f} -> "
          f"{live_one:.2f} s")  # fmt: skip
    assert predicted_one > predicted_two
    assert live_one > live_two
