"""Fuzzing the message decoder: any body decodes to a job call or raises ``PayloadError``.

``decode_message`` reads whatever a broker hands back; the worker dead-letters a body it cannot
decode and goes on, so any other exception (or an import, or an unpickling) is a bug.
"""

from __future__ import annotations

import json
import pathlib
import pickle

from hypothesis import given
from hypothesis import strategies as st

from kqueue.errors import JobError
from kqueue.job import MESSAGE_VERSION, Message, decode_message, encode_message
from tests.fuzz.contracts import assert_decodes_or_rejects
from tests.fuzz.fuzz_support import FUZZ, nasty_bytes, nasty_text

#: JSON values as Python data: what a job's arguments may be.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)

#: Raw JSON text fragments that Python's json module reads but the encoder never writes.
raw_fragments = st.one_of(
    st.sampled_from(["NaN", "Infinity", "-Infinity", "true", "false", "null", "1.0", "-0"]),
    st.integers(4000, 4600).map(lambda digits: "1" * digits),  # past the int-conversion limit
    st.integers(300, 400).map(lambda digits: "1" + "0" * digits),  # past float's range
    st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth),  # deep nesting
    json_values.map(json.dumps),
    nasty_text.map(json.dumps),
)

FIELDS = ["v", "name", "args", "kwargs", "submitted_at"]


@st.composite
def near_messages(draw) -> bytes:
    """A JSON object shaped like a message with some fields missing, wrong or extra."""
    good = {
        "v": str(MESSAGE_VERSION),
        "name": json.dumps(draw(st.text(min_size=1, max_size=10))),
        "args": json.dumps(draw(st.lists(json_values, max_size=3))),
        "kwargs": json.dumps(draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3))),
        "submitted_at": json.dumps(draw(st.floats(allow_nan=False, allow_infinity=False))),
    }
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            del good[key]
        else:
            good[key] = draw(raw_fragments)
    for key in draw(st.lists(st.text(max_size=6), max_size=2)):
        good[key] = draw(raw_fragments)
    inner = ",".join(f"{json.dumps(key)}:{value}" for key, value in good.items())
    text = "{" + inner + "}"
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "utf-32"]))
    return text.encode(encoding, errors="surrogatepass")


@FUZZ
@given(nasty_bytes)
def test_arbitrary_bytes_decode_or_raise_payload_error(body):
    assert_decodes_or_rejects(body)


@FUZZ
@given(near_messages())
def test_near_messages_decode_or_raise_payload_error(body):
    assert_decodes_or_rejects(body)


@FUZZ
@given(raw_fragments)
def test_any_json_document_decodes_or_raises_payload_error(text):
    assert_decodes_or_rejects(text.encode())


class _Touch:
    """Unpickling this creates ``path``: proof that a decoder unpickled its input."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


@FUZZ
@given(st.integers(0, pickle.HIGHEST_PROTOCOL))
def test_a_pickle_is_never_unpickled(tmp_path, protocol):
    marker = tmp_path / "unpickled"
    body = pickle.dumps(_Touch(marker), protocol=protocol)
    assert_decodes_or_rejects(body)
    assert not marker.exists()


@FUZZ
@given(
    name=st.text(min_size=1, max_size=20),
    args=st.lists(json_values, max_size=4),
    kwargs=st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    submitted_at=st.floats(allow_nan=False, allow_infinity=False),
)
def test_encode_then_decode_gives_the_same_call(name, args, kwargs, submitted_at):
    message = decode_message(encode_message(name, tuple(args), kwargs, submitted_at))
    # repr compares types too: 1 and 1.0, or 0.0 and -0.0, must not swap
    assert repr(message) == repr(
        Message(name, args, kwargs, submitted_at, due_at=float(submitted_at))
    )


#: Python data that is not quite JSON: non-string keys, tuples, NaN, sets, huge numbers.
python_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=5)
    | st.sets(st.integers(), max_size=2),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.one_of(st.text(max_size=3), st.integers(), st.booleans(), st.none(), st.floats()),
            children,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@FUZZ
@given(args=st.lists(python_values, max_size=3))
def test_encode_refuses_what_would_not_decode_to_the_same_arguments(args):
    try:
        body = encode_message("job", tuple(args), {}, 0.0)
    except JobError as exc:
        assert "argument" in str(exc)
        return
    assert repr(decode_message(body).args) == repr(args)
