"""Cron expressions: parsing, matching wall-clock times, and their fire instants.

A matching wall-clock time fires by the rules in `zones`: at the first instant
after a spring-forward gap that skips it, once at the first occurrence of a
fall-back overlap that repeats it. The exception is cron with `*` or a step
leading its minute or hour field: such a schedule follows elapsed time, so it
fires in both occurrences of a repeated hour and not at all in a skipped one.

Limit: the walk from one wall-clock time to the next relies on the zone
arithmetic of `zones`, which assumes no offset changes by more than three hours
at once; around such a change in the past, a cron schedule may miss the fires of
a repeated stretch.
"""

import re
from bisect import bisect_left
from calendar import month_name
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from functools import lru_cache
from heapq import heappop, heappush
from typing import NamedTuple
from zoneinfo import ZoneInfo

from shared.schedules.errors import ScheduleError
from shared.schedules.zones import UTC_KEYS, gap_end, occurrences_of, offsets_near

ONE_MINUTE = timedelta(minutes=1)
ONE_DAY = timedelta(days=1)

# The longest gap between two fire times of a valid expression: a 29 February
# can be eight years from the next (2096, then 2104).
_HORIZON_YEARS = 9


class _Field(NamedTuple):
    """One of the five cron fields, as a user writes it."""

    name: str
    low: int
    high: int  # the largest value accepted (7 is also Sunday)
    top: int  # the last value of the field's cycle, where `*` and `n/step` end
    names: dict[str, int]
    unit: str | None  # the recurring interval that a too-large step likely meant


# fmt: off
_MONTH_NAMES = (
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
)
# fmt: on
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_MINUTE = _Field("minute", 0, 59, 59, {}, "minute")
_HOUR = _Field("hour", 0, 23, 23, {}, "hour")
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, 31, {}, "day")
_MONTH = _Field(
    "month", 1, 12, 12, {name: n for n, name in enumerate(_MONTH_NAMES, 1)}, "month"
)
_DAY_OF_WEEK = _Field(
    "day-of-week", 0, 7, 6, {name: n for n, name in enumerate(_DAY_NAMES)}, None
)
_FIELDS = (_MINUTE, _HOUR, _DAY_OF_MONTH, _MONTH, _DAY_OF_WEEK)

CRON_MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

