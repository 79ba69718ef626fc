"""Reading traces as they come: mapped columns, stated units, ISO-8601 times, dropped bad rows.

``read_trace_report(path, options)`` reads a trace file the way ``read_trace`` does and returns
the frame with the warnings it would raise; ``TraceReadOptions`` says how the file differs from a
kqueue trace. Without options a well-formed trace reads exactly as before. The detection rules
(epoch-ms timestamps, durations in ms, memory in bytes) and their thresholds are the constants
below; docs/DECISIONS.md says why they are these.
"""

from __future__ import annotations

import collections
import csv
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from kqueue.errors import ConfigError, TraceError, TraceWarning
from kqueue.policy.trace import (
    COLUMNS,
    DURATION_COLUMNS,
    TEXT_COLUMNS,
    TIME_COLUMNS,
    check_delimiter,
    check_trace,
    complete_trace,
    open_text,
    pd,
    raise_first_problem,
    read_csv,
    read_csv_frame,
    read_parquet,
    validate_trace,
)
from kqueue.policy.units import MEMORY_UNITS_MB

#: ``time_unit`` choices: seconds per unit of the numeric time columns (``TIME_COLUMNS``).
TIME_UNITS_S = {"s": 1.0, "ms": 0.001}
#: ``duration_unit`` choices: seconds per unit of the ``DURATION_COLUMNS`` (``duration_s``, ...).
DURATION_UNITS_S = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0}
#: ``memory_unit`` choices: MB (2**20 bytes, as kqueue's ``memory_mb``) per unit. KB, MB, GB are
#: binary like KiB, MiB, GiB (docs/DECISIONS.md: "Trace units").
MEMORY_UNITS = ("B", "KB", "KiB", "MB", "MiB", "GB", "GiB")
#: A numeric ``submitted_at`` whose median is at least this is read as epoch milliseconds when no
#: ``time_unit`` is given: 1e11 s is the year 5138, 1e11 ms is March 1973.
EPOCH_MS_MIN = 1e11
#: ... and from this on it is refused as epoch micro- or nanoseconds (1e14 ms is the year 5138).
EPOCH_US_MIN = 1e14
#: Durations whose median is above this many "seconds" (2.8 h), all whole numbers, look like ms.
DURATION_MS_MEDIAN_S = 1e4
#: Memory whose median is above this many MB (about 1 TB per job) looks like bytes or KB.
MEMORY_BYTES_MEDIAN_MB = 1e6
#: What ``drop_invalid`` calls a CSV line with more or fewer fields than the header.
TORN_LINE = "line has a different number of fields than the header"


@dataclass(frozen=True)
class TraceReadOptions:
    """How a trace file differs from a kqueue trace; the defaults read a kqueue trace as it is."""

    #: ``(trace column, file column)`` pairs: the file column is renamed to the trace column.
    columns: tuple[tuple[str, str], ...] = ()
    #: Unit of numeric time columns: ``s`` or ``ms``; ``None`` = seconds, epoch-ms detected.
    time_unit: str | None = None
    #: Unit of the duration columns: ``ms``, ``s``, ``min``, ``h``; ``None`` = seconds, checked.
    duration_unit: str | None = None
    #: Unit of ``memory_mb``: one of ``MEMORY_UNITS``; ``None`` = MB, checked.
    memory_unit: str | None = None
    #: Drop bad rows (counted by reason) instead of failing on the first one.
    drop_invalid: bool = False

    def __post_init__(self):
        for name, valid in (("time_unit", TIME_UNITS_S), ("duration_unit", DURATION_UNITS_S)):
            value = getattr(self, name)
            if value is not None and value not in valid:
                raise ConfigError(f"{name} {value!r} is not one of {', '.join(valid)}")
        if self.memory_unit is not None:
            object.__setattr__(self, "memory_unit", _memory_unit(self.memory_unit))
        _check_pairs(self.columns, str(self.columns))

    @classmethod
    def from_strings(
        cls,
        columns: str | None = None,
        time_unit: str | None = None,
        duration_unit: str | None = None,
        memory_unit: str | None = None,
        drop_invalid: bool = False,
    ) -> TraceReadOptions:
        """Options from the text an operator types (``--columns a=b,c=d``, ``--time-unit ms``).

        Raises:
            ConfigError: a malformed mapping or an unknown unit, naming the valid choices.
        """
        pairs = parse_columns(columns) if columns else ()
        time_unit, duration_unit = (u.strip() if u else None for u in (time_unit, duration_unit))
        return cls(pairs, time_unit, duration_unit, memory_unit, drop_invalid)


