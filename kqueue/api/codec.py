"""Encoding in one place: job messages, return values and finished records, all JSON.

A message is ``{"v": 1, "name": ..., "args": [...], "kwargs": {...}, "submitted_at": ...}``
plus, when set, ``"due_at"`` (epoch s) and ``"result_ttl_s"``. A finished record (what a backend
keeps for ``result_ttl_s``) is ``{"state": "done"|"cancelled", "result": <JSON value>, "tier",
"worker", "attempts", "started_at", "finished_at"}``. Nothing read back is unpickled or imported.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from kqueue.errors import JobError, PayloadError

MESSAGE_VERSION = 1
#: Deepest nesting of lists and dicts in one argument. Both sides refuse deeper data: a pool or
#: isolated process decodes the arguments again, deeper in its stack than the worker did, and near
#: Python's recursion limit the worker's decode succeeds where the child's fails (and kills it).
MAX_NESTING = 100


@dataclass(frozen=True)
class Message:
    """A decoded job message."""

    name: str
    args: list
    kwargs: dict
    submitted_at: float
    #: When it may first run (epoch s): ``submitted_at`` unless it was delayed.
    due_at: float = math.nan
    #: The dispatch's own ``result_ttl_s``, or None (the job's setting applies).
    result_ttl_s: float | None = None


def encode_message(
    name: str,
    args: tuple,
    kwargs: dict,
    submitted_at: float,
    *,
    due_at: float | None = None,
    result_ttl_s: float | None = None,
) -> bytes:
    """Encode a job call as JSON bytes.

    Raises:
        JobError: an argument is not JSON-serialisable (names the argument and its type).
    """
    _refuse_argument(name, args, kwargs)
    document: dict[str, Any] = {
        "v": MESSAGE_VERSION,
        "name": name,
        "args": list(args),
        "kwargs": kwargs,
        "submitted_at": submitted_at,
    }
    if due_at is not None and due_at > submitted_at:
        document["due_at"] = due_at
    if result_ttl_s is not None:
        document["result_ttl_s"] = result_ttl_s
    return _ENCODER.encode(document).encode()


def _refuse_argument(name: str, args: tuple, kwargs: dict) -> None:
    """Raise a ``JobError`` naming the first argument that would not come back from JSON as is."""
    if not all(isinstance(key, str) for key in kwargs):
        raise JobError(f"job {name!r}: keyword argument names must be strings: {list(kwargs)!r}")
    for where, value in [
        *((f"argument {i + 1}", a) for i, a in enumerate(args)),
        *((f"keyword argument {k!r}", v) for k, v in kwargs.items()),
    ]:
        problem = _json_problem(value)
        if problem is not None:
            raise JobError(
                f"job {name!r}: {where} ({type(value).__name__}) is not JSON-serialisable: "
                f"{problem}; pass plain data (str, int, float, bool, None, list, dict with str "
                "keys) and load objects inside the job"
            )


def _json_problem(value: Any) -> str | None:
    """Why ``value`` would not come back from JSON as it went in, or None."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return str(exc)
    if _nests_deeper(value, MAX_NESTING):
        return f"lists and dicts nested deeper than {MAX_NESTING} levels"
    stack = [value]
    while stack:  # JSON would silently turn a key 1 into "1"
        item = stack.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return f"dict key {key!r} is not a string"
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return None


def _nests_deeper(value: Any, limit: int) -> bool:
    """True when ``value`` holds lists or dicts nested more than ``limit`` levels deep."""
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list | tuple):
            if level > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return False


