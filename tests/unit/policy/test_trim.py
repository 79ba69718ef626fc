"""The rule for when a process gives freed job memory back, as a table."""

from __future__ import annotations

import pytest

from kqueue.policy.trim import pool_busy_trim_due, pool_trim_due, worker_trim_due


@pytest.mark.parametrize(
    ("floor_mb", "resident_mb", "due"),
    [(50.0, 50.0, False), (50.0, 50.9, False), (50.0, 51.0, True), (50.0, 80.0, True),
     (50.0, 40.0, False)],
)  # fmt: skip
def test_a_pool_process_trims_after_a_megabyte_of_growth(floor_mb, resident_mb, due):
    assert pool_trim_due(floor_mb, resident_mb) is due


@pytest.mark.parametrize(
    ("jobs_since", "last_s", "now_s", "due"),
    [(False, 0.0, 100.0, False), (True, 0.0, 4.9, False), (True, 0.0, 5.0, True),
     (True, 10.0, 12.0, False), (True, 10.0, 16.0, True)],
)  # fmt: skip
def test_the_worker_trims_every_five_seconds_after_inline_jobs(jobs_since, last_s, now_s, due):
    assert worker_trim_due(jobs_since, last_s, now_s) is due


@pytest.mark.parametrize(
    ("last_s", "now_s", "due"),
    [(0.0, 9.9, False), (0.0, 10.0, True), (100.0, 105.0, False), (100.0, 130.0, True)],
)  # fmt: skip
def test_a_busy_pool_process_trims_ten_seconds_after_its_last_trim(last_s, now_s, due):
    assert pool_busy_trim_due(last_s, now_s) is due
