"""The message encoding: what the fuzzers found, kept as plain regression tests.

Each body below once made ``decode_message`` raise something other than ``PayloadError`` (which
the worker would not catch) or accept a message ``encode_message`` can never write.
"""

from __future__ import annotations

import functools

import pytest

from kqueue.errors import JobError, PayloadError
from kqueue.job import decode_message, encode_message

GOOD = b'{"v":1,"name":"j","args":[],"kwargs":{},"submitted_at":1.0}'


def test_a_good_body_decodes():
    assert decode_message(GOOD).name == "j"


@pytest.mark.parametrize(
    "body, words",
    [
        # RecursionError from json's decoder
        (b"[" * 100_000, "nested too deeply"),
        (GOOD.replace(b"[]", b"[" * 5000 + b"]" * 5000), "nested too deeply"),
        # ValueError from int(): past Python's 4300-digit limit for integer strings
        (GOOD.replace(b"1.0", b"1" * 4301), "4300 digits"),
        (GOOD.replace(b"[]", b"[" + b"1" * 4301 + b"]"), "4300 digits"),
        # OverflowError from math.isfinite() of an integer past float's range
        (GOOD.replace(b"1.0", b"1" + b"0" * 400), "'submitted_at' must be a finite number"),
        # accepted before: NaN and Infinity are not JSON, and encode_message never writes them
        (GOOD.replace(b"[]", b"[NaN]"), "NaN is not a JSON number"),
        (GOOD.replace(b"{}", b'{"x":-Infinity}'), "-Infinity is not a JSON number"),
        # accepted before (atheris found it): a literal past a float's range reads as inf, and
        # the job's arguments could not be encoded again (its result, a retry, the trace)
        (GOOD.replace(b"{}", b'{"k":{"x":2e308}}'), "2e308 is past a float's range"),
        (GOOD.replace(b"1.0", b"-1e999"), "-1e999 is past a float's range"),
        # accepted before: at depths 967-974 the worker decoded it, then it killed the pool
        # process that decoded it again deeper in its stack, three times (dead-lettered "killed")
        (GOOD.replace(b"[]", b"[" * 500 + b"]" * 500), "nest deeper than 100 levels"),
        (GOOD.replace(b"{}", b'{"k":' + b"[" * 101 + b"]" * 101 + b"}"), "nest deeper than 100"),
        # accepted before: true == 1 in Python, so a boolean passed as the version
        (GOOD.replace(b'"v":1', b'"v":true'), "version True is not 1"),
        (GOOD.replace(b'"v":1', b'"v":1.0'), "version 1.0 is not 1"),
    ],
)
def test_a_malformed_body_is_a_payload_error_saying_what_is_wrong(body, words):
    with pytest.raises(PayloadError, match=words):
        decode_message(body)


@pytest.mark.parametrize(
    "value, words",
    [
        ({1: "a"}, "dict key 1 is not a string"),  # JSON would hand the job {"1": "a"}
        ([{"ok": {None: 0}}], "dict key None is not a string"),
        (float("nan"), "Out of range float"),
        (functools.reduce(lambda inner, _: [inner], range(101), 0), "deeper than 100 levels"),
    ],
)
def test_encode_refuses_arguments_that_would_not_come_back_the_same(value, words):
    with pytest.raises(JobError, match=words):
        encode_message("j", (value,), {}, 1.0)


def test_a_batch_of_ids_are_distinct_random_uuid4s_as_new_job_id_makes():
    import uuid

    from kqueue.job import new_job_id, new_job_ids

    ids = new_job_ids(5000)
    assert len(set(ids)) == 5000
    for job_id in [*ids, new_job_id()]:
        parsed = uuid.UUID(job_id)
        assert (parsed.version, parsed.variant, parsed.hex) == (4, uuid.RFC_4122, job_id)


def test_a_batch_dispatch_gives_handles_as_handle_does():
    from kqueue import App

    app = App("memory://")

    @app.job(name="kept", result_ttl_s=7.0)
    def kept():
        return None

    handles = kept.dispatch_many([((), {})] * 3)
    single = app.handle(str(handles[0]), queue=kept.queue)
    assert [(h.queue, h.cancel_ttl_s) for h in handles] == [(single.queue, single.cancel_ttl_s)] * 3
    assert single.cancel_ttl_s == 7.0