_ITEM = re.compile(
    r"(?P<start>\*|[0-9a-z]+)(?:-(?P<end>[0-9a-z]+))?(?:/(?P<step>[0-9]+))?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class _Cron:
    """A parsed cron expression that finds its matching wall-clock times.

    The search goes day by day and skips whole months, never minute by minute,
    so an expression that matches once in four years is still quick to walk.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    last_day: bool
    months: frozenset[int]
    weekdays: frozenset[int]  # Monday is 0
    day_or: bool
    elapsed: bool  # `*` leads the minute or hour field: follow elapsed time

    def next_wall(self, after: datetime) -> datetime | None:
        """The first matching naive wall-clock time strictly after `after`."""
        start = after.replace(second=0, microsecond=0) + ONE_MINUTE
        day = start.date()
        if self._matches_day(day):
            time = self._time_from(start.hour, start.minute)
            if time is not None:
                return start.replace(hour=time[0], minute=time[1])

        day = self._next_day(day + ONE_DAY)
        if day is None:
            return None
        return datetime(day.year, day.month, day.day, self.hours[0], self.minutes[0])

    def _time_from(self, hour: int, minute: int) -> tuple[int, int] | None:
        """The first matching (hour, minute) at or after the given one, same day."""
        index = bisect_left(self.hours, hour)
        if index < len(self.hours) and self.hours[index] == hour:
            at = bisect_left(self.minutes, minute)
            if at < len(self.minutes):
                return hour, self.minutes[at]
            index += 1

        if index < len(self.hours):
            return self.hours[index], self.minutes[0]
        return None

    def _next_day(self, day: date) -> date | None:
        """The first matching day on or after `day`, or None past the horizon."""
        horizon = min(day.year + _HORIZON_YEARS, MAXYEAR - 1)
        while day.year <= horizon:
            if day.month not in self.months:
                day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
            elif self._matches_day(day):
                return day
            else:
                day += ONE_DAY
        return None

    def _matches_day(self, day: date) -> bool:
        if day.month not in self.months:
            return False

        by_date = day.day in self.days or (self.last_day and (day + ONE_DAY).day == 1)
        by_weekday = day.weekday() in self.weekdays
        if self.day_or:
            return by_date or by_weekday
        return by_date and by_weekday


def check_cron(expression: str) -> None:
    """Raise ScheduleError on `cron_expression` unless `expression` is valid.

    Valid is five fields (minute hour day-of-month month day-of-week) or one of
    the macros, with every value in range, no step so large that it leaves a
    single value, and at least one date that the expression matches.
    """
    _compile(expression)


def _cron_error(message: str) -> ScheduleError:
    return ScheduleError("cron_expression", message)


@lru_cache(maxsize=2048)
def _compile(expression: str) -> _Cron:
    """The matcher for a cron expression, validated; cached, as jobs share few."""
    texts = _split_fields(expression)
    minutes, _ = _parse_field(texts[0], _MINUTE)
    hours, _ = _parse_field(texts[1], _HOUR)
    days, last_day = _parse_field(texts[2], _DAY_OF_MONTH)
    months, _ = _parse_field(texts[3], _MONTH)
    weekdays, _ = _parse_field(texts[4], _DAY_OF_WEEK)

    cron = _Cron(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=days,
        last_day=last_day,
        months=months,
        # Cron counts Sunday as 0; date.weekday() counts Monday as 0.
        weekdays=frozenset((day - 1) % 7 for day in weekdays),
        # Classic cron: when both day fields are restricted, either may match.
        day_or=texts[2] != "*" and texts[4] != "*",
        elapsed=texts[0].startswith("*") or texts[1].startswith("*"),
    )
    _check_some_date(cron, expression)
    return cron


def _split_fields(expression: str) -> list[str]:
    """The five field texts of `expression`, with a macro expanded."""
    text = expression.strip()
    if text.startswith("@"):
        if text.lower() not in CRON_MACROS:
            known = " ".join(CRON_MACROS)
            raise _cron_error(f"unknown macro {text!r}; use one of {known}")
        text = CRON_MACROS[text.lower()]

    texts = text.split()
    if len(texts) != 5:
        hint = " (a seconds field is not supported)" if len(texts) == 6 else ""
        raise _cron_error(
            "a cron expression has five fields (minute hour day-of-month month "
            f"day-of-week); {expression!r} has {len(texts)}{hint}"
        )
    return texts


def _parse_field(text: str, field: _Field) -> tuple[frozenset[int], bool]:
    """The values one field matches, and whether it names the month's last day."""
    values: set[int] = set()
    last_day = False
    for item in text.split(","):
        if field is _DAY_OF_MONTH and item.lower() == "l":
            last_day = True
        else:
            values |= _parse_item(item, field)
    return frozenset(values), last_day


def _parse_item(item: str, field: _Field) -> set[int]:
    """The values of one list item: `*`, a value, a range, each with a step."""
    match = _ITEM.fullmatch(item)
    if match is None or (match["start"] == "*" and match["end"]):
        raise _cron_error(f"{field.name} item {item!r} is not a value, range or step")

    step = int(match["step"] or 1)
    if step == 0:
        raise _cron_error(f"{field.name} item {item!r} has a step of 0")

    low, high = _item_bounds(match, field)
    if low > high:
        raise _cron_error(
            f"{field.name} range {item!r} runs backwards; write it as two ranges, "
            f"{match['start']}-{field.top},{field.low}-{match['end']}"
        )

    # Sunday may be written 0 or 7; it is one day.
    values = {
        value % 7 if field is _DAY_OF_WEEK else value
        for value in range(low, high + 1, step)
    }
    if match["step"] and len(values) == 1:
        raise _cron_error(_lone_step_message(item, field, step))
    return values


def _item_bounds(match: re.Match[str], field: _Field) -> tuple[int, int]:
    """The first and last value an item spans, before its step applies."""
    if match["start"] == "*":
        return field.low, field.top

    low = _value(match["start"], field)
    if match["end"]:
        return low, _value(match["end"], field)
    if match["step"]:
        return low, field.top
    return low, low


def _value(token: str, field: _Field) -> int:
    """One number or name of a field, checked against the field's range."""
    if token.lower() == "l":
        raise _cron_error(
            "L (the last day of the month) stands alone, in day-of-month only"
        )

    if token.isdigit():
        value = int(token)
    elif token.lower() in field.names:
        return field.names[token.lower()]
    else:
        names = (
            f" or a name like {next(iter(field.names)).upper()}" if field.names else ""
        )
        raise _cron_error(f"{field.name} value {token!r} is not a number{names}")

    if not field.low <= value <= field.high:
        sunday = " (0 and 7 are Sunday)" if field is _DAY_OF_WEEK else ""
        raise _cron_error(
            f"{field.name} {value} is out of range {field.low}-{field.high}{sunday}"
        )
    return value


def _lone_step_message(item: str, field: _Field, step: int) -> str:
    """Why a step that leaves one value is refused, and what was likely meant."""
    message = f"the step in {field.name} item {item!r} leaves a single value"
    if field.unit is None:
        return f"{message}; write that value on its own"
    return (
        f"{message}, so it cannot repeat every {step} {field.unit}s; for that, "
        f"use a recurring schedule (interval {field.unit!r}, interval_value {step})"
    )


def _check_some_date(cron: _Cron, expression: str) -> None:
    """Refuse an expression whose day-of-month never occurs in its months."""
    if cron.day_or or cron.last_day:
        return
    if any(day <= _LONGEST_MONTH[m - 1] for m in cron.months for day in cron.days):
        return

    days = ", ".join(str(day) for day in sorted(cron.days))
    months = ", ".join(month_name[m] for m in sorted(cron.months))
    raise _cron_error(
        f"{expression!r} matches no date: day {days} never occurs in {months}"
    )


def next_cron_fire(expression: str, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first fire time of a cron expression strictly after UTC `after`."""
    cron = _compile(expression)
    if tz.key in UTC_KEYS:
        wall = cron.next_wall(after.replace(tzinfo=None))
        return None if wall is None else wall.replace(tzinfo=UTC)

    # Far from any offset change, the next matching wall time is the answer
    # unless it falls in a gap or overlap itself.
    offsets = offsets_near(tz, after)
    if offsets[0] == offsets[1] == offsets[2]:
        wall = cron.next_wall(after.astimezone(tz).replace(tzinfo=None))
        if wall is None:
            return None
        occurrences = occurrences_of(wall, tz)
        if len(occurrences) == 1:
            return occurrences[0]

    # Start early enough to meet walls whose second occurrence is still ahead.
    start = (after + min(offsets)).replace(tzinfo=None)
    fires = (fire for fire in _wall_fires(cron, tz, start) if fire > after)
    return next(fires, None)


def _wall_fires(cron: _Cron, tz: ZoneInfo, start: datetime) -> Iterator[datetime]:
    """The fire instants of the walls after `start`, in time order, once each."""
    previous = None
    for fire in _merged_instants(cron, tz, start):
        if fire != previous:
            previous = fire
            yield fire


def _merged_instants(cron: _Cron, tz: ZoneInfo, start: datetime) -> Iterator[datetime]:
    """Instants of successive matching walls, merged into time order.

    The first instant of each wall never goes backwards as walls advance, but
    the second occurrence of a repeated wall comes after walls that follow it.
    A heap holds those until the walls have caught up with them.
    """
    pending: list[datetime] = []
    wall: datetime | None = start
    while (wall := cron.next_wall(wall)) is not None:
        instants = _instants_of_wall(wall, tz, cron.elapsed)
        for instant in instants:
            heappush(pending, instant)
        while instants and pending and pending[0] <= instants[0]:
            yield heappop(pending)

    while pending:
        yield heappop(pending)


def _instants_of_wall(
    wall: datetime, tz: ZoneInfo, elapsed: bool
) -> tuple[datetime, ...]:
    """When one matching wall time fires, under elapsed or fixed-time rules."""
    occurrences = occurrences_of(wall, tz)
    if elapsed:
        return occurrences
    if occurrences:
        return occurrences[:1]
    return (gap_end(wall, tz),)
