"""The trace row: one finished attempt of one job, written by the runtime, read by the simulator.

A trace is a CSV file (or Parquet when pyarrow is installed) with the columns of ``TraceRow``. To be
replayed a row needs only ``submitted_at``, ``job_class`` and ``duration_s``; the runtime always
writes every column. Times are float seconds; memory is MB.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import enum
import gzip
import io
import lzma
import math
import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kqueue.errors import TraceError
from kqueue.policy.status import Status


class _LazyPandas:
    """``pd`` imported on first use: the worker writes traces without pandas, and importing it
    would add about a second to every worker's start."""

    def __getattr__(self, name: str):
        import pandas

        globals()["pd"] = pandas
        return getattr(pandas, name)


pd = _LazyPandas()


@dataclass(frozen=True)
class TraceRow:
    """One finished attempt of one job."""

    job_id: str
    queue: str
    job_class: str
    tier: str
    submitted_at: float
    started_at: float
    finished_at: float
    wait_s: float
    duration_s: float
    cpu_s: float
    memory_mb: float
    status: str
    attempt: int
    worker: str
    estimated_s: float
    #: When the job was due (its delay or ``at``; ``submitted_at`` if it had none): the
    #: simulator releases it then, and ``wait_s`` counts from then.
    due_at: float = math.nan


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TraceRow))
REQUIRED: tuple[str, ...] = ("submitted_at", "job_class", "duration_s")
TEXT_COLUMNS: tuple[str, ...] = ("job_id", "queue", "job_class", "tier", "status", "worker")
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in TEXT_COLUMNS)
NON_NEGATIVE: tuple[str, ...] = ("duration_s", "cpu_s", "memory_mb", "wait_s", "estimated_s")
_TIERS = ("inline", "pool", "isolated")
_STATUSES = tuple(s.value for s in Status)


def read_trace(path: str | Path) -> pd.DataFrame:
    """Read and validate a trace (CSV, gzip CSV or Parquet) into a DataFrame with every column.

    Optional columns missing from the file are added, empty. Rows keep the file's order.

    Raises:
        TraceError: missing file, empty trace, missing required column, or the first bad value,
            naming the file, the line (1 = header) and the column.
    """
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: trace file not found")
    frame = _read_parquet(path) if path.suffix == ".parquet" else _read_csv(path)
    return validate_trace(frame, source=str(path))


