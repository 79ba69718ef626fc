"""Recording a running Celery deployment's task events as kqueue trace rows.

A team still on Celery can plan its move before making it: ``kqueue trace record-celery`` listens
to the task events Celery's workers send (workers run with ``-E``, or ``--enable-events`` asks
them to start) and writes one trace row per finished attempt, as ``kqueue run`` would:

| trace column | from |
|---|---|
| ``job_id``, ``job_class`` | the task's uuid and name (``task-received``) |
| ``submitted_at`` | ``task-sent`` if clients send it (``task_send_sent_event``), else received |
| ``queue`` | ``task-sent``'s queue (empty without it: workers do not say) |
| ``started_at``, ``wait_s`` | ``task-started``; wait = start - submitted |
| ``duration_s`` | ``task-succeeded``'s runtime; for a failure, failed - started |
| ``status``, ``attempt`` | ok / failed (``task-failed`` and ``task-retried``); retries + 1 |
| ``worker`` | the worker's hostname |

CPU time and memory are not in Celery's events, so those columns stay empty (the simulator then
assumes its defaults and says how many rows it filled). Celery is optional: ``pip install
kqueue[celery]``.
"""

from __future__ import annotations

import collections
import math
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from kqueue.errors import KQueueError
from kqueue.policy.status import Status
from kqueue.policy.trace import TraceRow, TraceWriter

#: The task events the recorder reads; others (worker heartbeats, ...) are ignored.
TASK_EVENTS = (
    "task-sent",
    "task-received",
    "task-started",
    "task-succeeded",
    "task-failed",
    "task-retried",
)
#: Tasks seen but not finished that the builder remembers; the oldest are forgotten past this.
MAX_PENDING = 100_000
CELERY_HINT = "recording Celery task events needs celery; run pip install kqueue[celery]"


@dataclass
class _Task:
    """What the events so far said about one attempt of one task."""

    sent_at: float | None = None
    received_at: float | None = None
    started_at: float | None = None
    name: str | None = None
    queue: str | None = None
    attempt: int = 1


class CeleryTraceBuilder:
    """Turns Celery task events (dicts as Celery's event receiver gives them) into trace rows.

    Pure bookkeeping, no I/O: ``add(event)`` returns the row of an attempt that just finished,
    else ``None``. ``unmatched`` counts finishes of tasks received before recording began.
    """

    def __init__(self, max_pending: int = MAX_PENDING):
        self._tasks: collections.OrderedDict[str, _Task] = collections.OrderedDict()
        self._max_pending = max_pending
        self.unmatched = 0

    def add(self, event: dict) -> TraceRow | None:
        """Take one event; the finished attempt's row on success, failure or retry."""
        kind, uuid = event.get("type"), event.get("uuid")
        if kind not in TASK_EVENTS or not uuid:
            return None
        at = float(event.get("timestamp") or 0.0)
        if kind == "task-sent":
            task = self._task(uuid)
            task.sent_at, task.queue = at, event.get("queue") or task.queue
            task.name = task.name or event.get("name")
        elif kind == "task-received":
            previous = self._tasks.pop(uuid, None)
            fresh = previous if previous and previous.received_at is None else _Task()
            fresh.received_at, fresh.name = at, event.get("name") or fresh.name
            fresh.attempt = int(event.get("retries") or 0) + 1
            self._remember(uuid, fresh)
        elif kind == "task-started":
            self._task(uuid).started_at = at
        else:
            return self._finish(uuid, kind, at, event)
        return None

    def _task(self, uuid: str) -> _Task:
        if uuid not in self._tasks:
            self._remember(uuid, _Task())
        return self._tasks[uuid]

    def _remember(self, uuid: str, task: _Task) -> None:
        self._tasks[uuid] = task
        while len(self._tasks) > self._max_pending:
            self._tasks.popitem(last=False)

    def _finish(self, uuid: str, kind: str, at: float, event: dict) -> TraceRow | None:
        task = self._tasks.pop(uuid, None)
        if task is None or task.name is None or task.received_at is None:
            self.unmatched += 1
            return None
        submitted = task.sent_at if task.sent_at is not None else task.received_at
        started = task.started_at if task.started_at is not None else at
        runtime = event.get("runtime")
        duration = float(runtime) if runtime is not None else max(0.0, at - started)
        return TraceRow(
            job_id=uuid,
            queue=task.queue or "",
            job_class=task.name,
            tier="",
            submitted_at=submitted,
            started_at=started,
            finished_at=started + duration,
            wait_s=max(0.0, started - submitted),
            duration_s=duration,
            cpu_s=math.nan,
            memory_mb=math.nan,
            status=Status.OK if kind == "task-succeeded" else Status.FAILED,
            attempt=task.attempt,
            worker=str(event.get("hostname") or ""),
            estimated_s=math.nan,
        )


@dataclass
class Recording:
    """What one recording saw: task events read, rows written, finishes without a start."""

    events: int = 0
    rows: int = 0
    unmatched: int = 0
    classes: set[str] = field(default_factory=set)


def record_celery(
    broker_url: str,
    out: str | Path,
    *,
    duration_s: float | None = None,
    max_events: int | None = None,
    enable_events: bool = False,
    on_ready=None,
) -> Recording:
    """Record task events from ``broker_url`` into the trace CSV ``out`` (appended, row by row).

    Stops after ``duration_s`` seconds, after ``max_events`` task events, or on Ctrl-C.
    ``on_ready()`` is called once the event queue is bound (events before it are not seen).

    Raises:
        KQueueError: celery is not installed, or the broker cannot be reached.
    """
    try:
        from celery import Celery
        from kombu.exceptions import OperationalError
    except ImportError:
        raise KQueueError(CELERY_HINT) from None
    app = Celery("kqueue-recorder", broker=broker_url, set_as_current=False)
    recording, builder = Recording(), CeleryTraceBuilder()
    try:
        with TraceWriter(out) as writer, app.connection_for_read() as connection:
            receiver = _receiver(app, connection, recording, builder, writer, max_events, on_ready)
            if enable_events:
                app.control.enable_events(connection=connection)
            _capture(receiver, duration_s)
    except (OSError, OperationalError) as exc:
        raise KQueueError(f"cannot record from the broker {broker_url}: {exc}") from None
    finally:
        app.close()
    recording.unmatched = builder.unmatched
    return recording


def _receiver(app, connection, recording, builder, writer, max_events, on_ready):
    """A Celery event receiver that writes each finished attempt's row as it comes."""

    def on_event(event: dict) -> None:
        if event.get("type") not in TASK_EVENTS:
            return
        if max_events and recording.events >= max_events:
            return  # one drain can hand over several events; the receiver stops after it
        recording.events += 1
        row = builder.add(event)
        if row is not None:
            writer.write(row)
            recording.rows += 1
            recording.classes.add(row.job_class)
        if max_events and recording.events >= max_events:
            receiver.should_stop = True

    class Receiver(app.events.Receiver):
        def on_consume_ready(self, *args, **kwargs):
            super().on_consume_ready(*args, **kwargs)
            if on_ready is not None:
                on_ready()

    receiver = Receiver(connection, handlers={"*": on_event})
    return receiver


def _capture(receiver, duration_s: float | None) -> None:
    """Run the receiver until it is told to stop, ``duration_s`` passes, or Ctrl-C."""

    def stop() -> None:
        receiver.should_stop = True

    timer = threading.Timer(duration_s, stop) if duration_s else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        receiver.capture(limit=None, timeout=None, wakeup=True)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        if timer is not None:
            timer.cancel()
