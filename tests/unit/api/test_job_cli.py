"""``kqueue job ID`` and ``kqueue cancel ID`` on a real SQLite file, as an operator runs them."""

from __future__ import annotations

import json

import kqueue
from tests.conftest import run_kqueue


def test_job_and_cancel_commands_show_and_change_a_jobs_state(tmp_path):
    # Given a job scheduled for later in an app's SQLite file
    url = f"sqlite:///{tmp_path / 'kq.db'}"
    app = kqueue.App(url)
    report = app.job(lambda n: n, name="report")
    handle = report.options(delay_s=600).dispatch(7)
    # When an operator looks it up by id, cancels it, and looks again
    shown = run_kqueue(tmp_path, "job", handle.id, "--backend", url, "--json")
    cancelled = run_kqueue(tmp_path, "cancel", handle.id, "--backend", url)
    again = run_kqueue(tmp_path, "job", handle.id, "--backend", url)
    unknown = run_kqueue(tmp_path, "job", "nope", "--backend", url)
    # Then each says what a handle says
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert (info["state"], info["name"], info["queue"]) == ("scheduled", "report", "default")
    assert info["due_at"] > info["submitted_at"] + 590
    assert cancelled.returncode == 0 and "was scheduled: cancelled" in cancelled.stdout
    assert "cancelled" in again.stdout and handle.status() is kqueue.JobState.CANCELLED
    assert unknown.returncode == 1 and "unknown" in unknown.stdout
    repeat = run_kqueue(tmp_path, "cancel", handle.id, "--backend", url)
    assert repeat.returncode == 1 and "is cancelled: nothing to cancel" in repeat.stdout