def validate_trace(frame: pd.DataFrame, source: str = "<trace>") -> pd.DataFrame:
    """Check a trace DataFrame as ``read_trace`` does; return it with every column present.

    The error names the first bad value in file order (earliest line, then leftmost column).
    Index label ``i`` is reported as line ``i + 2`` (the header is line 1).
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TraceError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"a trace needs {', '.join(REQUIRED)} (found: {', '.join(map(str, frame.columns))})"
        )
    frame = frame.dropna(how="all")
    if frame.empty:
        raise TraceError(f"{source}: the trace has no rows")
    checked = frame.copy()
    problems: list[tuple[pd.Series, str, str]] = []  # (bad rows, column, what is wrong)
    for column in NUMERIC_COLUMNS:
        if column in frame.columns:
            checked[column] = _numeric(frame[column], column, problems)
    for column in REQUIRED:
        problems.append((_empty(checked[column]), column, "is required but empty"))
    for column in NON_NEGATIVE:
        if column in frame.columns:
            problems.append((checked[column] < 0, column, "must be >= 0"))
    for column, valid in (("tier", _TIERS), ("status", _STATUSES)):
        if column in frame.columns:
            bad = frame[column].notna() & ~frame[column].isin(valid)
            problems.append((bad, column, f"must be one of {', '.join(valid)}"))
    _raise_first(frame, problems, source)
    for column in COLUMNS:
        if column not in checked.columns:
            checked[column] = math.nan if column in NUMERIC_COLUMNS else None
    checked["job_class"] = checked["job_class"].astype(str)
    return checked


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        _check_field_counts(path)
        frame = pd.read_csv(
            path,
            dtype={c: "string" for c in TEXT_COLUMNS},
            skip_blank_lines=False,
            compression="infer",
        )
    except pd.errors.EmptyDataError:
        raise TraceError(f"{path}: the trace is empty (no header line)") from None
    except pd.errors.ParserError as exc:
        raise TraceError(f"{path}: malformed CSV: {exc}") from None
    except (UnicodeDecodeError, OSError, EOFError, csv.Error) as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc}") from None
    for column in TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def _check_field_counts(path: Path) -> None:
    """Reject the first line whose field count differs from the header's (blank lines are fine).

    pandas pads a short line with empty values silently and reports a long one without its
    column, so a torn or shifted line is caught here first.
    """
    if path.suffix in (".zip", ".zst"):
        return  # pandas alone reads these compressions
    opener = _OPENERS.get(path.suffix, open)
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        for fields in reader:
            if header is None or not fields or len(fields) == len(header):
                continue
            number = min(len(fields), len(header)) + 1
            name = f" ({header[number - 1]})" if number <= len(header) else ""
            raise TraceError(
                f"{path}: line {reader.line_num}, column {number}{name}: the line has "
                f"{len(fields)} fields but the header has {len(header)}"
            )


_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise TraceError(
            f"{path}: reading Parquet needs pyarrow; run pip install kqueue[parquet]"
        ) from None
    return pd.read_parquet(path).reset_index(drop=True)


def _numeric(values: pd.Series, column: str, problems: list) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        converted = values.astype(float)
    else:
        converted = pd.to_numeric(values, errors="coerce").astype(float)
        bad = converted.isna() & values.notna() & (values.astype(str).str.strip() != "")
        problems.append((bad, column, "is not a number"))
    problems.append((converted.isin([math.inf, -math.inf]), column, "is not finite"))
    return converted


def _empty(values: pd.Series) -> pd.Series:
    missing = values.isna()
    if not pd.api.types.is_numeric_dtype(values):  # object or pandas' str dtype
        missing = missing | (values.astype(str).str.strip() == "")
    return missing


def _raise_first(frame: pd.DataFrame, problems: list, source: str) -> None:
    """Raise for the earliest line with a problem, and on it the leftmost column."""
    header = list(frame.columns)
    first = None
    for bad, column, problem in problems:
        rows = bad.to_numpy(dtype=bool, na_value=False)
        if rows.any():
            where = (int(rows.argmax()), header.index(column))
            if first is None or where < first[0]:
                first = (where, column, problem)
    if first is None:
        return
    (position, index), column, problem = first
    label = frame.index[position]
    value = frame.at[label, column]
    shown = "''" if pd.isna(value) else repr(value.item() if hasattr(value, "item") else value)
    line = int(label) + 2 if isinstance(label, numbers.Number) else label
    raise TraceError(
        f"{source}: line {line}, column {index + 1} ({column}): value {shown} {problem}"
    )


class TraceWriter:
    """Appends trace rows to a CSV file, one whole line per write, flushed at once.

    The file is readable by ``read_trace`` at any moment: a row is written with a single
    ``write`` call on a file opened for appending, so readers never see half a row.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
        if self._file.tell() == 0 and self.path.stat().st_size == 0:
            self._write_line(COLUMNS)

    def write(self, row: TraceRow) -> None:
        """Append one row and flush it."""
        self._write_line(_row_values(row))

    def write_many(self, rows: Iterable[TraceRow]) -> None:
        """Append several rows in one write and flush them."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows(_row_values(row) for row in rows)
        if buffer.tell():
            self._file.write(buffer.getvalue())
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> TraceWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _write_line(self, values: Iterable) -> None:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(values)
        self._file.write(buffer.getvalue())
        self._file.flush()


def write_trace(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a whole trace DataFrame as CSV (or Parquet for a ``.parquet`` path)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = [c for c in COLUMNS if c in frame.columns]
    columns += [c for c in frame.columns if c not in COLUMNS]
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise TraceError(
                f"{path}: writing Parquet needs pyarrow; run pip install kqueue[parquet]"
            ) from None
        frame[columns].to_parquet(path, index=False)
        return
    frame[columns].to_csv(path, index=False, float_format="%.6f")


def rows_to_frame(rows: Iterable[TraceRow]) -> pd.DataFrame:
    """Trace rows as a DataFrame with the trace columns in order."""
    return pd.DataFrame([dataclasses.astuple(r) for r in rows], columns=list(COLUMNS))


def _row_values(row: TraceRow) -> list:
    return [_format(value) for value in dataclasses.astuple(row)]


def _format(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6f}"
    if isinstance(value, enum.Enum):
        return value.value
    return "" if value is None else str(value)