@dataclass(frozen=True)
class TraceRead:
    """A trace as read: the frame ``read_trace`` returns and what it would warn about."""

    #: The validated trace with every column (times in s, durations in s, memory in MB).
    frame: pd.DataFrame
    #: Rows dropped by ``drop_invalid``, counted by reason (``"duration_s is not a number"``).
    dropped: dict[str, int]
    #: Likely unit mistakes, auto-detected units and the drop summary, one message each.
    warnings: tuple[str, ...]


def parse_columns(text: str) -> tuple[tuple[str, str], ...]:
    """``submitted_at=enqueued_at,job_class=class`` -> ``(("submitted_at", "enqueued_at"), ...)``.

    Raises:
        ConfigError: an entry without ``=``, an unknown trace column, a column named twice.
    """
    pairs = []
    for entry in text.split(","):
        target, sep, source = (part.strip() for part in entry.partition("="))
        if not sep or not target or not source:
            raise ConfigError(
                f"--columns {text!r}: {entry.strip()!r} is not TRACE_COLUMN=FILE_COLUMN "
                "(e.g. submitted_at=enqueued_at,job_class=class,duration_s=runtime)"
            )
        pairs.append((target, source))
    _check_pairs(tuple(pairs), text)
    return tuple(pairs)


def _check_pairs(pairs: tuple[tuple[str, str], ...], text: str) -> None:
    for target, _ in pairs:
        if target not in COLUMNS:
            raise ConfigError(
                f"--columns {text!r}: {target!r} is not a trace column; "
                f"the trace columns are {', '.join(COLUMNS)}"
            )
    for side, names in (("trace", [t for t, _ in pairs]), ("file", [s for _, s in pairs])):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"--columns {text!r}: {side} column {twice[0]!r} is named twice")


def _memory_unit(text: str) -> str:
    for unit in MEMORY_UNITS:
        if text.strip().lower() == unit.lower():
            return unit
    raise ConfigError(
        f"memory_unit {text!r} is not one of {', '.join(MEMORY_UNITS)} "
        "(KB, MB, GB are binary here, as KiB, MiB, GiB)"
    )


def read_trace(path: str | Path, options: TraceReadOptions | None = None) -> pd.DataFrame:
    """Read and validate a trace (CSV, gzip CSV or Parquet) into a DataFrame with every column.

    Optional columns missing from the file are added, empty. Rows keep the file's order.
    ``options`` (``kqueue.policy.trace_input.TraceReadOptions``) maps columns, states units and
    drops bad rows; without it a well-formed trace reads as it always has, ISO-8601 and epoch-ms
    ``submitted_at`` are converted to seconds, and values that look like a unit mistake warn.

    Warns:
        TraceWarning: a likely unit mistake (the message says which option settles it), an
            auto-detected unit, or the rows ``drop_invalid`` dropped, counted by reason.

    Raises:
        TraceError: missing file, empty trace, missing required column, a delimiter other than a
            comma, or the first bad value, naming the file, the line (1 = header) and the column.
    """
    report = read_trace_report(path, options)
    for message in report.warnings:
        warnings.warn(message, TraceWarning, stacklevel=2)
    return report.frame


def read_trace_report(path: str | Path, options: TraceReadOptions | None = None) -> TraceRead:
    """Read, map, convert and validate a trace file; warn about nothing, return the warnings.

    Raises:
        TraceError: as ``read_trace``.
    """
    path, options = Path(path), options or TraceReadOptions()
    if not path.exists():
        raise TraceError(f"{path}: trace file not found")
    torn: dict[int, str] = {}
    text = [s for t, s in options.columns if t in TEXT_COLUMNS]  # mapped to text: keep as read
    if path.suffix == ".parquet":
        raw = read_parquet(path)
    elif options.drop_invalid and path.suffix not in (".zip", ".zst"):
        raw, torn = _read_csv_keeping_lines(path, text)
    else:
        raw = read_csv(path, text)
    source = str(path)
    raw = map_columns(raw, options.columns, source)
    converted, iso, extra = _parse_datetimes(raw)
    messages: list[str] = []
    dropped: dict[str, int] = {}
    if options.drop_invalid:
        checked, dropped, summary = _drop_invalid(converted, extra, torn, source)
        messages += summary
    elif extra:
        kept, checked, problems = check_trace(converted, source)
        raise_first_problem(raw.loc[kept.index], extra + problems, source)
        checked = complete_trace(checked)
    else:
        checked = validate_trace(converted, source)
    messages = _apply_units(checked, options, iso, source) + messages
    return TraceRead(checked, dropped, tuple(messages))


