"""Five-field cron expressions: parsing with clear errors, and the next time one fires.

``minute hour day-of-month month day-of-week``, each ``*``, ``N``, ``A-B``, ``*/S``, ``A-B/S``,
``N/S`` (from N to the field's end) or a comma list of those; months and weekdays also by name
(``jan``, ``mon``); weekday 0 and 7 are Sunday. ``@hourly``, ``@daily``, ``@weekly``,
``@monthly`` and ``@yearly`` are aliases. As in Vixie cron, when both day-of-month and
day-of-week are restricted a day matching either fires.

Times are wall-clock in the schedule's timezone (``zoneinfo``): a local time that happens twice
(the hour the clocks go back) fires once, at its first occurrence; a local time that does not
exist (the hour the clocks go forward) does not fire. ``next_fire_s`` is the rule both the
runtime's scheduler and the simulator use.
"""

from __future__ import annotations

import calendar
import datetime
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kqueue.errors import ConfigError

if TYPE_CHECKING:  # imported by ``timezone``: a worker without schedules never needs it
    import zoneinfo

#: (name, low, high) of each field, in order.
FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)
_MONTHS = {name: i for i, name in enumerate(calendar.month_abbr) if name}
_MONTH_NAMES = {name.lower(): i for name, i in _MONTHS.items()}
_DAY_NAMES = {name: i for i, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_NAMES = {3: _MONTH_NAMES, 4: _DAY_NAMES}
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: ``next_fire_s`` gives up after this many local days without a match (a Feb-29-only rule
#: fires within 8 years).
SEARCH_DAYS = 366 * 9


class CronError(ConfigError):
    """Raised when a cron expression is malformed; names the field and its column."""


@dataclass(frozen=True)
class Cron:
    """A parsed cron expression: the allowed values of each field."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    #: 0 = Sunday ... 6 = Saturday (7 is folded into 0).
    weekdays: frozenset[int]
    #: Whether day-of-month / day-of-week were restricted (not ``*``): the "either" rule.
    days_restricted: bool
    weekdays_restricted: bool

    def matches_day(self, day: datetime.date) -> bool:
        """True when ``day`` (local) is one this expression fires on."""
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def matches(self, local: datetime.datetime) -> bool:
        """True when the local wall-clock minute ``local`` is one this expression fires at."""
        return local.minute in self.minutes and local.hour in self.hours and self.matches_day(local)


def _fail(text: str, index: int, column: int, problem: str) -> CronError:
    name, low, high = FIELDS[index]
    return CronError(
        f"cron {text!r}: field {index + 1} ({name}, {low}-{high}) at column {column}: {problem}"
    )


def _value(part: str, index: int, text: str, column: int) -> int:
    names = _NAMES.get(index, {})
    if part.lower() in names:
        return names[part.lower()]
    if not part.isdigit():
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise _fail(text, index, column, f"{part!r} is not a number{hint}")
    value, (_, low, high) = int(part), FIELDS[index]
    if not low <= value <= high:
        raise _fail(text, index, column, f"{value} is out of range {low}-{high}")
    return value


def _range(part: str, index: int, text: str, column: int) -> range:
    base, slash, step_text = part.partition("/")
    _, low, high = FIELDS[index]
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise _fail(text, index, column, f"step {step_text!r} is not a positive number")
        step = int(step_text)
    if base == "*":
        return range(low, high + 1, step)
    start_text, dash, end_text = base.partition("-")
    start = _value(start_text, index, text, column)
    end = _value(end_text, index, text, column) if dash else (high if slash else start)
    if end < start:
        raise _fail(text, index, column, f"range {base!r} runs backwards")
    return range(start, end + 1, step)


def _field(source: str, index: int, text: str, column: int) -> frozenset[int]:
    values: set[int] = set()
    offset = 0
    for part in source.split(","):
        if not part:
            raise _fail(text, index, column + offset, "empty list item")
        values.update(_range(part, index, text, column + offset))
        offset += len(part) + 1
    if index == 4 and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


def _split(text: str) -> list[tuple[str, int]]:
    """The whitespace-separated fields of ``text`` with their 1-based columns."""
    fields, column = [], 0
    for i, char in enumerate(text + " "):
        if char.isspace():
            if column:
                fields.append((text[column - 1 : i], column))
            column = 0
        elif not column:
            column = i + 1
    return fields


def parse_cron(text: str) -> Cron:
    """Parse a five-field cron expression (or an ``@daily``-style alias).

    Raises:
        CronError: the wrong number of fields, or a field that does not parse (the message
            names the field, its allowed range and the column), or a day that never exists
            (``0 0 31 2 *``).
    """
    if not isinstance(text, str):
        raise CronError(f"cron {text!r}: expected a string such as '*/5 * * * *'")
    source = ALIASES.get(text.strip().lower(), text)
    fields = _split(source)
    if len(fields) != 5:
        raise CronError(
            f"cron {text!r}: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    sets = [_field(part, i, source, column) for i, (part, column) in enumerate(fields)]
    cron = Cron(
        text,
        *sets,
        days_restricted=fields[2][0] != "*",
        weekdays_restricted=fields[4][0] != "*",
    )
    if not cron.weekdays_restricted and not _some_day_exists(cron):
        raise _fail(source, 2, fields[2][1], "no such day in the months allowed")
    return cron


def _some_day_exists(cron: Cron) -> bool:
    return any(day <= calendar.monthrange(2000, m)[1] for m in cron.months for day in cron.days)


def timezone(name: str) -> zoneinfo.ZoneInfo:
    """The ``zoneinfo`` timezone ``name`` (``UTC``, ``Europe/Berlin``).

    Raises:
        ConfigError: an unknown timezone name.
    """
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise ConfigError(
            f"timezone {name!r} is unknown; use an IANA name such as 'UTC' or 'Europe/Berlin'"
        ) from None


def _instant(naive: datetime.datetime, tz: zoneinfo.ZoneInfo) -> float | None:
    """The epoch seconds of the first occurrence of local ``naive``, None if it does not exist."""
    aware = naive.replace(tzinfo=tz, fold=0)
    back = aware.astimezone(datetime.UTC).astimezone(tz)
    if back.replace(tzinfo=None) != naive:
        return None  # in the gap when the clocks go forward
    return aware.timestamp()


def _next_candidate(cron: Cron, naive: datetime.datetime) -> datetime.datetime:
    """The next local minute >= ``naive`` whose fields may match, jumping whole days/hours."""
    day = datetime.timedelta(days=1)
    while not cron.matches_day(naive):
        naive = (naive + day).replace(hour=0, minute=0)
    while naive.hour not in cron.hours:
        nxt = (naive + datetime.timedelta(hours=1)).replace(minute=0)
        if nxt.date() != naive.date():
            return nxt
        naive = nxt
    while naive.minute not in cron.minutes:
        nxt = naive + datetime.timedelta(minutes=1)
        if nxt.hour != naive.hour:
            return nxt
        naive = nxt
    return naive


def next_fire_s(cron: Cron, after_s: float, tz: zoneinfo.ZoneInfo) -> float | None:
    """The first time, epoch seconds, strictly after ``after_s`` at which ``cron`` fires in ``tz``.

    None if it does not fire within ``SEARCH_DAYS`` (a rule such as Feb 30 is refused earlier,
    by ``parse_cron``).
    """
    # whole seconds first: fromtimestamp rounds to the microsecond, so a time a hair before a
    # minute (1799999999.9999998) would read as that minute and the search would skip it
    start = datetime.datetime.fromtimestamp(math.floor(after_s), tz).replace(tzinfo=None, fold=0)
    naive = start.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)
    limit = naive + datetime.timedelta(days=SEARCH_DAYS)
    while naive < limit:
        candidate = _next_candidate(cron, naive)
        if candidate != naive:
            naive = candidate
            continue
        instant = _instant(naive, tz)
        if instant is not None and instant > after_s:
            return instant
        naive += datetime.timedelta(minutes=1)
    return None
