"""The trace row: one finished attempt of one job, written by the runtime, read by the simulator.

A trace is a CSV file (or Parquet when pyarrow is installed) with the columns of ``TraceRow``. To be
replayed a row needs only ``submitted_at``, ``job_class`` and ``duration_s``; the runtime always
writes every column. Times are float seconds; memory is MB. Reading a trace as it comes (other
column names, units, ISO datetimes, bad rows dropped) is ``trace_input.read_trace``, built on the
checks here.
"""

from __future__ import annotations

import csv
import dataclasses
import enum
import importlib
import io
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
    #: Its priority within the queue (``kqueue.policy.ordering``): the simulator's backlog
    #: orders by it. A trace without the column reads as priority 0 (or its class's
    #: ``[jobs]`` priority in the simulator).
    priority: int = 0


COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TraceRow))
REQUIRED: tuple[str, ...] = ("submitted_at", "job_class", "duration_s")
TEXT_COLUMNS: tuple[str, ...] = ("job_id", "queue", "job_class", "tier", "status", "worker")
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in TEXT_COLUMNS)
NON_NEGATIVE: tuple[str, ...] = ("duration_s", "cpu_s", "memory_mb", "wait_s", "estimated_s")
#: Points in time: float seconds (epoch or from any origin); ISO-8601 text is read too.
TIME_COLUMNS: tuple[str, ...] = ("submitted_at", "started_at", "finished_at")
#: Lengths of time in seconds: ``duration_unit`` scales all of them.
DURATION_COLUMNS: tuple[str, ...] = ("wait_s", "duration_s", "cpu_s", "estimated_s")
_TIERS = ("inline", "pool", "isolated")
_STATUSES = tuple(s.value for s in Status)
#: Rows end in CRLF (RFC 4180): Python's csv module quotes a value holding "\r" only when "\r" is
#: part of the line terminator, and an unquoted "\r" would split the row in two.
LINE_END = "\r\n"


def validate_trace(frame: pd.DataFrame, source: str = "<trace>") -> pd.DataFrame:
    """Check a trace DataFrame as ``read_trace`` does; return it with every column present.

    The error names the first bad value in file order (earliest line, then leftmost column).
    Index label ``i`` is reported as line ``i + 2`` (the header is line 1).
    """
    frame, checked, problems = check_trace(frame, source)
    raise_first_problem(frame, problems, source)
    return complete_trace(checked)


def check_trace(
    frame: pd.DataFrame, source: str = "<trace>"
) -> tuple[pd.DataFrame, pd.DataFrame, list]:
    """The rows kept (blank ones dropped), their numeric conversion, and every problem found.

    Each problem is ``(bad rows as a boolean Series, column, what is wrong)``.

    Raises:
        TraceError: a required column is missing, or the trace has no rows.
    """
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise TraceError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"a trace needs {', '.join(REQUIRED)} (found: {', '.join(map(str, frame.columns))}); "
            "name yours with --columns, e.g. submitted_at=enqueued_at,duration_s=runtime"
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
    if "priority" in frame.columns:
        problems.append((_not_whole(checked["priority"]), "priority", "must be a whole number"))
    for column, valid in (("tier", _TIERS), ("status", _STATUSES)):
        if column in frame.columns:
            bad = frame[column].notna() & ~frame[column].isin(valid)
            problems.append((bad, column, f"must be one of {', '.join(valid)}"))
    return frame, checked, problems


def complete_trace(checked: pd.DataFrame) -> pd.DataFrame:
    """A checked trace with every column present (missing ones empty) and text job classes."""
    for column in COLUMNS:
        if column not in checked.columns:
            checked[column] = math.nan if column in NUMERIC_COLUMNS else None
    checked["job_class"] = checked["job_class"].astype(str)
    return checked


def read_csv_frame(path: Path, source=None, text: Iterable[str] = ()) -> pd.DataFrame:
    """The CSV at ``path`` (or the text in ``source``, read as ``path``) as a raw DataFrame.

    Text columns (and the file columns named in ``text``) stay text, ``None`` when empty;
    nothing is validated yet.

    Raises:
        TraceError: no header, malformed CSV, or a file that cannot be read or decoded.
    """
    text_columns = (*TEXT_COLUMNS, *text)
    try:
        frame = pd.read_csv(
            path if source is None else source,
            dtype={c: "string" for c in text_columns},
            skip_blank_lines=False,
            compression="infer" if source is None else None,
            keep_default_na=False,  # only an empty field is missing: a queue may be named "NA"
            na_values=[""],
        )
    except TraceError:
        raise
    except pd.errors.EmptyDataError:
        raise TraceError(f"{path}: the trace is empty (no header line)") from None
    except pd.errors.ParserError as exc:
        raise TraceError(f"{path}: malformed CSV: {exc}") from None
    except ImportError as exc:  # pandas reads .zst only with zstandard installed
        raise TraceError(f"{path}: cannot decompress the trace: {exc}") from None
    except (ValueError, OSError, EOFError, csv.Error, *_archive_errors()) as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc}") from None
    for column in text_columns:
        if column in frame.columns:
            frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def read_csv(path: Path, text: Iterable[str] = ()) -> pd.DataFrame:
    """The CSV trace at ``path`` as a raw DataFrame, after checking every line's field count.

    ``text``: file columns to keep as text besides the trace's text columns. The line each row
    starts on is kept in ``frame.attrs["lines"]`` when it is not simply ``index + 2`` (a quoted
    value held a line break), so errors still name the right line.
    """
    try:
        starts = _check_field_counts(path)
    except (ValueError, OSError, EOFError, csv.Error, *_archive_errors()) as exc:
        raise TraceError(f"{path}: cannot read the trace: {exc}") from None
    frame = read_csv_frame(path, text=text)
    if starts is not None and len(starts) == len(frame) and starts[-1:] != [len(starts) + 1]:
        frame.attrs["lines"] = starts
    return frame


