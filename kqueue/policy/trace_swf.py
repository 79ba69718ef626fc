"""The Parallel Workloads Archive's Standard Workload Format (SWF), read as a kqueue trace.

An SWF log has one job a line, 18 whitespace-separated fields, ``;`` header comments and ``-1``
for a missing value. The fields a trace uses (1-based, as the format's definition numbers them):

| field | SWF meaning | trace column |
|---|---|---|
| 1 | job number | ``job_id`` |
| 2 | submit time, s from the log's start | ``submitted_at`` |
| 3 | wait time, s | ``wait_s``; ``started_at`` = submit + wait |
| 4 | run time, s | ``duration_s``; ``finished_at`` = start + run |
| 5 | allocated processors | (multiplies field 7) |
| 7 | used memory, KB per processor | ``memory_mb`` = field 7 x field 5 / 1024 |
| 11 | status: 1 completed, 0 failed, 5 cancelled | ``status`` ok, failed, killed |
| 12 | user id | ``job_class`` = ``user-<id>`` |
| 15 | queue number | ``queue`` = ``queue-<n>`` |

A job without a submit or run time cannot be replayed: it is an error naming the line, or with
``drop_invalid`` it is dropped and counted. KB are binary (1024 bytes), as the archive's own
converted CSVs read them.
"""

from __future__ import annotations

import collections
from pathlib import Path

from kqueue.errors import TraceError
from kqueue.policy.trace import COLUMNS, TEXT_COLUMNS, complete_trace, open_text, pd
from kqueue.policy.trace_input import TraceRead

#: Fields on every SWF line.
SWF_FIELDS = 18
#: SWF status codes as trace statuses (others are left empty).
SWF_STATUS = {1: "ok", 0: "failed", 5: "killed"}
#: The job class of a job whose user id is missing (-1).
UNKNOWN_USER = "user-unknown"
#: The class that ``group_classes`` puts the less frequent classes in.
OTHER_CLASS = "user-other"


def read_swf(path: str | Path, *, drop_invalid: bool = False) -> TraceRead:
    """Read an SWF log (plain, .gz, .bz2 or .xz) into a validated trace.

    Raises:
        TraceError: a missing file, no jobs, or (without ``drop_invalid``) the first bad line,
            naming the file, the line, the field and its value.
    """
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: SWF file not found")
    rows, problems = [], []
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                text = line.strip()
                if not text or text.startswith(";"):
                    continue
                row, problem = _swf_row(text)
                if problem is None:
                    rows.append(row)
                elif not drop_invalid:
                    raise TraceError(f"{path}: line {number}: {problem[1]}")
                else:
                    problems.append((number, problem[0]))
    except (UnicodeDecodeError, OSError, EOFError) as exc:
        raise TraceError(f"{path}: cannot read the SWF log: {exc}") from None
    if not rows:
        raise TraceError(f"{path}: no valid SWF job lines" + _counted(problems))
    frame = complete_trace(pd.DataFrame(rows, columns=_ROW_COLUMNS))[list(COLUMNS)]
    for column in TEXT_COLUMNS:  # empty is None, as read_trace gives it
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    counts = collections.Counter(reason for _, reason in problems)
    warnings = []
    if problems:
        total = len(rows) + len(problems)
        warnings.append(f"{path}: dropped {len(problems):,} of {total:,} jobs" + _counted(problems))
    return TraceRead(frame, dict(counts), tuple(warnings))


_ROW_COLUMNS = (
    "job_id",
    "queue",
    "job_class",
    "submitted_at",
    "started_at",
    "finished_at",
    "wait_s",
    "duration_s",
    "memory_mb",
    "status",
    "attempt",
)
_NAMES = {2: "submit time", 3: "wait time", 4: "run time", 5: "processors", 7: "used memory"}


def _swf_row(text: str) -> tuple[tuple | None, tuple[str, str] | None]:
    """One SWF line as a row of ``_ROW_COLUMNS``, or ``(None, (reason, message))``."""
    fields = text.split()
    if len(fields) != SWF_FIELDS:
        return None, ("wrong number of fields", f"{len(fields)} fields, an SWF line has 18")
    values = {}
    for index in (2, 3, 4, 5, 7, 11, 12, 15):
        try:
            values[index] = float(fields[index - 1])
        except ValueError:
            name = _NAMES.get(index, f"field {index}")
            return None, (
                f"{name} is not a number",
                f"field {index} ({name}): value {fields[index - 1]!r} is not a number",
            )
    for index in (2, 4):
        if values[index] < 0:
            name = _NAMES[index]
            return None, (
                f"{name} missing",
                f"field {index} ({name}): value {fields[index - 1]!r} (missing)",
            )
    submit, wait, run, procs, memory = (values[i] for i in (2, 3, 4, 5, 7))
    start = submit + wait if wait >= 0 else None
    finish = start + run if start is not None else None
    memory_mb = memory * procs / 1024 if memory >= 0 and procs >= 0 else None
    user, queue = int(values[12]), int(values[15])
    return (
        fields[0],
        f"queue-{queue}" if queue >= 0 else None,
        f"user-{user}" if user >= 0 else UNKNOWN_USER,
        submit,
        start,
        finish,
        wait if wait >= 0 else None,
        run,
        memory_mb,
        SWF_STATUS.get(int(values[11])),
        1,
    ), None


def _counted(problems: list[tuple[int, str]]) -> str:
    if not problems:
        return ""
    first = {}
    for number, reason in problems:
        first.setdefault(reason, number)
    counts = collections.Counter(reason for _, reason in problems)
    return ": " + "; ".join(
        f"{n:,} {reason} (first: line {first[reason]})" for reason, n in counts.most_common()
    )


def group_classes(frame: pd.DataFrame, max_classes: int) -> pd.DataFrame:
    """The trace with only its ``max_classes - 1`` most frequent job classes kept by name.

    The rest become ``OTHER_CLASS``, so a log of hundreds of users replays as a few classes
    with enough history each. Ties in frequency keep the class seen first.

    Raises:
        ValueError: ``max_classes`` below 2.
    """
    if max_classes < 2:
        raise ValueError(f"--max-classes must be at least 2, got {max_classes}")
    counts = frame["job_class"].value_counts(sort=False)
    order = sorted(range(len(counts)), key=lambda i: (-counts.iloc[i], i))
    if len(counts) <= max_classes:
        return frame
    kept = {counts.index[i] for i in order[: max_classes - 1]}
    grouped = frame.copy()
    grouped["job_class"] = frame["job_class"].where(frame["job_class"].isin(kept), OTHER_CLASS)
    return grouped