def map_columns(frame: pd.DataFrame, pairs, source: str) -> pd.DataFrame:
    """Rename each mapped file column to its trace column; a column it replaces is dropped.

    Raises:
        TraceError: a mapped file column is not in the file (names the columns found).
    """
    if not pairs:
        return frame
    missing = [s for _, s in pairs if s not in frame.columns]
    if missing:
        raise TraceError(
            f"{source}: --columns names {', '.join(map(repr, missing))}, not in the file "
            f"(found: {', '.join(map(str, frame.columns))})"
        )
    sources = {s for _, s in pairs}
    shadowed = [t for t, _ in pairs if t in frame.columns and t not in sources]
    return frame.drop(columns=shadowed).rename(columns={s: t for t, s in pairs})


def _read_csv_keeping_lines(path: Path, text: list[str]) -> tuple[pd.DataFrame, dict[int, str]]:
    """The CSV without its torn lines, indexed by line (label ``i`` = line ``i + 2``).

    Returns the frame and ``{label: reason}`` for each line whose field count is wrong.
    """
    kept, labels, torn = io.StringIO(), [], {}
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            check_delimiter(path, header)
            writer = csv.writer(kept, lineterminator="\n")
            writer.writerow(header or [])
            start = reader.line_num + 1
            for fields in reader:
                if fields and len(fields) != len(header):
                    torn[start - 2] = TORN_LINE
                else:
                    writer.writerow(fields)
                    labels.append(start - 2)
                start = reader.line_num + 1
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc}") from None
    if header is None:
        raise TraceError(f"{path}: the trace is empty (no header line)")
    kept.seek(0)
    frame = read_csv_frame(path, kept, text)
    frame.index = pd.Index(labels[: len(frame)])
    return frame, torn


def _parse_datetimes(raw: pd.DataFrame) -> tuple[pd.DataFrame, set[str], list]:
    """ISO-8601 time columns as epoch seconds (UTC; a time without offset is taken as UTC).

    A text column is read as datetimes when most of its non-empty values parse as ISO-8601;
    then a value that does not parse is a problem, and so is an ISO value among numbers.
    Returns the frame, the columns read as datetimes, and the problems found.
    """
    frame, iso, problems = raw, set(), []
    for column in TIME_COLUMNS:
        if column not in raw.columns or pd.api.types.is_numeric_dtype(raw[column]):
            continue
        text = raw[column].astype("string").str.strip()
        present = text.notna() & (text != "")
        numeric = pd.to_numeric(text, errors="coerce").notna()
        if not (present & ~numeric).any():
            continue
        parsed = pd.to_datetime(
            text.where(present & ~numeric), format="ISO8601", utc=True, errors="coerce"
        )
        if frame is raw:
            frame = raw.copy()
        if parsed.notna().sum() * 2 > present.sum():
            iso.add(column)
            epoch = pd.Timestamp(0, tz="UTC")
            frame[column] = (parsed - epoch) / pd.Timedelta(seconds=1)
            bad = present & parsed.isna()
            problems.append((bad, column, "is not an ISO-8601 datetime like the column's others"))
        elif parsed.notna().any():
            frame[column] = text.where(parsed.isna())
            mixed = "is an ISO-8601 datetime among numbers; give the column one form"
            problems.append((parsed.notna(), column, mixed))
    return frame, iso, problems


def _drop_invalid(converted: pd.DataFrame, extra: list, torn: dict[int, str], source: str):
    """Drop every row with a problem; the checked rows left, counts by reason, the summary."""
    kept, checked, problems = check_trace(converted, source)
    header = list(kept.columns)
    best = [math.inf] * len(kept)
    reasons: list[str | None] = [None] * len(kept)
    for bad, column, problem in extra + problems:
        rows = bad.reindex(kept.index, fill_value=False).to_numpy(dtype=bool, na_value=False)
        index = header.index(column)
        for position in rows.nonzero()[0]:
            if index < best[position]:
                best[position], reasons[position] = index, f"{column} {problem}"
    labels = list(kept.index)
    found = sorted(
        [(label, reason) for label, reason in torn.items()]
        + [(labels[i], r) for i, r in enumerate(reasons) if r is not None]
    )
    counts = collections.Counter(reason for _, reason in found)
    if found and len(found) == len(kept) + len(torn):
        raise TraceError(f"{source}: every row is invalid: {_summary(found, counts)}")
    good = [r is None for r in reasons]
    checked = complete_trace(checked[good])
    if not found:
        return checked, {}, []
    total = len(kept) + len(torn)
    message = f"{source}: dropped {len(found):,} of {total:,} rows: {_summary(found, counts)}"
    return checked, dict(counts), [message]