def _check_field_counts(path: Path) -> list[int] | None:
    """Reject the first row whose field count differs from the header's (blank lines are fine).

    pandas pads a short line with empty values silently and reports a long one without its
    column, so a torn or shifted line is caught here first. Returns the line each row starts
    on, or None for a compression only pandas reads.
    """
    if path.suffix in (".zip", ".zst"):
        return None  # pandas alone reads these compressions
    starts: list[int] = []
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        check_delimiter(path, header)
        end = reader.line_num  # of the header: a quoted name may hold a line break
        for fields in reader:
            starts.append(end + 1)
            end = reader.line_num
            if header is None or not fields or len(fields) == len(header):
                continue
            number = min(len(fields), len(header)) + 1
            name = f" ({header[number - 1]})" if number <= len(header) else ""
            raise TraceError(
                f"{path}: line {starts[-1]}, column {number}{name}: the line has "
                f"{len(fields)} fields but the header has {len(header)}"
            )
    return starts


#: The module opening each compressed suffix (imported when a trace uses it: a worker that only
#: writes traces does not import the decompressors at start).
_OPENERS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}


def _archive_errors() -> tuple[type[BaseException], ...]:
    """What a corrupt compressed file raises that is neither an ``OSError`` nor a ``ValueError``."""
    import lzma
    import tarfile
    import zipfile
    import zlib

    return (zlib.error, lzma.LZMAError, zipfile.BadZipFile, tarfile.TarError)


#: Delimiters a trace is likely to use instead of a comma, with the names an error gives them.
OTHER_DELIMITERS = {";": "semicolon ';'", "\t": "tab", "|": "pipe '|'"}


def open_text(path: Path):
    """``path`` opened as UTF-8 text, decompressed by its suffix (.gz, .bz2, .xz)."""
    module = _OPENERS.get(path.suffix)
    opener = open if module is None else importlib.import_module(module).open
    return opener(path, "rt", encoding="utf-8", newline="")


def check_delimiter(path: Path, header: list[str] | None) -> None:
    """Reject a header that is one field holding another delimiter (``;``, tab, ``|``).

    Raises:
        TraceError: names the delimiter found and says a trace is comma-separated.
    """
    if header is None or len(header) != 1:
        return
    counts = {d: header[0].count(d) for d in OTHER_DELIMITERS}
    found = max(counts, key=counts.get)
    if counts[found]:
        raise TraceError(
            f"{path}: line 1: the header {header[0][:80]!r} is separated by "
            f"{OTHER_DELIMITERS[found]}, not by commas; a trace is comma-separated CSV "
            "(convert it, e.g. with pandas: read_csv(sep=...).to_csv())"
        )


def read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise TraceError(
            f"{path}: reading Parquet needs pyarrow; run pip install kqueue[parquet]"
        ) from None
    try:
        return pd.read_parquet(path).reset_index(drop=True)
    except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise TraceError(f"{path}: cannot read the Parquet trace: {exc}") from None


def _numeric(values: pd.Series, column: str, problems: list) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        converted = values.astype(float)
    else:
        try:
            converted = pd.to_numeric(values, errors="coerce").astype(float)
        except OverflowError:  # pandas raises it even when coercing: an integer past float's range
            converted = values.map(_to_float).astype(float)
        bad = converted.isna() & values.notna() & (values.astype(str).str.strip() != "")
        what = "is not a number"
        if column in TIME_COLUMNS:
            what += " (seconds) or an ISO-8601 datetime such as 2024-05-01T12:00:00Z"
        problems.append((bad, column, what))
    problems.append((converted.isin([math.inf, -math.inf]), column, "is not finite"))
    return converted


def _to_float(value) -> float:
    """One value as ``pd.to_numeric`` reads it, an integer past float's range as infinity."""
    if pd.isna(value):
        return math.nan
    try:
        return float(pd.to_numeric(value, errors="coerce"))
    except OverflowError:
        return math.inf


def _not_whole(values: pd.Series) -> pd.Series:
    return values.notna() & (values != values.round())


def _empty(values: pd.Series) -> pd.Series:
    missing = values.isna()
    if not pd.api.types.is_numeric_dtype(values):  # object or pandas' str dtype
        missing = missing | (values.astype(str).str.strip() == "")
    return missing


def raise_first_problem(frame: pd.DataFrame, problems: list, source: str) -> None:
    """Raise ``TraceError`` for the earliest line with a problem, and on it the leftmost column.

    ``problems`` is as ``check_trace`` returns; on a tie the problem listed first is named.
    """
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
    lines = frame.attrs.get("lines")
    if lines is not None and isinstance(label, numbers.Integral) and 0 <= label < len(lines):
        line = lines[label]
    else:
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
        writer = csv.writer(buffer, lineterminator=LINE_END)
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
        csv.writer(buffer, lineterminator=LINE_END).writerow(values)
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
    frame[columns].to_csv(path, index=False, float_format="%.6f", lineterminator=LINE_END)


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


def window_throughput_per_min(
    first_s: float, last_s: float, finished_by_last: int, finished: int, end_s: float
) -> float:
    """Throughput as the simulator and the dashboard both report it, jobs per minute.

    The jobs finished by the last arrival (``finished_by_last``) per minute of the arrival
    window ``first_s``..``last_s``; when every job arrived at once, the ``finished`` jobs per
    minute of the makespan (``first_s`` to the last finish, ``end_s``).
    """
    if last_s > first_s:
        return finished_by_last * 60.0 / (last_s - first_s)
    span_s = end_s - first_s
    return finished * 60.0 / span_s if span_s > 0 else 0.0
