"""The wire form of a trace row in the fleet trace: one JSON array per finished attempt.

Workers append their rows to the backend (``Backend.append_trace``) so that the planner and the
dashboard read one trace of the whole fleet. Backends move bytes; the encoding lives here. A row
is a JSON array of ``COLUMNS`` in order, prefixed with ``WIRE_VERSION``, with every time and
duration in whole microseconds and memory in whole KiB: integers print in a quarter of the time
floats take (``repr``), and the worker encodes every attempt it finishes; an array is about half
the bytes of an object with keys, which is most of what the capped trace costs in Redis. Unknown
(NaN, e.g. ``memory_mb`` without psutil) travels as ``null``. JSON, never pickle: the bytes come
from the broker and from anyone who can write to it.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Iterable, Sequence

from kqueue.errors import TraceError
from kqueue.policy.trace import COLUMNS, DURATION_COLUMNS, TEXT_COLUMNS, TIME_COLUMNS, TraceRow

#: The first element of every encoded row; a reader refuses other versions by name.
WIRE_VERSION = 2
#: Older versions still read, with the number of fields they carry: version 1 had no
#: ``priority`` (read as 0), so a fleet trace written before it stays readable.
OLD_VERSIONS = {1: len(COLUMNS) - 1}
_TEXT = frozenset(TEXT_COLUMNS)
_INT = frozenset({"attempt", "priority"})
#: Longest encoded row read, bytes (a row is about 250; this bounds what a bad writer costs).
MAX_ROW_BYTES = 64 * 1024


#: One encoder, built once: ``json.dumps`` with options builds a new one on every call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: Each column's scale on the wire (times and durations in us, memory in KiB); 0: as it is.
SCALES = {name: 1e6 for name in (*TIME_COLUMNS, *DURATION_COLUMNS, "due_at")} | {"memory_mb": 1024}


def _scaled(value: float, scale: float) -> int | None:
    return round(value * scale) if math.isfinite(value) else None


#: Each position of a row's values (``COLUMNS`` order) and its wire scale (0: as it is).
_POSITION_SCALES = tuple(SCALES.get(name, 0) for name in COLUMNS)
_VALUES = operator.attrgetter(*COLUMNS)


def encode_values(values: Sequence) -> bytes:
    """The wire bytes of one row given as its values in ``COLUMNS`` order (what the worker
    records: about 2 us, since it encodes every attempt it finishes)."""
    v = values
    try:  # every number known: the common case, without a check per field
        wire = [WIRE_VERSION, v[0], v[1], v[2], v[3], round(v[4] * 1e6), round(v[5] * 1e6),
                round(v[6] * 1e6), round(v[7] * 1e6), round(v[8] * 1e6), round(v[9] * 1e6),
                round(v[10] * 1024), v[11], v[12], v[13], round(v[14] * 1e6),
                round(v[15] * 1e6), v[16]]  # fmt: skip
    except (ValueError, OverflowError):  # NaN or an infinity: unknown, as null
        wire = [WIRE_VERSION] + [
            _scaled(x, scale) if scale else x for x, scale in zip(v, _POSITION_SCALES, strict=True)
        ]
    return _ENCODE(wire).encode()


def encode_row(row: TraceRow) -> bytes:
    """The wire bytes of one row."""
    return encode_values(_VALUES(row))


def encode_rows(rows: Iterable[TraceRow | Sequence]) -> list[bytes]:
    """The wire bytes of several rows (``TraceRow`` or its values), in order."""
    return [encode_values(r) if isinstance(r, tuple) else encode_row(r) for r in rows]


def decode_row(data: bytes, where: str = "fleet trace") -> TraceRow:
    """One row from its wire bytes.

    Raises:
        TraceError: not a row of this version (names ``where``, the field and what was found).
    """
    if len(data) > MAX_ROW_BYTES:
        raise TraceError(f"{where}: row of {len(data)} bytes is longer than {MAX_ROW_BYTES}")
    try:
        values = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise TraceError(f"{where}: row is not JSON: {exc}") from None
    version = values[0] if isinstance(values, list) and values else None
    if version != WIRE_VERSION and (type(version) is not int or version not in OLD_VERSIONS):
        head = values[0] if isinstance(values, list) and values else values
        raise TraceError(
            f"{where}: row is not a version-{WIRE_VERSION} trace row (starts with {head!r:.40})"
        )
    fields = OLD_VERSIONS.get(version, len(COLUMNS))
    if len(values) != fields + 1:
        raise TraceError(f"{where}: row has {len(values) - 1} fields, expected {fields}")
    names = COLUMNS[:fields]
    return TraceRow(**{n: _field(n, v, where) for n, v in zip(names, values[1:], strict=True)})


def _field(name: str, value, where: str):
    if name in _TEXT:
        if not isinstance(value, str):
            raise TraceError(f"{where}: field {name} must be text, got {value!r:.40}")
        return value
    if value is None:
        if name in _INT:
            raise TraceError(f"{where}: field {name} must be an integer, got null")
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceError(f"{where}: field {name} must be a number, got {value!r:.40}")
    if name in _INT:
        if not float(value).is_integer():
            raise TraceError(f"{where}: field {name} must be an integer, got {value!r}")
        return int(value)
    return value / SCALES[name]


def decode_rows(
    batch: Sequence[bytes], where: str = "fleet trace", *, skip_bad: bool = True
) -> tuple[list[TraceRow], int]:
    """The rows of a batch and how many were skipped as unreadable (``skip_bad``).

    One bad row (an older or foreign writer) must not hide the fleet's trace from the planner,
    so by default it is counted and skipped; with ``skip_bad=False`` the first one raises.

    Raises:
        TraceError: with ``skip_bad=False``, the first unreadable row.
    """
    rows, bad = [], 0
    for i, data in enumerate(batch):
        try:
            rows.append(decode_row(data, f"{where} row {i + 1}"))
        except TraceError:
            if not skip_bad:
                raise
            bad += 1
    return rows, bad
