"""Fuzzing what the dashboard reads from outside: request forms, what-if values, trace rows.

``parse_form`` reads any POST body; ``what_if`` turns form text into settings; ``decode_row``
reads fleet-trace rows anyone who can write to the broker may have written. Each returns data
or raises its documented error (``FormError``, ``ConfigError``, ``TraceError``), never anything
else, and never imports or unpickles what it is given.
"""

from __future__ import annotations

import contextlib
import json

from hypothesis import given
from hypothesis import strategies as st

from kqueue.dashboard.planner import WHAT_IF_SETTINGS, what_if
from kqueue.dashboard.security import MAX_FORM_FIELDS, FormError, parse_form
from kqueue.errors import ConfigError, TraceError
from kqueue.policy.config import Config
from kqueue.policy.trace import COLUMNS, TraceRow
from kqueue.policy.trace_wire import decode_row, encode_row
from tests.fuzz.contracts import imports_nothing
from tests.fuzz.fuzz_support import FUZZ, nasty_text

CONTENT_TYPES = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
        "multipart/form-data; boundary=x",
        "application/json",
        "",
    ]
)
form_bodies = st.one_of(
    st.binary(max_size=300),
    st.lists(st.tuples(nasty_text, nasty_text), max_size=8).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    ),
    st.integers(0, 200).map(lambda n: b"&".join([b"a=1"] * n)),
    st.sampled_from([b"%", b"%zz", b"=", b"&&&", b"a=%FF%FE", b"\xff\xfe", b"c=" + b"x" * 20_000]),
)


@FUZZ
@given(form_bodies, CONTENT_TYPES)
def test_any_post_body_is_a_form_or_a_form_error(body, content_type):
    with imports_nothing():
        try:
            fields = parse_form(body, content_type)
        except FormError as exc:
            assert str(exc)
            return
    assert content_type.lower().startswith("application/x-www-form-urlencoded")
    assert len(fields) <= MAX_FORM_FIELDS
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items())


@FUZZ
@given(st.dictionaries(st.sampled_from(WHAT_IF_SETTINGS), nasty_text, max_size=4))
def test_any_what_if_form_is_a_valid_config_or_a_config_error_naming_the_setting(form):
    base = Config(pool_size=2, pool_max_size=4)
    with imports_nothing():
        try:
            config = what_if(base, form)
        except ConfigError as exc:
            assert any(name in str(exc) for name in form), str(exc)
            return
    for name, text in form.items():
        if text.strip():
            assert getattr(config, name) == float(text)


def good_row() -> list:
    """A good row's wire fields (a list: the version, then ``COLUMNS``)."""
    numbers = dict(submitted_at=1.0, started_at=2.0, finished_at=3.0, wait_s=1.0, duration_s=1.0,
                   cpu_s=0.5, memory_mb=10.0, estimated_s=1.0, due_at=1.0)  # fmt: skip
    row = TraceRow("j", "q", "c", "inline", status="ok", attempt=1, worker="w", **numbers)
    return json.loads(encode_row(row))


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    nasty_text,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(COLUMNS) + 1), values), max_size=4), st.booleans())
def test_any_wire_row_decodes_to_a_row_or_is_a_trace_error(changes, truncate):
    fields = good_row()
    for index, value in changes:
        if index < len(fields):
            fields[index] = value
    if truncate:
        fields = fields[:-1]
    data = json.dumps(fields, allow_nan=True).encode()
    with imports_nothing():
        try:
            row = decode_row(data)
        except TraceError as exc:
            assert "fleet trace" in str(exc)
            return
    assert isinstance(row, TraceRow) and isinstance(row.attempt, int)
    assert all(isinstance(getattr(row, c), str | float | int) for c in COLUMNS)
    assert not isinstance(row.submitted_at, bool)
    assert all(isinstance(getattr(row, c), str) for c in ("job_id", "queue", "worker"))


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes_decode_to_a_row_or_a_trace_error(data):
    with imports_nothing(), contextlib.suppress(TraceError):
        assert isinstance(decode_row(data), TraceRow)