def _summary(found: list[tuple[int, str]], counts: collections.Counter) -> str:
    first = {}
    for label, reason in found:
        first.setdefault(reason, label + 2)
    return "; ".join(
        f"{n:,} {reason} (first: line {first[reason]})" for reason, n in counts.most_common()
    )


def _apply_units(frame: pd.DataFrame, options: TraceReadOptions, iso: set, source: str) -> list:
    """Scale the columns to seconds and MB in place; the plausibility warnings, one per column."""
    messages = []
    time_factor = TIME_UNITS_S[options.time_unit or "s"]
    if options.time_unit is None and "submitted_at" not in iso:
        time_factor, message = _epoch_unit(frame["submitted_at"], source)
        messages += message
    _scale(frame, [c for c in TIME_COLUMNS if c not in iso], time_factor)
    _scale(frame, DURATION_COLUMNS, DURATION_UNITS_S[options.duration_unit or "s"])
    memory_factor = MEMORY_UNITS_MB[(options.memory_unit or "MB").lower()]
    _scale(frame, ["memory_mb"], memory_factor)
    if options.duration_unit is None:
        messages += _durations_look_like_ms(frame["duration_s"], source)
    if options.memory_unit is None:
        messages += _memory_looks_like_bytes(frame["memory_mb"], source)
    return messages


def _scale(frame: pd.DataFrame, columns, factor: float) -> None:
    if factor != 1.0:
        for column in columns:
            if column in frame.columns:
                frame[column] = frame[column] * factor


def _epoch_unit(submitted: pd.Series, source: str) -> tuple[float, list[str]]:
    """Seconds per unit of a numeric ``submitted_at`` given without a unit, and why.

    Raises:
        TraceError: the values look like epoch micro- or nanoseconds.
    """
    median = float(submitted.median())
    if median >= EPOCH_US_MIN:
        raise TraceError(
            f"{source}: submitted_at values such as {median:.6g} look like epoch micro- or "
            "nanoseconds; convert them to seconds or milliseconds (or pass --time-unit s "
            "to read them as seconds)"
        )
    if median < EPOCH_MS_MIN:
        return 1.0, []
    when = pd.Timestamp(median / 1000, unit="s", tz="UTC").strftime("%Y-%m-%d")
    return 0.001, [
        f"{source}: submitted_at values such as {median:.0f} look like epoch milliseconds "
        f"(as seconds they would be past the year 5000; as ms they are {when}): read them as "
        "milliseconds; pass --time-unit ms to say so, or --time-unit s to keep them as seconds"
    ]


def _durations_look_like_ms(duration: pd.Series, source: str) -> list[str]:
    values = duration.dropna()
    if values.empty or float(values.median()) <= DURATION_MS_MEDIAN_S:
        return []
    if not (values == values.round()).all():
        return []
    median = float(values.median())
    return [
        f"{source}: duration_s has a median of {median:,.0f} s ({median / 3600:.1f} h) and only "
        f"whole numbers: it looks like milliseconds (that would be {median / 1000:,.1f} s); pass "
        "--duration-unit ms, or --duration-unit s if seconds are right"
    ]


def _memory_looks_like_bytes(memory: pd.Series, source: str) -> list[str]:
    values = memory.dropna()
    if values.empty or float(values.median()) <= MEMORY_BYTES_MEDIAN_MB:
        return []
    median = float(values.median())
    as_bytes, as_kb = median * MEMORY_UNITS_MB["b"], median * MEMORY_UNITS_MB["kb"]
    return [
        f"{source}: memory_mb has a median of {median:,.0f} MB (over a terabyte per job): it "
        f"looks like bytes ({as_bytes:,.1f} MB) or KB ({as_kb:,.0f} MB); pass --memory-unit B "
        "or --memory-unit KB, or --memory-unit MB if MB are right"
    ]
