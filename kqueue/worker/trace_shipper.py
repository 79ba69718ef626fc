"""Ships the worker's trace rows to the fleet trace in the backend, off the worker's loop.

The recorder hands each settled round's rows to ``TraceShipper.put`` (a list append under a
lock); a daemon thread encodes them (``kqueue.policy.trace_wire``) and appends them with one
``Backend.append_trace`` call at most every ``SHIP_INTERVAL_S``. So the loop never waits for the
backend on the trace's account. With the backend down the rows wait (at most
``MAX_BUFFERED_ROWS``; past that the oldest are dropped and counted in ``dropped``): the trace is
advice for the planner, and a worker must not grow without bound while its broker is away.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from kqueue.policy.trace import TraceRow
from kqueue.policy.trace_wire import encode_rows

log = logging.getLogger("kqueue.worker")

#: Longest a finished attempt waits before it is shipped, seconds.
SHIP_INTERVAL_S = 1.0
#: Most rows kept while the backend is unreachable.
MAX_BUFFERED_ROWS = 100_000
#: Longest ``close`` waits for the last rows to go out, seconds.
CLOSE_TIMEOUT_S = 5.0


class TraceShipper:
    """A background thread appending trace rows to ``backend`` (``keep_rows`` > 0).

    Args:
        backend: the fleet's backend (its ``append_trace``); used from the shipper's thread.
        keep_rows: the config's ``trace_keep_rows``.
        interval_s: least time between two appends.
    """

    def __init__(self, backend, keep_rows: int, *, interval_s: float = SHIP_INTERVAL_S):
        self.backend, self.keep_rows, self.interval_s = backend, keep_rows, interval_s
        #: Rows appended to the backend so far, and rows dropped while it was unreachable.
        self.shipped = self.dropped = 0
        self._rows: list[TraceRow | tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kqueue-trace", daemon=True)
        self._thread.start()

    def put(self, rows: Sequence[TraceRow | tuple]) -> None:
        """Queue rows (``TraceRow`` or its values in ``COLUMNS`` order) for the next append."""
        with self._lock:
            self._rows.extend(rows)
            self._trim()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.ship()

    def ship(self) -> bool:
        """Append what is queued now; False if the backend refused (the rows wait)."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return True
        try:
            self.backend.append_trace(encode_rows(rows), self.keep_rows)
        except Exception as exc:  # noqa: BLE001 - any failure: the rows wait, the thread lives
            log.warning("could not append %d trace row(s) to the backend (%s)", len(rows), exc)
            self.put_back(rows)
            return False
        self.shipped += len(rows)
        return True

    def put_back(self, rows: list[TraceRow | tuple]) -> None:
        """Return rows that were not appended to the front of the queue (oldest first)."""
        with self._lock:
            self._rows[:0] = rows
            self._trim()

    def _trim(self) -> None:
        """Drop the oldest rows past ``MAX_BUFFERED_ROWS`` (holding the lock)."""
        excess = len(self._rows) - MAX_BUFFERED_ROWS
        if excess > 0:
            del self._rows[:excess]
            self.dropped += excess

    def close(self) -> None:
        """Stop the thread and make one last append of what is queued (waits a few seconds)."""
        self._stop.set()
        self._thread.join(CLOSE_TIMEOUT_S)
        self.ship()
