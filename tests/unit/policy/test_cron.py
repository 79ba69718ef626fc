"""Cron parsing (clear errors) and next-fire times, checked against a brute-force minute scan."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kqueue.errors import ConfigError
from kqueue.policy.cron import CronError, next_fire_s, parse_cron, timezone

UTC = timezone("UTC")
BERLIN = timezone("Europe/Berlin")


def _at(text: str, tz=UTC) -> float:
    return datetime.datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("*/5 * * * *", "2026-01-01 10:02", "2026-01-01 10:05"),
        ("*/5 * * * *", "2026-01-01 10:05", "2026-01-01 10:10"),  # strictly after
        ("0 0 * * *", "2026-01-01 10:02", "2026-01-02 00:00"),
        ("30 9 * * mon-fri", "2026-01-02 10:00", "2026-01-05 09:30"),  # Fri -> Mon
        ("0 0 29 2 *", "2026-03-01 00:00", "2028-02-29 00:00"),
        ("0 12 1 * 0", "2026-02-02 00:00", "2026-02-08 12:00"),  # day OR weekday (Sunday)
        ("0 0 * * 7", "2026-01-01 00:00", "2026-01-04 00:00"),  # 7 is Sunday too
        ("15 10-12/2 * jan *", "2026-01-01 10:20", "2026-01-01 12:15"),
        ("@hourly", "2026-01-01 10:20", "2026-01-01 11:00"),
    ],
)
def test_next_fire_table(expr, after, expected):
    assert next_fire_s(parse_cron(expr), _at(after), UTC) == _at(expected)


def test_a_local_time_the_clocks_skip_does_not_fire_and_a_repeated_one_fires_once():
    # Given Berlin's spring-forward night (02:00 -> 03:00 on 2026-03-29)
    daily_230 = parse_cron("30 2 * * *")
    # Then 02:30 that night does not exist: the next run is the next day's
    assert next_fire_s(daily_230, _at("2026-03-29 01:00", BERLIN), BERLIN) == _at(
        "2026-03-30 02:30", BERLIN
    )
    # And on the fall-back night (03:00 -> 02:00 on 2026-10-25) 02:30 fires once
    first = next_fire_s(daily_230, _at("2026-10-25 01:00", BERLIN), BERLIN)
    second = next_fire_s(daily_230, first, BERLIN)
    assert second - first > 23 * 3600


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("*/5 * * *", "expected 5 fields"),
        ("61 * * * *", "field 1 (minute, 0-59) at column 1: 61 is out of range"),
        ("* * * * funday", "field 5 (day of week, 0-7) at column 9: 'funday' is not a number"),
        ("* */0 * * *", "field 2 (hour, 0-23) at column 3: step '0'"),
        ("* * 5-2 * *", "field 3 (day of month, 1-31) at column 5: range '5-2' runs backwards"),
        ("* * 1,,2 * *", "field 3 (day of month, 1-31) at column 7: empty list item"),
        ("0 0 31 2 *", "no such day"),
        ("* * * * x", "field 5"),
    ],
)
def test_malformed_cron_names_the_field_and_column(expr, words):
    with pytest.raises(CronError, match=None) as info:
        parse_cron(expr)
    assert words in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_unknown_timezone_is_refused_with_a_hint():
    with pytest.raises(ConfigError, match="timezone 'Mars/Olympus' is unknown"):
        timezone("Mars/Olympus")


def _brute_force(cron, after_s: float, tz, minutes: int) -> float | None:
    start = (int(after_s) // 60 + 1) * 60
    for m in range(minutes):
        instant = start + 60 * m
        local = datetime.datetime.fromtimestamp(instant, tz)
        if local.fold == 0 and cron.matches(local):
            return float(instant)
    return None


_FIELD = st.one_of(
    st.just("*"),
    st.integers(0, 5).map(str),
    st.integers(1, 7).map(lambda s: f"*/{s}"),
    st.tuples(st.integers(0, 5), st.integers(6, 12)).map(lambda p: f"{p[0]}-{p[1]}"),
    st.tuples(st.integers(0, 3), st.integers(1, 4)).map(lambda p: f"{p[0]}/{p[1]}"),
)
_DOW = st.sampled_from(["*", "0", "1-5", "sat,sun", "*/2", "3"])
_DOM = st.sampled_from(["*", "1", "1-15", "*/3", "10,20", "28-31"])
_ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])


@settings(max_examples=80, deadline=None)
@given(
    minute=_FIELD,
    hour=_FIELD,
    dom=_DOM,
    dow=_DOW,
    zone=_ZONES,
    after_s=st.floats(1.7e9, 1.8e9),
)
def test_next_fire_agrees_with_a_minute_by_minute_scan(minute, hour, dom, dow, zone, after_s):
    cron = parse_cron(f"{minute} {hour} {dom} * {dow}")
    tz = timezone(zone)
    window = 3 * 24 * 60
    expected = _brute_force(cron, after_s, tz, window)
    got = next_fire_s(cron, after_s, tz)
    if expected is None:
        assert got is None or got >= (int(after_s) // 60 + 1) * 60 + 60 * window
    else:
        assert got == expected


def test_next_fire_a_hair_before_a_minute_is_that_minute():
    # Hypothesis found it: fromtimestamp rounds 1799999999.9999998 up to 1800000000.0 (a minute
    # boundary), and the search then began one minute later
    after_s = 1799999999.9999998
    assert next_fire_s(parse_cron("* * * * *"), after_s, timezone("UTC")) == 1_800_000_000.0
    assert next_fire_s(parse_cron("* * * * *"), 1_800_000_000.0, timezone("UTC")) == 1_800_000_060.0


def test_next_fire_agrees_with_a_scan_across_both_dst_nights():
    # hourly-ish rules through the nights Berlin's clocks change
    for expr in ("*/20 * * * *", "30 2 * * *", "0 * * * *", "45 1-3 * * *"):
        cron = parse_cron(expr)
        for night in ("2026-03-28 22:00", "2026-10-24 22:00"):
            t = _at(night, BERLIN)
            for _ in range(12):
                expected = _brute_force(cron, t, BERLIN, 3 * 24 * 60)
                assert next_fire_s(cron, t, BERLIN) == expected, (expr, night, t)
                t = expected
