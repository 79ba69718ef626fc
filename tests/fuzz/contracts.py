"""What each parser promises for any input, checked by the Hypothesis tests and atheris harnesses.

Each ``assert_*`` runs one parser on one input: it either returns a valid object or raises the
parser's documented error (which must say what was wrong and name the file); anything else, and
any import it makes, fails the check. Nothing here needs Hypothesis or atheris.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import warnings
from pathlib import Path

from kqueue.errors import ConfigError, PayloadError, TraceError, TraceWarning
from kqueue.job import Message, decode_message
from kqueue.policy import read_trace
from kqueue.policy.config import _CHECKS, _RULES, _UNBOUNDED, Config, JobOptions, Tier
from kqueue.policy.status import Status
from kqueue.policy.trace import COLUMNS, NON_NEGATIVE, NUMERIC_COLUMNS, REQUIRED

TIERS = ("inline", "pool", "isolated")
JOB_NUMBERS = [f.name for f in dataclasses.fields(JobOptions) if f.name != "tier"]


@contextlib.contextmanager
def imports_nothing():
    """Fail if the body imports a module (a parser must never import what its input names).

    Text codecs (``encodings.*``) are let through: decoding UTF-16 bytes loads its codec.
    """
    before = set(sys.modules)
    yield
    added = {name for name in set(sys.modules) - before if not name.startswith("encodings.")}
    assert not added, f"parsing imported {sorted(added)}"


def assert_decodes_or_rejects(body: bytes) -> None:
    """The decoder's contract: a well-formed ``Message`` of plain JSON data, or ``PayloadError``."""
    with imports_nothing():
        try:
            message = decode_message(body)
        except PayloadError as exc:
            assert str(exc)
            return
    assert isinstance(message, Message)
    assert isinstance(message.name, str) and message.name
    assert isinstance(message.args, list) and isinstance(message.kwargs, dict)
    assert isinstance(message.submitted_at, float) and math.isfinite(message.submitted_at)
    # only what encode_message could have written: no NaN, no infinity, no oversized integer
    json.dumps([message.args, message.kwargs], allow_nan=False)


def assert_reads_or_rejects(path: Path) -> None:
    """The reader's contract: a valid trace frame, or a ``TraceError`` naming the file; a
    ``TraceWarning`` (a value that looks like another unit) is a documented outcome too, and
    names the file (the suite turns warnings into errors, so they are recorded here)."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", TraceWarning)
        try:
            frame = read_trace(path)
        except TraceError as exc:
            assert str(path) in str(exc)
            return
    for warning in seen:
        assert issubclass(warning.category, TraceWarning), warning
        assert str(path) in str(warning.message)
    assert not frame.empty
    assert set(COLUMNS) <= set(frame.columns)
    for column in REQUIRED:
        assert frame[column].notna().all(), column
    for column in NUMERIC_COLUMNS:
        values = frame[column].dropna()
        assert values.map(math.isfinite).all(), column
        if column in NON_NEGATIVE:
            assert (values >= 0).all(), column
    assert frame["tier"].dropna().isin(TIERS).all()
    assert frame["status"].dropna().isin([s.value for s in Status]).all()
    assert frame["job_class"].map(lambda v: isinstance(v, str) and v.strip() != "").all()


def assert_loads_or_rejects(path: Path) -> None:
    """The loader's contract: a ``Config`` whose every rule holds, or a ``ConfigError``."""
    with imports_nothing():
        try:
            config = Config.load(path)
        except ConfigError as exc:
            assert str(path) in str(exc)
            return
    for key, value in config.to_dict().items():
        kind, rule = _RULES[key]
        check = _CHECKS[rule]
        finite = math.isfinite(value) or (key in _UNBOUNDED and value == math.inf)
        assert type(value) is kind and finite and check(value), (key, value)
    for options in config.jobs.values():
        assert options.tier is None or isinstance(options.tier, Tier)
        for key in JOB_NUMBERS:
            value = getattr(options, key)
            assert value is None or (math.isfinite(value) and _CHECKS[_RULES[key][1]](value)), key