def decode_message(body: bytes) -> Message:
    """Decode a message read from the broker.

    Raises:
        PayloadError: the body is not a JSON job message (says what is wrong with it).
    """
    try:
        document = _DECODER.decode(body.decode() if isinstance(body, bytes | bytearray) else body)
    except PayloadError:
        raise
    except ValueError as exc:  # not UTF-8/16/32, not JSON, or an integer past 4300 digits
        raise PayloadError(f"payload is not JSON: {exc}") from None
    except RecursionError:
        raise PayloadError("payload is nested too deeply to decode") from None
    if not isinstance(document, dict):
        raise PayloadError(f"payload is a JSON {type(document).__name__}, expected an object")
    version = document.get("v")
    if type(version) is not int or version != MESSAGE_VERSION:
        raise PayloadError(f"payload version {version!r} is not {MESSAGE_VERSION}")
    name, args = document.get("name"), document.get("args", [])
    kwargs, submitted_at = document.get("kwargs", {}), document.get("submitted_at")
    due_at, ttl_s = document.get("due_at", submitted_at), document.get("result_ttl_s")
    problems = [
        (not isinstance(name, str) or not name, "'name' must be a non-empty string"),
        (not isinstance(args, list), "'args' must be a list"),
        (not isinstance(kwargs, dict), "'kwargs' must be an object"),
        (not _is_time(submitted_at), "'submitted_at' must be a finite number"),
        (not _is_time(due_at), "'due_at' must be a finite number"),
        (ttl_s is not None and not (_is_time(ttl_s) and ttl_s >= 0), "'result_ttl_s' must be >= 0"),
    ]
    for bad, problem in problems:
        if bad:
            raise PayloadError(f"payload field {problem}")
    deep = MAX_NESTING + 1
    if (args and _nests_deeper(args, deep)) or (kwargs and _nests_deeper(kwargs, deep)):
        raise PayloadError(f"payload arguments nest deeper than {MAX_NESTING} levels")
    ttl = None if ttl_s is None else float(ttl_s)
    return Message(name, args, kwargs, float(submitted_at), float(due_at), ttl)


def _reject_constant(name: str) -> None:
    """``NaN`` and ``Infinity`` are not JSON (``encode_message`` never writes them)."""
    raise PayloadError(f"payload is not JSON: {name} is not a JSON number")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or an exponent, refused when past a float's range
    (``2e308`` reads as infinity, which no encoder of ours writes and none can write back)."""
    value = float(text)
    if not math.isfinite(value):
        raise PayloadError(f"payload is not JSON: {text[:30]} is past a float's range")
    return value


#: One decoder for every message (``json.loads`` with a hook builds a new one per call).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
#: One encoder for every message (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _is_time(value: Any) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer past float's range
        return False


def encode_result(name: str, value: Any) -> str:
    """A job's return value as JSON text.

    Raises:
        JobError: the value is not JSON-serialisable (names the job and the type): the attempt
            fails with this error, since nobody could read the result back.
    """
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise JobError(
            f"job {name!r} returned a {type(value).__name__}, which is not JSON-serialisable "
            f"({exc}); return plain data (str, int, float, bool, None, list, dict)"
        ) from None


def encode_record(state: str, result_json: str | None = None, **info: Any) -> bytes:
    """A finished record: ``state``, the result's JSON text (``null`` if none) and ``info``."""
    head = json.dumps({"state": state, **info}, separators=(",", ":"), allow_nan=False)
    return f'{head[:-1]},"result":{result_json or "null"}}}'.encode()


class RecordWriter:
    """Writes finished records as ``encode_record`` does, fast: one per finished job, so the
    JSON of the names (job, tier, worker) is made once per job name, and the rest is numbers.

    Args:
        worker: the worker's id, in every record it writes.
    """

    def __init__(self, worker: str):
        self._worker = json.dumps(worker)
        self._heads: dict[tuple[str, str, str], str] = {}

    def record(
        self,
        state: str,
        name: str,
        tier: str,
        attempts: int,
        times: tuple[float, float, float, float],
        result_json: str | None,
    ) -> bytes:
        """The record of one job; ``times``: submitted_at, due_at, started_at, finished_at."""
        key = (state, name, tier)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = (
                f'{{"state":{json.dumps(state)},"name":{json.dumps(name)},'
                f'"tier":{json.dumps(tier)},"worker":{self._worker},'
            )
        submitted, due, started, finished = (_finite(t) for t in times)
        return (
            f'{head}"attempts":{int(attempts)},"submitted_at":{submitted},"due_at":{due},'
            f'"started_at":{started},"finished_at":{finished},"result":{result_json or "null"}}}'
        ).encode()


def _finite(value: float) -> str:
    return repr(float(value)) if math.isfinite(value) else "null"


def decode_record(record: bytes) -> dict[str, Any]:
    """A finished record read back from the backend.

    Raises:
        PayloadError: it is not a JSON object with a ``state``.
    """
    try:
        document = json.loads(record)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"finished record is not JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("state"), str):
        raise PayloadError("finished record is not an object with a 'state'")
    return document
