"""Reads the fleet trace (every worker's rows, kept in the backend) as a trace DataFrame.

``kqueue trace export --backend URL`` writes it to a file, ``kqueue simulate/tune --trace URL``
replay it directly, and the dashboard's Plan page runs the twin on its last window. A trace URL
is a backend URL with an optional ``since`` option, e.g. ``redis://host:6379/0?since=24h`` or
``sqlite:///kqueue.db?since=1h``: ``since`` is a duration back from now (without it: every row
kept). Rows that do not decode (a foreign writer) are skipped and counted, never fatal.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit

from kqueue.backends import BackendKind, open_backend, redact_url
from kqueue.errors import ConfigError, TraceError
from kqueue.policy.trace import COLUMNS, TraceRow
from kqueue.policy.trace_wire import decode_rows
from kqueue.policy.units import parse_duration

#: Rows read from the backend per round trip.
READ_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class FleetTraceSource:
    """Where a fleet trace is: a backend URL (without ``since``) and how far back to read."""

    backend_url: str
    #: Read rows appended in the last this many seconds; None: every row kept.
    since_s: float | None = None

    def since_epoch(self, now: float) -> float:
        """The wall-clock time to read from (0: the oldest row kept)."""
        return 0.0 if self.since_s is None else now - self.since_s


def is_backend_url(text: str | None) -> bool:
    """True when ``text`` names a backend (``redis://``, ``sqlite://``, ...), not a file."""
    if not text or "://" not in text:
        return False
    return urlsplit(text).scheme in {kind.value for kind in BackendKind}


def parse_trace_url(url: str) -> FleetTraceSource:
    """Split a trace URL into its backend URL and its ``since`` option.

    Raises:
        ConfigError: ``since`` is not a duration (``30m``, ``24h``, ``3600``).
    """
    parts = urlsplit(url)
    options = parse_qsl(parts.query, keep_blank_values=True)
    since = [value for name, value in options if name == "since"]
    rest = [(name, value) for name, value in options if name != "since"]
    if not since:
        return FleetTraceSource(url, None)
    try:
        since_s = parse_duration(since[-1])
    except (ValueError, ConfigError) as exc:
        raise ConfigError(
            f"trace URL {redact_url(url)!r}: since={since[-1]!r} is not a duration "
            f"(e.g. since=1h): {exc}"
        ) from None
    # not geturl(): it would rewrite sqlite:////abs.db as sqlite:/abs.db
    base = url.split("?", 1)[0]
    backend_url = f"{base}?{urlencode(rest)}" if rest else base
    return FleetTraceSource(backend_url, since_s)


def read_fleet_rows(backend, since: float = 0.0) -> tuple[list[TraceRow], int]:
    """Every fleet-trace row appended at or after ``since`` (epoch s), and how many were bad."""
    rows: list[TraceRow] = []
    bad, cursor = 0, ""
    while True:
        batch = backend.read_trace(after=cursor, since=since, limit=READ_BATCH_ROWS)
        decoded, skipped = decode_rows(batch.rows)
        rows.extend(decoded)
        bad += skipped
        if len(batch.rows) < READ_BATCH_ROWS:
            return rows, bad
        cursor = batch.cursor


def rows_frame(rows: list[TraceRow]):
    """Trace rows as a DataFrame with the trace's columns, oldest submission first."""
    import pandas as pd

    frame = pd.DataFrame([dataclasses.astuple(row) for row in rows], columns=list(COLUMNS))
    return frame.sort_values("submitted_at", kind="stable").reset_index(drop=True)


def read_fleet_trace(url: str, *, now: float | None = None):
    """The fleet trace a trace URL names, as a DataFrame; and how many rows were unreadable.

    Raises:
        TraceError: the backend holds no rows in that window (names the URL, without secrets).
        BackendError: the URL names no backend kqueue serves.
    """
    source = parse_trace_url(url)
    with open_backend(source.backend_url) as backend:
        rows, bad = read_fleet_rows(backend, source.since_epoch(now or time.time()))
    if not rows:
        window = "" if source.since_s is None else f" in the last {source.since_s:g} s"
        raise TraceError(
            f"{redact_url(url)}: the fleet trace has no rows{window}; workers append them "
            "when trace_keep_rows > 0 (the default)"
        )
    return rows_frame(rows), bad


def export_fleet_trace(url: str, out: str, since_s: float | None = None) -> tuple[int, int]:
    """Write the fleet trace to ``out`` (CSV, or Parquet by its suffix); (rows, bad rows).

    ``since_s`` overrides a ``since`` option in the URL.
    """
    from kqueue.policy import write_trace

    if since_s is not None:
        source = parse_trace_url(url)
        url = source.backend_url + ("&" if "?" in source.backend_url else "?") + f"since={since_s}"
    frame, bad = read_fleet_trace(url)
    write_trace(frame, out)
    return len(frame), bad
